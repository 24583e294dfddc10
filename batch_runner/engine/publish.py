"""The publishing stage (``--publish URL``): every verified output is uploaded to
``<URL>/<its path relative to the folder>``, checked there, and recorded.

Shape: one queue of job ids (memory stays flat) read by ``publish_concurrency`` workers of
their own, apart from the download workers, so a slow bucket never holds up downloads or
submissions. A job is queued when it succeeds in this run, and at the start for jobs that
succeeded earlier and are not published to this target yet (every one with ``--verify
full``).

For each output, in this order:

1. the store is asked about the object first: one already there with the same size and
   sha256 (object metadata; stores without metadata: the ETag recorded at upload) is
   recorded and not sent again. This is what makes a resume after ``kill -9`` upload nothing
   twice: an upload that finished but was not recorded is found here;
2. otherwise the local file is checked unchanged since it was verified, uploaded (in parts
   when large), and the object's size and ETag are checked;
3. ``output_published`` is recorded on the job (it stays ``succeeded``).

Failures are retried with the run's backoff policy. The local file is never moved or
deleted. An output that still fails stays unpublished: ``status`` shows it, the run exits 4
and the next run uploads it. An error that retrying cannot help (writes refused, no such
bucket, credentials rejected), or five failed outputs in a row, stops publishing for the
rest of the run; generation and downloads go on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from ..errors import PublishError
from ..ledger.events import OutputPublished, SavedOutput
from ..ledger.published import PublishFigures, entry_for, figures, is_current, object_url
from ..ledger.published import public_url as public_url_for
from ..ledger.state import JobStatus
from . import download
from .context import RunContext
from .objstore import Target, stat, upload_verified

#: Outputs failing in a row (after retries) before publishing stops for the run.
MAX_FAILED_IN_ROW = 5


class Publisher:
    """The upload queue and its workers; use as ``async with`` around the run's work."""

    def __init__(self, ctx: RunContext, target: Target) -> None:
        self.ctx = ctx
        self.target = target
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._queued: set[str] = set()
        self._workers: list[asyncio.Task[None]] = []
        #: why publishing stopped for the rest of the run, None while it goes on
        self.stopped: str | None = None
        #: objects uploaded in this run and their bytes; objects found already there
        self.uploaded = 0
        self.uploaded_bytes = 0
        self.found = 0
        self._failed_in_row = 0

    @property
    def url(self) -> str:
        return self.target.url

    # --- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Publisher:
        workers = self.ctx.options.publish_concurrency
        self._workers = [
            asyncio.create_task(self._worker(), name=f"publish-{n}") for n in range(workers)
        ]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)

    async def drain(self, timeout: float | None = None) -> None:
        """Wait until everything queued is published or given up (at most ``timeout``
        seconds: what is left stays unpublished for the next run)."""
        for _ in self._workers:
            self.queue.put_nowait(None)
        try:
            async with asyncio.timeout(timeout):
                await asyncio.gather(*self._workers)
        except TimeoutError:
            left = self.queue.qsize()
            self._stop(f"the deadline was reached with uploads left ({left} queued)")

    # --- queueing ----------------------------------------------------------------------

    def enqueue(self, job_id: str) -> None:
        """Queue a job whose outputs are verified (a no-op while it is queued already)."""
        if job_id not in self._queued and self.stopped is None:
            self._queued.add(job_id)
            self.queue.put_nowait(job_id)

    def enqueue_finished(self, job_ids: Iterable[str]) -> None:
        """Queue jobs that succeeded before this run and are not published to this target
        (with ``--verify full``: all of them, so each object is checked in the store)."""
        full = self.ctx.options.verify == "full"
        for job_id in job_ids:
            record = self.ctx.record_of(job_id)
            if record.status != JobStatus.SUCCEEDED:
                continue  # an output was lost: queued again when it is downloaded
            if full or not all(is_current(record, o, self.url) for o in record.outputs):
                self.enqueue(job_id)

    def figures(self, job_ids: Iterable[str]) -> PublishFigures:
        return figures(self.ctx.ledger.state, self.url, job_ids)

    # --- work --------------------------------------------------------------------------

    async def _worker(self) -> None:
        while True:
            job_id = await self.queue.get()
            if job_id is None:
                return
            self._queued.discard(job_id)
            if self.stopped is None:
                await self.publish_job(job_id)

    async def publish_job(self, job_id: str) -> None:
        ctx = self.ctx
        record = ctx.record_of(job_id)
        if record.status != JobStatus.SUCCEEDED:
            return
        full = ctx.options.verify == "full"
        for out in record.outputs:
            if self.stopped is not None:
                return
            if is_current(record, out, self.url) and not full:
                continue
            entry = entry_for(record, out.name)
            known = entry.etag if entry is not None and entry.sha256 == out.sha256 else None
            try:
                await self._publish_one(job_id, out, record.finished_at, known)
            except PublishError as exc:
                self._failed(job_id, out, exc)
                return
            self._failed_in_row = 0

    async def _publish_one(
        self, job_id: str, out: SavedOutput, finished_at: float | None, known_etag: str | None
    ) -> None:
        ctx, target = self.ctx, self.target
        policy = ctx.options.policy

        def retryable(exc: BaseException) -> bool:
            return isinstance(exc, PublishError) and exc.retryable

        remote = await policy.call(lambda: stat(target, out.path), retry_if=retryable)
        uploaded = False
        if remote is None or not remote.matches(out.size, out.sha256, known_etag):
            local = ctx.out_dir / out.path
            if not await asyncio.to_thread(_unchanged, local, out, finished_at):
                raise PublishError(
                    f"{out.path} changed on disk since it was verified; the next run checks "
                    "it and fetches it again"
                )
            remote = await policy.call(
                lambda: upload_verified(
                    target, out.path, local, size=out.size, sha256=out.sha256,
                    part_size=ctx.options.publish_part_size, content_type=out.content_type,
                ),
                retry_if=retryable,
            )  # fmt: skip
            uploaded = True
        url = object_url(self.url, out.path)
        event = OutputPublished(
            job=job_id, name=out.name, path=out.path, url=url, size=remote.size,
            sha256=out.sha256, etag=remote.etag,
            public_url=public_url_for(ctx.options.publish_public_url, out.path),
        )  # fmt: skip
        # Not fsync'd on its own: after a crash the object is found by step 1 and recorded.
        note = None if uploaded else f"{out.path} is in the store already; recorded, not sent again"
        await ctx.record(event, durable=False, note=note)
        if uploaded:
            self.uploaded += 1
            self.uploaded_bytes += remote.size
        else:
            self.found += 1

    def _failed(self, job_id: str, out: SavedOutput, exc: PublishError) -> None:
        ctx = self.ctx
        if exc.permanent:
            self._stop(exc.message)
            return
        self._failed_in_row += 1
        ctx.say(
            "error", job_id,
            f"{out.path} is not published: {exc.message}; the local file is kept and the "
            "next run uploads it",
            level="error",
        )  # fmt: skip
        if self._failed_in_row >= MAX_FAILED_IN_ROW:
            self._stop(f"{self._failed_in_row} outputs in a row could not be published")

    def _stop(self, reason: str) -> None:
        if self.stopped is not None:
            return
        self.stopped = reason
        self.ctx.say(
            "publish_stopped",
            message=f"publishing to {self.url} stopped: {reason}; local files are kept, "
            "re-run to publish what is left",
            level="error",
        )  # what is queued is skipped by the workers


def _unchanged(path: Path, out: SavedOutput, finished_at: float | None) -> bool:
    """The file is as verified: size and time unchanged, else its hash still matches."""
    if download.unchanged_since(path, out.size, finished_at):
        return True
    return download.verify_file(path, out.size, out.sha256)
