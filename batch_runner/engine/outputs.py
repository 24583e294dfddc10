"""The outputs stage: fetch every finished task's files, verify them, keep them safe.

Finished jobs wait in one queue (job ids only: memory stays flat) for a fixed pool of download
workers. A file counts only once it is streamed to ``.partial/``, checked, hashed, fsync'd and
renamed into place (:mod:`batch_runner.engine.download`); then ``output_saved`` and, for the
last one, ``job_succeeded`` are recorded. On resume, finished files are checked again; an
edited job's earlier files are moved aside, never overwritten; an output the service no longer
serves sends the job back for one new task.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from .._media import HEAD_BYTES, kind_of, type_of_file
from ..errors import (
    ApiError,
    DiskFullError,
    DownloadError,
    IntegrityError,
    OutputGoneError,
    UnsafeDownloadError,
)
from ..ledger.events import (
    JobFailed,
    JobReset,
    JobSucceeded,
    OutputLost,
    OutputSaved,
    RemoteOutput,
    SavedOutput,
)
from ..ledger.state import JobRecord, JobStatus
from . import download
from .context import RunContext


class Outputs:
    """The download queue and its workers, plus the checks of files already saved."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        #: jobs whose outputs vanished from the service: submitted again after this round
        self.resubmit: list[str] = []
        #: jobs already submitted again in this run because an output vanished (at most once:
        #: a service that never serves a new task's output must not be paid again and again)
        self.gone: set[str] = set()
        #: told the id of each job whose outputs are all saved (the publisher's queue)
        self.on_success: Callable[[str], None] | None = None
        #: most finished jobs left waiting before new submissions pause (:meth:`room`)
        self.backlog = max(64, 4 * ctx.options.download_concurrency)
        self._room = asyncio.Event()

    def enqueue(self, job_id: str) -> None:
        self.queue.put_nowait(job_id)

    @property
    def waiting(self) -> int:
        """Finished jobs whose files are not fetched yet."""
        return self.queue.qsize()

    async def room(self) -> None:
        """Return once at most :attr:`backlog` finished jobs wait for their downloads.

        Backpressure: no new paid task while finished ones wait (their URLs live for a
        limited time). Waiting submitters sleep on one event that a download worker sets as
        it takes a job below the mark; no polling.
        """
        while self.queue.qsize() > self.backlog:
            self._room.clear()
            await self._room.wait()

    def finish(self, workers: int) -> None:
        """Tell ``workers`` download workers to stop once the queue is drained."""
        for _ in range(workers):
            self.queue.put_nowait(None)

    async def worker(self) -> None:
        while True:
            job_id = await self.queue.get()
            if self.queue.qsize() <= self.backlog:
                self._room.set()
            if job_id is None:
                return
            await self.download_job(job_id)

    async def download_job(self, job_id: str) -> None:
        ctx = self.ctx
        record = ctx.record_of(job_id)
        if record.status != JobStatus.DOWNLOADING:
            return
        remote = record.remote_outputs
        paths = download.output_paths(job_id, [(o.name, o.contenttype) for o in remote])
        saved = {o.name for o in record.outputs}
        try:
            for out, rel in zip(remote, paths, strict=True):
                if out.name in saved:
                    continue
                result = await self._fetch(out, rel)
                if result.head is not None:  # a small output: its bytes are still at hand
                    name = out.name or Path(result.path).name
                    content_type = type_of_file(result.head, name, out.contenttype)
                else:
                    content_type = await asyncio.to_thread(
                        saved_type, ctx.out_dir / result.path, out.name, out.contenttype
                    )
                await ctx.record(
                    OutputSaved(
                        job=job_id,
                        name=out.name,
                        path=result.path,
                        size=result.size,
                        sha256=result.sha256,
                        content_type=content_type,
                        kind=kind_of(content_type),
                    )
                )
        except OutputGoneError as exc:
            await self._output_gone(job_id, exc)
            return
        except DiskFullError as exc:
            ctx.stop(f"{exc.message}", exit_code=4)
            ctx.say("error", job_id, exc.message, level="error")
            return
        except UnsafeDownloadError as exc:
            await ctx.record(JobFailed(job=job_id, error=f"output refused: {exc.message}"))
            return
        except IntegrityError as exc:
            # This one file keeps arriving wrong (longer or shorter than declared, cut short):
            # the paid task is kept for the next run, and the other jobs go on meanwhile.
            ctx.say("error", job_id, f"{exc.message}; re-run to fetch it again", level="error")
            return
        except (DownloadError, ApiError) as exc:
            ctx.stop(f"downloads keep failing ({exc.message}); re-run to resume them")
            ctx.say("error", job_id, exc.message, level="error")
            return
        # Not waited for: every output_saved before it is durable, and a job whose outputs
        # are all recorded is declared succeeded again by the next run if this line is lost.
        await ctx.record(JobSucceeded(job=job_id), note=f"saved {', '.join(paths)}", durable=False)
        if self.on_success is not None:
            self.on_success(job_id)

    async def _output_gone(self, job_id: str, exc: OutputGoneError) -> None:
        """The service no longer serves an output: only a new task can bring the video back."""
        ctx = self.ctx
        if job_id in ctx.jobs and not ctx.stopping and job_id not in self.gone:
            self.gone.add(job_id)
            await ctx.record(
                JobReset(job=job_id, reason=f"{exc.message}; submitting the job again")
            )
            self.resubmit.append(job_id)
        else:
            error = exc.message
            if job_id in self.gone:
                error += " (nor the output of the task submitted again for it in this run)"
            await ctx.record(JobFailed(job=job_id, error=error))

    async def _fetch(self, out: RemoteOutput, rel: str) -> download.DownloadResult:
        """One output, retried (resuming with Range) while the error says it may help."""
        client = self.ctx.client

        async def attempt() -> download.DownloadResult:
            return await download.download_verified(
                client.session,
                out.url,
                self.ctx.out_dir,
                rel,
                expected_size=out.size,
                allow_http=client.allow_http_downloads,
                renames=self.ctx.ledger.renames,
            )

        return await self.ctx.options.policy.call(
            attempt, retry_if=lambda e: isinstance(e, DownloadError | ApiError) and e.retryable
        )

    async def verify_succeeded(self, job_ids: list[str]) -> None:
        """Check finished jobs' files still match; a mismatch is fetched again or re-run."""
        if not job_ids:
            return
        ctx = self.ctx
        full = ctx.options.verify == "full"

        def check() -> list[tuple[str, str]]:
            bad: list[tuple[str, str]] = []
            folder = f"{ctx.out_dir}{os.sep}"  # joined as text: 100,000 Paths cost 0.3 s
            for job_id in job_ids:
                record = ctx.record_of(job_id)
                for out in record.outputs:
                    path = folder + out.path
                    quick_ok = not full and download.unchanged_since(
                        path, out.size, record.finished_at
                    )
                    if not quick_ok and not download.verify_file(Path(path), out.size, out.sha256):
                        bad.append((job_id, out.name))
            return bad

        for job_id, name in await asyncio.to_thread(check):
            await ctx.record(
                OutputLost(job=job_id, name=name, reason="file missing or changed on disk")
            )
            self.enqueue(job_id)

    def keep_beside(self, record: JobRecord) -> tuple[SavedOutput, ...]:
        """Move an edited job's earlier outputs aside so the new run cannot overwrite them
        (the renames are noted for the ledger to make durable before the record of them)."""
        tag = record.fingerprint[:8]
        kept: list[SavedOutput] = []
        for out in record.outputs:
            src = self.ctx.out_dir / out.path
            stem, dot, ext = out.path.rpartition(".")
            new_rel = (
                f"{stem}.prev-{tag}.{ext}" if dot and "/" not in ext else f"{out.path}.prev-{tag}"
            )
            dst = self.ctx.out_dir / new_rel
            if src.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
                self.ctx.ledger.renames.note(src.parent, dst.parent)
                kept.append(
                    SavedOutput(out.name, new_rel, out.size, out.sha256, out.content_type, out.kind)
                )
        return tuple(kept)


def saved_type(path: Path, name: str, declared: str) -> str:
    """What a saved output is: by its first bytes, else the service's content type, else
    its name (blocking: reads a few bytes)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(HEAD_BYTES)
    except OSError:
        head = b""
    return type_of_file(head, name or path.name, declared)
