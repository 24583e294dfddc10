"""Local images, uploaded once through ``/File/Upload`` and remembered in the ledger.

An image is identified by the sha256 of its bytes, so the same file used by a thousand jobs
is uploaded once, and a resumed run reuses the URL recorded by an earlier one.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from ..ledger.events import UploadDone
from ..manifest.job import Job
from .context import RunContext


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


class Uploader:
    """Uploads each distinct local image once per folder, concurrently safe."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self._digests: dict[Path, str] = {}
        self._inflight: dict[str, asyncio.Future[str]] = {}
        self.uploads = 0

    def digest(self, job: Job) -> str:
        """The sha256 of the job's local image (cached per path)."""
        assert job.image is not None
        path = job.image
        if path not in self._digests:
            self._digests[path] = file_sha256(path)
        return self._digests[path]

    async def url_for(self, job: Job) -> str:
        """The service URL of the job's local image, uploading it when it is new."""
        assert job.image is not None
        key = await asyncio.to_thread(self.digest, job)
        known = self.ctx.ledger.state.uploads.get(key)
        if known:
            return known
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            image = job.image
            client = self.ctx.client
            uploaded = await self.ctx.options.policy.call(lambda: client.upload(image))
            await self.ctx.record(
                UploadDone(path=str(image.name), sha256=key, url=uploaded.url, job=job.id)
            )
            self.uploads += 1
            future.set_result(uploaded.url)
            return uploaded.url
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: other waiters re-raise it themselves
            raise
        finally:
            self._inflight.pop(key, None)
