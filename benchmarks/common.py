"""Shared plumbing of the benchmarks: measured child processes, figures, arguments, output.

Every process is measured with ``os.wait4``, which returns the rusage of exactly that child
(and of the descendants it waited for): the runner's CPU and memory never include the
server's, and the other way round. Servers live in ``servers.py``, job sets and the
runner's command line in ``jobsets.py``. Every figure carries the command behind it, so
``run_all.py`` and each script print tables a reader can reproduce row by row.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
PY = sys.executable
#: ru_maxrss is KiB on Linux, bytes on macOS
_RSS_SCALE = 1 if sys.platform == "darwin" else 1024

# Measured as a user runs it: with Python's bytecode cache. An inherited
# PYTHONDONTWRITEBYTECODE=1 makes every child compile ~400 modules from source again
# (0.3 s of CPU on each start-up here), which is the environment's cost, not the runner's.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


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
        if isinstance(v, int) or v == 0:
            return f"{v:,.0f} {self.unit}".strip()
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
    child's and the server's own is other load (another program running meanwhile), which
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
    server_cpu: float = 0.0
    #: wall times of every repetition, when this is the median of several (``measure_median``)
    runs: tuple[float, ...] = ()

    @property
    def cpu(self) -> float:
        return self.user + self.system

    @property
    def other_load(self) -> float:
        """Average cores used by other programs during the run."""
        if self.wall <= 0:
            return 0.0
        return max(0.0, self.busy - self.cpu - self.server_cpu) / self.wall


class _Server(Protocol):
    def cpu_now(self) -> float: ...


def measure_many(
    cmds: Sequence[Sequence[str]],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    logs: Sequence[Path | None] = (),
    server: _Server | None = None,
) -> tuple[float, list[Measured]]:
    """Start ``cmds`` together, wait for all; the wall time around them and each one's rusage.

    stdout and stderr go to files (a chatty child never blocks on a full pipe); stdout is
    returned whole, stderr's tail is kept (all of it stays in the log file). The machine's
    busy time and the server's CPU are for the whole span, in every result.

    A child's ``ru_maxrss`` is never below this process's own peak: Linux copies the
    parent's high-water mark into the forked child, and exec keeps it. So a benchmark must
    stay small itself (stream files, never hold a manifest's bytes); a child whose peak is
    not above ours is reported with a warning on stderr, since its figure is ours.
    """
    server_before = server.cpu_now() if server is not None else 0.0
    busy_before = machine_busy()
    logs = list(logs) + [None] * (len(cmds) - len(logs))
    with contextlib.ExitStack() as stack:
        outs = [stack.enter_context(tempfile.TemporaryFile()) for _ in cmds]
        errs = [stack.enter_context(open(log or os.devnull, "wb")) for log in logs]
        started = time.perf_counter()
        procs = [
            subprocess.Popen(list(cmd), stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                             env=env, cwd=str(cwd or ROOT))
            for cmd, out, err in zip(cmds, outs, errs, strict=True)
        ]  # fmt: skip
        done: dict[int, tuple[int, Any, float]] = {}
        # One child: block on it (exact wall time). Several: poll each, 5 ms resolution.
        # Never wait4(-1): that could reap the server process, which is a child too.
        flags = 0 if len(procs) == 1 else os.WNOHANG
        while len(done) < len(procs):
            for p in procs:
                if p.pid not in done:
                    pid, status, usage = os.wait4(p.pid, flags)
                    if pid:
                        code = os.waitstatus_to_exitcode(status)
                        done[pid] = (code, usage, time.perf_counter())
            if len(done) < len(procs):
                time.sleep(0.005)
        wall = time.perf_counter() - started
        busy = machine_busy() - busy_before
        server_cpu = server.cpu_now() - server_before if server is not None else 0.0
        results = []
        own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for proc, out, log in zip(procs, outs, logs, strict=True):
            code, usage, ended = done[proc.pid]
            if usage.ru_maxrss <= own_peak:
                mine = own_peak * _RSS_SCALE / 2**20
                print(f"warning: the peak RSS of {shlex.join(proc.args)[:80]} is not above "
                      f"the benchmark's own ({mine:.0f} MB): that figure is the "
                      "benchmark's, the child's is lower", file=sys.stderr)  # fmt: skip
            proc.returncode = code
            out.seek(0)
            err = _tail(log, 4000).decode("utf-8", "replace") if log else ""
            results.append(Measured(
                code=code, wall=ended - started, user=usage.ru_utime, system=usage.ru_stime,
                rss_mb=usage.ru_maxrss * _RSS_SCALE / 2**20,
                out=out.read().decode("utf-8", "replace"), err=err, busy=busy,
                server_cpu=server_cpu,
            ))  # fmt: skip
    return wall, results


def _tail(path: Path, size: int) -> bytes:
    """The last ``size`` bytes of ``path``, read alone: a 100,000-job run's log is 10 MB,
    and holding it would raise this process's peak, which every later child inherits."""
    with path.open("rb") as handle:
        handle.seek(max(0, handle.seek(0, os.SEEK_END) - size))
        return handle.read()


def measure(
    cmd: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    log: Path | None = None,
    server: _Server | None = None,
) -> Measured:
    """Run ``cmd`` to completion; wall time around it, rusage of exactly that child."""
    _, (m,) = measure_many([cmd], env=env, cwd=cwd, logs=[log], server=server)
    return m


def measure_median(cmd: Sequence[str], repeat: int, **kw: Any) -> Measured:
    """Run ``cmd`` ``repeat`` times (each must succeed); the run with the median wall time.

    For short commands (start-up, status), where one run is at the mercy of other load.
    """
    runs = []
    for _ in range(max(1, repeat)):
        m = measure(cmd, **kw)
        check(m, show(cmd))
        runs.append(m)
    chosen = sorted(runs, key=lambda m: m.wall)[len(runs) // 2]
    return dataclasses.replace(chosen, runs=tuple(round(m.wall, 3) for m in runs))


def runs_text(m: Measured) -> str:
    """ "median of 3: 0.57, 0.55, 0.58 s; " for a median of several runs, else ""."""
    if len(m.runs) < 2:
        return ""
    return f"median of {len(m.runs)}: {', '.join(f'{w:.3f}' for w in m.runs)} s; "


class Skipped(RuntimeError):
    """A benchmark that cannot run on this machine (a missing tool); not a failure."""


def check(m: Measured, what: str) -> None:
    if m.code != 0:
        raise RuntimeError(f"{what} exited {m.code}:\n{m.out[-2000:]}\n{m.err[-2000:]}")


# --- helpers --------------------------------------------------------------------------------


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


# --- arguments and output -------------------------------------------------------------------


def bench_parser(doc: str | None, **defaults: Any) -> argparse.ArgumentParser:
    """The arguments every benchmark takes; ``defaults`` sets --jobs, --concurrency, --server.

    A default of None leaves that option out (a benchmark that has no use for it).
    """
    parser = argparse.ArgumentParser(
        description=(doc or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if defaults.get("jobs") is not None:
        parser.add_argument("--jobs", type=int, default=defaults["jobs"])
    if defaults.get("concurrency") is not None:
        parser.add_argument("--concurrency", type=int, default=defaults["concurrency"])
    if defaults.get("server") is not None:
        parser.add_argument(
            "--server", choices=("standin", "sandbox"), default=defaults["server"],
            help="the service: the minimal stand-in (benchmarks/standin_server.py) or the "
            f"package's sandbox (default {defaults['server']})",
        )  # fmt: skip
    parser.add_argument("--workdir", type=Path, help="keep the work files here")
    parser.add_argument("--json", action="store_true", help="also print the raw numbers")
    return parser


def print_report(report: Report, *, raw: bool = False) -> None:
    """The figures as a table (figure, value, target, ok), each with the command behind it."""
    print(f"cores: {cores()}; reproduce: {report.bench_cmd}")
    width = max((len(f.name) for f in report.figures), default=10)
    print(f"{'figure':{width}}  {'value':>14}  {'target':>10}  ok")
    for f in report.figures:
        ok = "" if f.ok is None else ("yes" if f.ok else "NO")
        print(f"{f.name:{width}}  {f.text():>14}  {f.target:>10}  {ok}")
        if f.note:
            print(f"{'':{width}}    {f.note}")
        if f.command:
            print(f"{'':{width}}    $ {f.command}")
    if report.other_load >= 0.1:
        print(f"other programs used up to {report.other_load:.1f} of {cores()} cores meanwhile")
    if raw:
        print(json.dumps(report.raw, indent=1, default=str))
