"""Shared plumbing of the issue-6 benchmarks: a sandbox in its own process, the runner as the
real CLI in another, and per-process wall time, CPU time and peak RSS.

Every process is measured with ``os.wait4``, which returns the rusage of exactly that child
(and of the descendants it waited for): the runner's CPU and memory never include the
sandbox's, and the other way round. Figures are plain dicts so ``run_all.py`` can print them
as one table and keep them as JSON under ``benchmarks/results/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
MODEL = "PixVerse/image-to-video-v5"
PY = sys.executable
#: ru_maxrss is KiB on Linux, bytes on macOS
_RSS_SCALE = 1 if sys.platform == "darwin" else 1024


def cores() -> int:
    return os.cpu_count() or 1


def rel(path: Path | str) -> str:
    """A path as it would be typed from the repository root (shorter commands in the table)."""
    path = Path(path)
    with contextlib.suppress(ValueError):
        return str(path.relative_to(ROOT))
    return str(path)


def show(cmd: Sequence[str], env: dict[str, str] | None = None) -> str:
    """The command line as a person would type it (python for the venv's interpreter)."""
    words = ["python" if w == PY else w for w in cmd]
    prefix = ""
    if env and env.get("BATCH_RUNNER_LOOP"):
        prefix = f"BATCH_RUNNER_LOOP={env['BATCH_RUNNER_LOOP']} "
    return prefix + shlex.join(words)


# --- figures --------------------------------------------------------------------------------


@dataclass
class Figure:
    """One row of the final table."""

    bench: str
    name: str
    value: float | None
    unit: str = ""
    target: str = ""
    ok: bool | None = None
    command: str = ""
    note: str = ""

    def text(self) -> str:
        if self.value is None:
            return "n/a"
        v = self.value
        if self.unit == "%":
            return f"{v:.1f} %"
        if self.unit == "x":
            return f"{v:.2f}x"
        if abs(v) >= 100:
            body = f"{v:,.0f}"
        elif abs(v) >= 10:
            body = f"{v:.1f}"
        elif abs(v) >= 0.1:
            body = f"{v:.2f}"
        else:
            body = f"{v:.4f}"
        return f"{body} {self.unit}".strip()

    def as_dict(self) -> dict[str, Any]:
        return {
            "bench": self.bench, "figure": self.name, "value": self.value, "unit": self.unit,
            "text": self.text(), "target": self.target, "ok": self.ok, "command": self.command,
            "note": self.note,
        }  # fmt: skip


@dataclass
class Report:
    """What one benchmark produced: table rows, the exact commands it ran, raw numbers."""

    #: the standalone command that reproduces this benchmark alone
    bench_cmd: str = ""
    figures: list[Figure] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    #: the most other programs loaded the machine during one of this benchmark's runs (cores)
    other_load: float = 0.0

    def add(self, *figures: Figure) -> None:
        self.figures.extend(figures)

    def saw(self, m: Measured) -> Measured:
        self.other_load = max(self.other_load, m.other_load)
        return m


# --- measured child processes -----------------------------------------------------------------


def machine_busy() -> float:
    """CPU seconds every core of the machine has spent busy since boot (Linux; else 0)."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()[1:]
    except OSError:
        return 0.0
    ticks = [int(x) for x in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    busy = sum(ticks[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a running process so far (Linux; else 0)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Measured:
    """A finished child process: exit code, wall seconds, CPU seconds, peak RSS in MB.

    ``busy`` is the CPU time the whole machine spent during the run: what is left after the
    child's and the sandbox's own is other load (another program running meanwhile), which
    distorts the figures on a small machine and is reported beside them.
    """

    code: int
    wall: float
    user: float
    system: float
    rss_mb: float
    out: str
    err: str
    busy: float = 0.0
    sandbox_cpu: float = 0.0
    stopped: bool = False  # stopped by the watchdog (SIGTERM) before it finished

    @property
    def cpu(self) -> float:
        return self.user + self.system

    @property
    def other_load(self) -> float:
        """Average cores used by other programs during the run."""
        if self.wall <= 0:
            return 0.0
        return max(0.0, self.busy - self.cpu - self.sandbox_cpu) / self.wall


def measure(
    cmd: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    log: Path | None = None,
    sandbox: SandboxProcess | None = None,
    watch: Callable[[float], bool] | None = None,
    watch_every: float = 5.0,
) -> Measured:
    """Run ``cmd`` to completion; wall time around it, rusage of exactly that child.

    stdout and stderr go to files (a chatty child never blocks on a full pipe); stdout is
    returned whole, stderr's tail is kept (all of it stays in ``log``). ``watch(elapsed)`` is
    called every ``watch_every`` seconds while the child runs; True sends it SIGTERM (the
    CLI's graceful stop), and the figures are then those of the partial run.
    """
    import tempfile

    err_path = log or Path(os.devnull)
    sandbox_before = sandbox.cpu_now() if sandbox is not None else 0.0
    busy_before = machine_busy()
    with open(err_path, "wb") as err_file, tempfile.TemporaryFile() as out_file:
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(cmd),
            stdout=out_file,
            stderr=err_file,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=str(cwd or ROOT),
        )
        stopped = False
        next_watch = started + watch_every
        while True:
            # Without a watchdog, block; with one, poll (0.1 s resolution on wall time).
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG if watch else 0)
            if pid:
                break
            time.sleep(0.1)
            now = time.perf_counter()
            if watch is not None and not stopped and now >= next_watch:
                next_watch = now + watch_every
                if watch(now - started):
                    proc.send_signal(signal.SIGTERM)
                    stopped = True
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out_file.seek(0)
        out = out_file.read()
    busy = machine_busy() - busy_before
    sandbox_cpu = sandbox.cpu_now() - sandbox_before if sandbox is not None else 0.0
    err = ""
    if log is not None:
        data = log.read_bytes()
        err = data[-4000:].decode("utf-8", "replace")
    return Measured(
        code=proc.returncode,
        wall=wall,
        user=usage.ru_utime,
        system=usage.ru_stime,
        rss_mb=usage.ru_maxrss * _RSS_SCALE / 2**20,
        out=out.decode("utf-8", "replace"),
        err=err,
        busy=busy,
        sandbox_cpu=sandbox_cpu,
        stopped=stopped,
    )


def check(m: Measured, what: str) -> None:
    if m.code != 0:
        raise RuntimeError(f"{what} exited {m.code}:\n{m.out[-2000:]}\n{m.err[-2000:]}")


# --- the sandbox, as a separate process ----------------------------------------------------


_READY = re.compile(r"sandbox ready base_url=(\S+) socket_url=(\S+)")


class SandboxProcess:
    """``python -m batch_runner sandbox --port 0 ...`` in its own process.

    Use as a context manager; ``usage`` holds the sandbox's own rusage after it stopped.
    """

    def __init__(
        self,
        *,
        run_seconds: tuple[float, float] = (0.0, 0.0),
        queue_seconds: float = 0.0,
        balance: float = 100_000_000.0,
        secret: bool = True,
        seed: int = 0,
        log: Path | None = None,
    ) -> None:
        low, high = run_seconds
        spec = f"{low:g}" if low == high else f"{low:g}-{high:g}"
        self.cmd = [
            PY, "-m", "batch_runner", "sandbox", "--port", "0",
            "--run-seconds", spec, "--queue-seconds", f"{queue_seconds:g}",
            "--balance", f"{balance:.0f}", "--seed", str(seed),
        ]  # fmt: skip
        if not secret:
            self.cmd.append("--no-secret")
        self.api_key = "sandbox-key"
        self.api_secret: str | None = "sandbox-secret" if secret else None
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.base_url = ""
        self.socket_url = ""
        self.usage: Any = None

    @property
    def command(self) -> str:
        return show(self.cmd)

    def __enter__(self) -> SandboxProcess:
        err = open(self.log, "wb") if self.log else subprocess.DEVNULL
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            self.cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, env=env,
            cwd=str(ROOT),
        )  # fmt: skip
        if err is not subprocess.DEVNULL:
            err.close()
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        found = _READY.search(line)
        if not found:
            self.proc.kill()
            raise RuntimeError(f"the sandbox did not start: {line!r}")
        self.base_url, self.socket_url = found.group(1), found.group(2)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            for _ in range(200):
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    self.usage = usage
                    proc.returncode = os.waitstatus_to_exitcode(status)
                    break
                time.sleep(0.05)
            else:
                proc.kill()
                _, _, self.usage = os.wait4(proc.pid, 0)
        finally:
            if proc.stdout is not None:
                proc.stdout.close()

    @property
    def cpu(self) -> float | None:
        """The sandbox's CPU seconds, once it has stopped."""
        return None if self.usage is None else self.usage.ru_utime + self.usage.ru_stime

    def cpu_now(self) -> float:
        """The sandbox's CPU seconds so far, while it runs."""
        return process_cpu(self.proc.pid) if self.proc is not None else 0.0

    @property
    def origin(self) -> str:
        return self.base_url.rsplit("/v1", 1)[0]

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(self.origin + path, timeout=120) as resp:
            return json.loads(resp.read())

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = self._get("/__sandbox/stats?brief=1")
        return data

    def tasks(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self._get("/__sandbox/tasks")
        return data

    def env(self, **extra: str) -> dict[str, str]:
        """The environment for a client process pointed at this sandbox."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("WIRO_")}
        env.pop("BATCH_RUNNER_LOOP", None)
        env.update(
            WIRO_API_KEY=self.api_key,
            WIRO_API_SECRET=self.api_secret or "",
            WIRO_API_BASE=self.base_url,
            WIRO_SOCKET_URL=self.socket_url,
            PYTHONPATH=str(ROOT),
            NO_COLOR="1",
        )
        env.update(extra)
        return env


# --- job sets -------------------------------------------------------------------------------

PROMPT = (
    "Animate the castle scene with a slow drone-style camera movement circling around it, "
    "trees swaying in the wind, variation {tag}-{i}"
)


def job_id(i: int) -> str:
    return f"job-{i:06d}"


def job_inputs(i: int, tag: str) -> dict[str, str]:
    """The resolved inputs of job ``i``: what the manifest below makes the runner send."""
    return {
        "inputImageUrl": f"https://cdn.example.com/inputs/{i % 997}.jpg",
        "prompt": PROMPT.format(tag=tag, i=i),
        "quality": "540p",
        "duration": "5",
    }


def write_manifest(path: Path, count: int, tag: str) -> Path:
    """A manifest of ``count`` distinct jobs; written as text (fast even at 100,000 jobs)."""
    with path.open("w", encoding="utf-8") as out:
        out.write(f"model: {MODEL}\n")
        out.write("defaults:\n  quality: 540p\n  duration: 5\n")
        out.write("jobs:\n")
        for i in range(count):
            inputs = job_inputs(i, tag)
            out.write(f"  - id: {job_id(i)}\n")
            out.write(f"    inputImageUrl: {inputs['inputImageUrl']}\n")
            out.write(f"    prompt: {inputs['prompt']}\n")
    return path


def write_jobs_jsonl(path: Path, count: int, tag: str) -> Path:
    """The same jobs as JSON lines ``{"id", "inputs"}`` for the raw loop and the peer script."""
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            out.write(json.dumps({"id": job_id(i), "inputs": job_inputs(i, tag)}) + "\n")
    return path


def check_same_inputs(manifest: Path, jobs_file: Path) -> None:
    """The JSON lines hold exactly the inputs the runner resolves from the manifest."""
    sys.path.insert(0, str(ROOT))
    from batch_runner.manifest.loader import load_manifest

    jobs = load_manifest(manifest).jobs
    with jobs_file.open(encoding="utf-8") as lines:
        for job, line in zip(jobs, lines, strict=True):
            row = json.loads(line)
            if row["id"] != job.id or row["inputs"] != dict(job.inputs):
                raise RuntimeError(f"job set mismatch at {job.id}: {row} vs {job.inputs}")


# --- the runner as the real CLI -------------------------------------------------------------


_ENGINE_WALL = re.compile(r"wall time ([0-9.]+) s")


def runner_cmd(manifest: Path, out: Path, concurrency: int, *extra: str) -> list[str]:
    return [
        PY, "-m", "batch_runner", "run", str(manifest), "--out", str(out),
        "--concurrency", str(concurrency), "--log-format", "text", *extra,
    ]  # fmt: skip


def engine_wall(m: Measured) -> float | None:
    """The runner's own "wall time" line (run engine only, without start-up)."""
    found = _ENGINE_WALL.search(m.out)
    return float(found.group(1)) if found else None


def dir_size(path: Path, names: Sequence[str]) -> int:
    return sum((path / n).stat().st_size for n in names if (path / n).exists())


def count_files(path: Path, suffix: str = ".mp4") -> int:
    with os.scandir(path) as entries:
        return sum(1 for e in entries if e.name.endswith(suffix) and e.stat().st_size > 0)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


@contextlib.contextmanager
def workdir(base: Path | None, name: str) -> Iterator[Path]:
    """A fresh folder for one benchmark, removed afterwards unless ``base`` was given."""
    import shutil
    import tempfile

    if base is not None:
        path = base / name
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        yield Path(tmp)


def banner(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)
