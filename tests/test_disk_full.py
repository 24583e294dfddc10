"""Disk full while downloading, at the run level.

The CLI runs under ``RLIMIT_FSIZE`` (CPython ignores SIGXFSZ, so an oversized write fails with
EFBIG instead of killing the process), set by a tiny wrapper before ``exec``. The limit lies
above what the ledger, journal and lock files need for one job and below the ~23 KB video, so
only the download hits it: the job must not be marked succeeded, the error must say what
happened, the run must exit 4, and a later run without the limit must finish the job from the
same task.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
from pathlib import Path

import pytest
from clihelp import Done, MakeBatch, finish

from batch_runner.sandbox import SandboxConfig
from batch_runner.sandbox.media import sample_bytes

FAST = SandboxConfig(queue_seconds=0.05, run_seconds=(0.1, 0.2))
LIMIT = 12_000  # bytes per file

WRAPPER = (
    "import os, resource, sys\n"
    "limit = int(sys.argv[1])\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))\n"
    "os.execv(sys.executable, [sys.executable, '-m', 'batch_runner', *sys.argv[2:]])\n"
)


async def run_limited(*args: str, env: dict[str, str], cwd: Path, limit: int) -> Done:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRAPPER, str(limit), *args,
        env=env, cwd=str(cwd),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    return await finish(proc, timeout=120)


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
async def test_disk_full_during_download_is_not_success_and_resumes(
    batch: MakeBatch, tmp_path: Path
) -> None:
    assert len(sample_bytes()) > LIMIT  # the video cannot fit, the ledger can
    b = await batch(jobs=1, config=FAST, env={"PYTHONDONTWRITEBYTECODE": "1"})
    flags = ("--no-socket", "--poll-interval", "0.1")
    done = await run_limited(*b.args(*flags), env=b.env, cwd=tmp_path, limit=LIMIT)
    text = done.out + done.err
    assert done.code == 4, text
    assert "Traceback" not in done.err, done.err
    assert "file too large" in text or "no space left" in text, text
    record = b.ledger()["jobs"]["job-0000"]  # the ledger itself was written completely
    assert record["status"] == "downloading", record
    assert not record["outputs"]
    assert not (b.out / "job-0000.mp4").exists()
    assert not (b.out / "journal.jsonl").exists()
    assert b.stats()["tasks_created"] == 1

    again = await b.run(*flags, cwd=tmp_path)
    assert again.code == 0, again.out + again.err
    assert b.stats()["tasks_created"] == 1  # the same task's video, not a new task
    record = b.ledger()["jobs"]["job-0000"]
    assert record["status"] == "succeeded"
    [task] = b.sb.task_records()
    saved = (b.out / record["outputs"][0]["path"]).read_bytes()
    assert hashlib.sha256(saved).hexdigest() == task["outputs"][0]["sha256"]
