"""The service a benchmark runs against, in its own process: the stand-in or the sandbox.

``StandinProcess`` (``benchmarks/standin_server.py``) is what throughput figures use: it
costs a few percent of the runner's CPU per task, so the runner is the process measured.
``SandboxProcess`` (``batch_runner sandbox``) is the full simulation (durations, limits,
the WebSocket) for the benchmarks that need it. Both answer the same calls here, and
``against`` runs one client command against a fresh server and says which process was the
bottleneck.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import BENCH, PY, ROOT, Measured, banner, check, measure, process_cpu, show

#: a process at this share of a core or more is taken as saturated (it was the bottleneck)
SATURATED = 0.9


class ServerProcess:
    """A server child process: started from ``cmd``, ready once it prints ``ready_re``."""

    ready_re: re.Pattern[str]
    stats_path = ""
    kind = ""

    def __init__(self, cmd: list[str], log: Path | None) -> None:
        self.cmd, self.log = cmd, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.base_url = ""
        self.pids: list[int] = []
        self.workers = 1
        self.usage: Any = None
        self.final: dict[str, Any] = {}
        self.api_key, self.api_secret = "bench-key", "bench-secret"

    @property
    def command(self) -> str:
        return show(self.cmd)

    def __enter__(self) -> ServerProcess:
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
        found = self.ready_re.search(line)
        if not found:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"{self.kind} did not start: {line!r}")
        self.ready(found)
        return self

    def ready(self, found: re.Match[str]) -> None:
        self.base_url = found.group("base")
        assert self.proc is not None
        self.pids = [self.proc.pid]

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """SIGTERM, then the rusage of the server and of every worker it waited for."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            for _ in range(200):
                pid, status, self.usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    proc.returncode = os.waitstatus_to_exitcode(status)
                    break
                time.sleep(0.05)
            else:
                proc.kill()
                _, _, self.usage = os.wait4(proc.pid, 0)
            assert proc.stdout is not None
            for line in proc.stdout.read().decode(errors="replace").splitlines():
                if line.startswith(f"{self.kind} stopped "):
                    self.final = json.loads(line.split(" ", 2)[2])
        finally:
            if proc.stdout is not None:
                proc.stdout.close()

    @property
    def cpu(self) -> float | None:
        """The server's CPU seconds (workers included), once it has stopped."""
        return None if self.usage is None else self.usage.ru_utime + self.usage.ru_stime

    def cpu_now(self) -> float:
        """The server's CPU seconds so far, every process of it (Linux /proc; else 0)."""
        return sum(process_cpu(pid) for pid in self.pids)

    @property
    def origin(self) -> str:
        return self.base_url.rsplit("/v1", 1)[0]

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.origin + self.stats_path, timeout=120) as resp:
            data: dict[str, Any] = json.loads(resp.read())
        return data

    def env(self, **extra: str) -> dict[str, str]:
        """The environment for a client process pointed at this server."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("WIRO_")}
        env.pop("BATCH_RUNNER_LOOP", None)
        env.update(
            WIRO_API_KEY=self.api_key, WIRO_API_SECRET=self.api_secret or "",
            WIRO_API_BASE=self.base_url, PYTHONPATH=str(ROOT), NO_COLOR="1",
        )  # fmt: skip
        env.update(extra)
        return env


class StandinProcess(ServerProcess):
    """``benchmarks/standin_server.py``: instant tasks, ``workers`` processes on one port."""

    ready_re = re.compile(r"standin ready base_url=(?P<base>\S+) pids=(?P<pids>\S+)")
    stats_path = "/__stats"
    kind = "standin"

    def __init__(
        self, *, workers: int = 1, output_bytes: int = 2048, log: Path | None = None
    ) -> None:
        cmd = [PY, str(BENCH / "standin_server.py"), "--port", "0", "--workers", str(workers),
               "--output-bytes", str(output_bytes)]  # fmt: skip
        super().__init__(cmd, log)
        self.workers = workers

    def ready(self, found: re.Match[str]) -> None:
        super().ready(found)
        self.pids += [int(p) for p in found.group("pids").split(",")]


class SandboxProcess(ServerProcess):
    """``python -m batch_runner sandbox --port 0 ...``: the package's full simulation."""

    ready_re = re.compile(r"sandbox ready base_url=(?P<base>\S+) socket_url=(?P<socket>\S+)")
    stats_path = "/__sandbox/stats?brief=1"
    kind = "sandbox"

    def __init__(
        self,
        *,
        run_seconds: tuple[float, float] = (0.0, 0.0),
        queue_seconds: float = 0.0,
        balance: float = 100_000_000.0,
        concurrency_limit: int | None = None,
        secret: bool = True,
        seed: int = 0,
        log: Path | None = None,
    ) -> None:
        low, high = run_seconds
        spec = f"{low:g}" if low == high else f"{low:g}-{high:g}"
        cmd = [
            PY, "-m", "batch_runner", "sandbox", "--port", "0",
            "--run-seconds", spec, "--queue-seconds", f"{queue_seconds:g}",
            "--balance", f"{balance:.0f}", "--seed", str(seed),
        ]  # fmt: skip
        if concurrency_limit:
            cmd += ["--concurrency-limit", str(concurrency_limit)]
        if not secret:
            cmd.append("--no-secret")
        super().__init__(cmd, log)
        self.api_key = "sandbox-key"
        self.api_secret = "sandbox-secret" if secret else ""
        self.socket_url = ""

    def ready(self, found: re.Match[str]) -> None:
        super().ready(found)
        self.socket_url = found.group("socket")

    def tasks(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(self.origin + "/__sandbox/tasks", timeout=120) as resp:
            data: list[dict[str, Any]] = json.loads(resp.read())
        return data

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(WIRO_SOCKET_URL=self.socket_url, **extra)


def make_server(kind: str, log: Path | None = None, **options: Any) -> ServerProcess:
    """A fresh server of ``kind`` ("standin" or "sandbox"), not started yet."""
    if kind == "standin":
        return StandinProcess(log=log, **options)
    return SandboxProcess(log=log, **options)


def bottleneck(row: dict[str, Any]) -> str:
    """Which process limited the run, from the share of a core each one used."""
    client, server, workers = row["client_cores"], row["server_cores"], row["server_workers"]
    if server >= SATURATED * workers:
        return "server (saturated)"
    if client >= SATURATED:
        return "client (saturated)"
    if row["machine_cores"] >= SATURATED * (os.cpu_count() or 1):
        return "machine (all cores busy)"
    return "neither (waits: polling interval, I/O)"


def against(
    name: str,
    cmd: list[str],
    folder: Path,
    jobs: int,
    *,
    server: str = "standin",
    env_extra: dict[str, str] | None = None,
    server_options: dict[str, Any] | None = None,
    after: Callable[[Any], Any] | None = None,
) -> tuple[dict[str, Any], Measured]:
    """Run ``cmd`` to the end against a fresh server; the client's and the server's figures.

    CPU per job is the client's user + system time (start-up included) over ``jobs``; the
    server's CPU is what its processes spent while the client ran, per task it created.
    ``after(server)`` runs before the server stops; its result is ``row["after"]``.
    """
    with make_server(server, log=folder / f"{server}-{name}.log", **(server_options or {})) as sb:
        env = sb.env(**(env_extra or {}))
        banner(f"{name}: {show(cmd, env)}")
        m = measure(cmd, env=env, log=folder / f"{name}.log", server=sb)
        check(m, name)
        stats = sb.stats()
        extra = after(sb) if after is not None else None
    row = figures(name, cmd, env, m, sb, jobs, stats)
    row["after"] = extra
    return row, m


def figures(
    name: str, cmd: list[str], env: dict[str, str], m: Measured, sb: ServerProcess, jobs: int,
    stats: dict[str, Any], tasks: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The client's and the server's figures for one measured run (``tasks``: created by it)."""
    if tasks is None:
        tasks = int(stats.get("tasks_created") or 0)
    wall = max(m.wall, 1e-9)
    row = {
        "name": name, "command": show(cmd, env), "server": sb.command, "server_kind": sb.kind,
        "jobs": jobs, "wall": m.wall, "jobs_per_s": jobs / wall, "cpu": m.cpu, "user": m.user,
        "system": m.system, "cpu_per_job_ms": m.cpu / jobs * 1000, "rss_mb": m.rss_mb,
        "server_cpu": m.server_cpu, "server_tasks": tasks,
        "server_cpu_per_task_ms": m.server_cpu / tasks * 1000 if tasks else None,
        "server_workers": sb.workers, "client_cores": m.cpu / wall,
        "server_cores": m.server_cpu / wall, "machine_cores": m.busy / wall,
        "requests": stats.get("requests", {}), "other_load": m.other_load,
        "server_total_cpu": sb.cpu, "server_final": sb.final, "stats": stats,
    }  # fmt: skip
    row["bottleneck"] = bottleneck(row)
    row["server_saturated"] = row["bottleneck"].startswith("server")
    return row


def describe(row: dict[str, Any]) -> str:
    """One line: CPU per job, RSS, the server's share and who the bottleneck was."""
    per_task = row["server_cpu_per_task_ms"]
    server = f"{per_task:.3f} ms CPU/task" if per_task is not None else "n/a"
    return (
        f"{row['cpu_per_job_ms']:.2f} ms CPU/job, peak RSS {row['rss_mb']:.0f} MB, "
        f"client {row['client_cores'] * 100:.0f} % of a core; {row['server_kind']} {server}, "
        f"{row['server_cores'] * 100:.0f} % of {row['server_workers']} core(s); "
        f"bottleneck: {row['bottleneck']}"
    )
