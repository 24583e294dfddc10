"""Helpers for driving the real ``batch-runner`` CLI as a subprocess against a sandbox
running in the test's own event loop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from batch_runner.sandbox import Sandbox

REPO = Path(__file__).resolve().parent.parent


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


def cli_env(sb: Sandbox, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIRO_")}
    env.update(
        WIRO_API_KEY=sb.api_key,
        WIRO_API_SECRET=sb.api_secret or "",
        WIRO_API_BASE=sb.base_url,
        WIRO_SOCKET_URL=sb.socket_url,
        PYTHONPATH=str(REPO),
        NO_COLOR="1",
    )
    env.update(extra)
    return env


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
