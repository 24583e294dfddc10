"""Folders for the gallery tests, as runs leave them: ledgers written through the real
:class:`Ledger` from the events a run records, the sandbox's sample MP4, manifests loaded
from YAML; and synthetic ledgers of 10,000 or 100,000 jobs without 100,000 ledger writes."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import struct
import zlib
from pathlib import Path

from batch_runner.ledger.events import (
    JobCancelled,
    JobFailed,
    JobRegistered,
    JobSucceeded,
    OutputSaved,
    RemoteOutput,
    SavedOutput,
    SubmitIntent,
    Submitted,
    TaskDone,
    TaskStatusSeen,
)
from batch_runner.ledger.state import JobRecord, JobStatus, LedgerState
from batch_runner.ledger.store import Ledger
from batch_runner.manifest.job import Job
from batch_runner.manifest.loader import Manifest, load_manifest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "batch_runner" / "sandbox" / "media" / "sample.mp4"
ARTIFACTS = REPO / "test-artifacts"
HOSTILE = "<script>alert(1)</script>"
BAD_ERROR = '<img src=x onerror="alert(2)"> the model refused'
# an http(s) URL that fails at once offline (nothing listens on port 9)
DEAD_URL = "https://127.0.0.1:9/castle.jpg"
OUT2 = "ok-local #1 <&>.mp4"
OUT2_HREF = "ok-local%20%231%20%3C%26%3E.mp4"

MANIFEST = f"""\
model: PixVerse/image-to-video-v5
defaults:
  quality: 540p
  duration: 5
jobs:
  - id: ok-url
    inputImageUrl: {DEAD_URL}
    prompt: A castle at dawn, a slow drone orbit around the towers.
    quality: 720p
  - id: ok-local
    image: images/cat.png
    prompt: "A cat & a \\"quoted\\" ball"
    duration: 8
  - id: hostile
    inputImageUrl: {DEAD_URL}
    prompt: "{HOSTILE}"
  - id: cancelled-one
    inputImageUrl: {DEAD_URL}
    prompt: Waves on a beach.
  - id: running-one
    image: images/cat.png
    prompt: Still rendering.
  - id: pending-one
    image: images/cat.png
    prompt: Not submitted yet.
"""


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A valid one-colour PNG, so the tests need no image library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


async def build_case(root: Path) -> tuple[Path, Manifest, list[str]]:
    """A folder as a run leaves it: 2 succeeded, 1 failed, 1 cancelled, 1 running, 1 pending.

    Returns the folder, the manifest and the task tokens the ledger holds.
    """
    (root / "images").mkdir()
    (root / "images" / "cat.png").write_bytes(png(64, 48, (230, 140, 40)))
    (root / "batch.yaml").write_text(MANIFEST, encoding="utf-8")
    manifest = load_manifest(root / "batch.yaml")
    out = root / "out"
    jobs = {job.id: job for job in manifest.jobs}
    tokens = [f"tok-{i}-{os.urandom(8).hex()}" for i in range(len(jobs))]
    ledger = Ledger.open(out)
    try:
        for job in manifest.jobs:
            await ledger.record(JobRegistered(job=job.id, fingerprint=job.fingerprint))
        started = ["ok-url", "ok-local", "hostile", "cancelled-one", "running-one"]
        for i, job_id in enumerate(started):
            fingerprint = jobs[job_id].fingerprint
            await ledger.record(SubmitIntent(job=job_id, attempt=1, fingerprint=fingerprint))
            await ledger.record(Submitted(job=job_id, taskid=f"T{i}", tasktoken=tokens[i]))
        # the service names outputs "0.mp4"; the second file name needs URL quoting
        for i, (job_id, file) in enumerate([("ok-url", "ok-url.mp4"), ("ok-local", OUT2)]):
            remote = RemoteOutput(name="0.mp4", url=f"https://cdn.example/{i}/0.mp4")
            await ledger.record(TaskDone(job=job_id, outputs=(remote,), cost=0.3, taskid=f"T{i}"))
            shutil.copyfile(SAMPLE, out / file)
            data = SAMPLE.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            saved = OutputSaved(job=job_id, name=remote.name, path=file, size=len(data),
                                sha256=digest)  # fmt: skip
            await ledger.record(saved)
            await ledger.record(JobSucceeded(job=job_id))
        await ledger.record(JobFailed(job="hostile", error=BAD_ERROR, cost=0.05))
        await ledger.record(JobCancelled(job="cancelled-one", error="cancelled: --task-timeout"))
        await ledger.record(TaskStatusSeen(job="running-one", status="task_start", taskid="T4"))
    finally:
        await ledger.close()
    assert any(t in (out / "ledger.json").read_text() for t in tokens)  # the pages must drop them
    return out, manifest, tokens


def synthetic(
    n: int, manifest: Manifest, *, failed_every: int = 10
) -> tuple[LedgerState, Manifest]:
    """n jobs (one in ``failed_every`` failed, the rest succeeded) with realistic prompts and
    URLs, without n ledger writes."""
    state, jobs = LedgerState(), []
    prompt = "Animate the castle with a slow drone orbit, birds, drifting clouds and light. " * 3
    for i in range(n):
        job_id = f"castle__seed-{i}__duration-5"
        url = f"https://127.0.0.1:9/cdn.example.com/uploads/inputs/{i:06d}-castle.jpg"
        inputs = {"prompt": prompt, "inputImageUrl": url, "quality": "720p", "duration": "5"}
        jobs.append(Job(job_id, i, inputs, None, "f" * 64, f"batch.yaml:{i}"))
        ok = i % failed_every != 0
        state.jobs[job_id] = JobRecord(
            job_id=job_id, status=JobStatus.SUCCEEDED if ok else JobStatus.FAILED,
            fingerprint="f" * 64, taskid=str(i), tasktoken="secret-token", cost=0.3,
            outputs=(SavedOutput(f"{job_id}.mp4", f"{job_id}.mp4", 1, "0" * 64),) if ok else (),
            error=None if ok else "The service reported an error: content policy",
            updated_at=1.0,
        )  # fmt: skip
    state.recount()
    return state, dataclasses.replace(manifest, jobs=tuple(jobs))


def pages(out: Path) -> dict[str, str]:
    """Every page of the gallery in ``out``, by path relative to it."""
    found = {"index.html": (out / "index.html").read_text("utf-8")}
    folder = out / "gallery"
    if folder.is_dir():
        for page in sorted(folder.iterdir()):
            found[f"gallery/{page.name}"] = page.read_text("utf-8")
    return found


def card_ids(html: str) -> list[str]:
    """The job ids of a page's cards, in order."""
    return re.findall(
        r'<article class="card[^"]*" data-g="\w+"><div class="h"><b>([^<]+)</b>', html
    )
