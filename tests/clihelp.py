"""Helpers for driving the real ``batch-runner`` CLI as a subprocess against a sandbox
running in the test's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from batch_runner.sandbox import Sandbox, SandboxConfig

REPO = Path(__file__).resolve().parent.parent

#: A sandbox that finishes a task in well under a second.
FAST = SandboxConfig(queue_seconds=0.05, run_seconds=(0.1, 0.3))


def write_manifest(
    path: Path,
    count: int,
    *,
    prefix: str = "job",
    defaults: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    same_prompt: bool = False,
) -> Path:
    """A manifest of ``count`` distinct jobs (distinct prompts unless ``same_prompt``)."""
    jobs = []
    for i in range(count):
        job: dict[str, Any] = {
            "id": f"{prefix}-{i:04d}",
            "inputImageUrl": f"https://example.com/images/{i % 7}.jpg",
            "prompt": "a calm lake at dawn" if same_prompt else f"scene number {i}: a calm lake",
        }
        jobs.append(job)
    doc: dict[str, Any] = {
        "model": "PixVerse/image-to-video-v5",
        "defaults": {"quality": "540p", "duration": 5, **(defaults or {})},
        "jobs": jobs,
    }
    doc.update(extra or {})
    path.write_text(yaml.safe_dump(doc, sort_keys=False), "utf-8")
    return path


def _env(wiro: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without its WIRO_* variables, plus ``wiro``, the repository
    on PYTHONPATH, NO_COLOR, then ``extra`` (which may override any of them)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIRO_")}
    env.update(wiro, PYTHONPATH=str(REPO), NO_COLOR="1")
    env.update(extra)
    return env


def cli_env(sb: Sandbox, **extra: str) -> dict[str, str]:
    """The environment for a CLI run against the sandbox ``sb``."""
    wiro = {
        "WIRO_API_KEY": sb.api_key,
        "WIRO_API_SECRET": sb.api_secret or "",
        "WIRO_API_BASE": sb.base_url,
        "WIRO_SOCKET_URL": sb.socket_url,
    }
    return _env(wiro, extra)


def standin_env(base_url: str, **extra: str) -> dict[str, str]:
    """The environment for a CLI run against a stand-in service (``standin.py``) at
    ``base_url``: polling only (no socket URL), placeholder credentials unless ``extra``
    gives others."""
    wiro = {
        "WIRO_API_KEY": "standin-key",
        "WIRO_API_SECRET": "standin-secret",
        "WIRO_API_BASE": base_url,
    }
    return _env(wiro, extra)


@dataclass
class Done:
    code: int
    out: str
    err: str


async def start_cli(
    *args: str, env: dict[str, str], cwd: Path | None = None
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "batch_runner", *args,
        env=env, cwd=str(cwd or REPO),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip


async def finish(proc: asyncio.subprocess.Process, timeout: float = 60.0) -> Done:
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        raise AssertionError(f"CLI timed out; stderr:\n{err.decode()[-3000:]}") from None
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode(), err.decode())


async def run_cli(
    *args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 60.0
) -> Done:
    return await finish(await start_cli(*args, env=env, cwd=cwd), timeout)


async def wait_until(
    predicate: Callable[[], bool], timeout: float = 20.0, step: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(step)


def journal_events(out_dir: Path, kind: str) -> int:
    """How many events of ``kind`` the journal holds now (for timing a kill)."""
    try:
        data = (out_dir / "journal.jsonl").read_bytes()
    except FileNotFoundError:
        return 0
    return data.count(f'"type":"{kind}"'.encode())


def kill(proc: asyncio.subprocess.Process, sig: int = signal.SIGKILL) -> None:
    os.killpg(proc.pid, sig)


def load_ledger(out_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out_dir / "ledger.json").read_text("utf-8"))
    return data


def check_outputs_match_service(out_dir: Path, sb: Sandbox) -> int:
    """Every succeeded job's files match size and sha256 the service recorded. Returns count."""
    import hashlib

    served = {}
    for task in sb.task_records():
        for out in task["outputs"]:
            served[out["sha256"]] = out["size"]
    ledger = load_ledger(out_dir)
    checked = 0
    for job_id, rec in ledger["jobs"].items():
        if rec["status"] != "succeeded":
            continue
        assert rec["outputs"], job_id
        for out in rec["outputs"]:
            data = (out_dir / out["path"]).read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            assert digest == out["sha256"], job_id
            assert len(data) == out["size"], job_id
            assert served.get(digest) == len(data), f"{job_id}: file not served by the service"
            checked += 1
    return checked


@dataclass
class Batch:
    """One manifest, one output folder and the sandbox the CLI runs against; made by the
    ``batch`` fixture (``conftest.py``), which closes the sandbox and kills any CLI process
    still running when the test ends."""

    sb: Sandbox
    manifest: Path
    out: Path
    env: dict[str, str]
    procs: list[asyncio.subprocess.Process] = field(default_factory=list)

    def args(self, *flags: str, out: Path | None = None) -> tuple[str, ...]:
        """``run MANIFEST --out OUT FLAGS...``"""
        return ("run", str(self.manifest), "--out", str(out or self.out), *flags)

    async def cli(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 60.0,
    ) -> Done:
        """Any CLI command, run to its end."""
        return await run_cli(*args, env=env or self.env, cwd=cwd, timeout=timeout)

    async def run(
        self,
        *flags: str,
        out: Path | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 60.0,
    ) -> Done:
        """``batch-runner run MANIFEST --out OUT FLAGS...``, run to its end."""
        return await self.cli(*self.args(*flags, out=out), env=env, cwd=cwd, timeout=timeout)

    async def start(
        self, *flags: str, env: dict[str, str] | None = None
    ) -> asyncio.subprocess.Process:
        """The same run, started and left running (killed at teardown if still alive)."""
        proc = await start_cli(*self.args(*flags), env=env or self.env)
        self.procs.append(proc)
        return proc

    async def status(self, out: Path | None = None) -> dict[str, Any]:
        """``status OUT --json``, which must exit 0, parsed."""
        done = await self.cli("status", str(out or self.out), "--json")
        assert done.code == 0, done.err
        data: dict[str, Any] = json.loads(done.out)
        return data

    async def wait_journal(self, kind: str, count: int, timeout: float = 20.0) -> None:
        """Until the journal holds at least ``count`` events of ``kind``."""
        await wait_until(lambda: journal_events(self.out, kind) >= count, timeout=timeout)

    def stats(self) -> dict[str, Any]:
        return self.sb.stats()

    def ledger(self) -> dict[str, Any]:
        return load_ledger(self.out)

    def outputs_match_service(self) -> int:
        return check_outputs_match_service(self.out, self.sb)

    async def kill_leftovers(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    kill(proc)
                await proc.communicate()


#: The ``batch`` fixture: ``await batch(jobs=6, config=FAST, env=..., defaults=..., extra=...)``.
MakeBatch = Callable[..., Awaitable[Batch]]
