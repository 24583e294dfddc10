"""Local files, uploaded once through ``/File/Upload`` and remembered in the ledger.

A file is identified by the sha256 of its bytes, so the same file used by a thousand jobs
(or by several file inputs of one job) is uploaded once, and a resumed run reuses the URL
recorded by an earlier one. ``upload_done`` is durable before the URL is used. A file whose
content changed since the manifest was read is refused: the job's fingerprint describes the
old content, so sending the new one would run something the ledger does not know about.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from ..errors import InvalidInputError
from ..ledger.events import UploadDone
from ..manifest.job import FileInput, FileRef, Job
from ..manifest.spec import FileSpec, wire_urls
from .context import RunContext


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def wire_value(file_input: FileInput, urls: list[str]) -> str:
    """The URLs of a file input as its field takes them (one, comma-separated, JSON list)."""
    return wire_urls(FileSpec(file_input.name, file_input.kind, file_input.send), urls)


class Uploader:
    """Uploads each distinct local file once per folder, concurrently safe."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self._digests: dict[Path, str] = {}
        self._inflight: dict[str, asyncio.Future[str]] = {}
        self.uploads = 0

    def digest(self, path: Path) -> str:
        """The sha256 of a local file now (cached per path for the run)."""
        if path not in self._digests:
            self._digests[path] = file_sha256(path)
        return self._digests[path]

    def known_url(self, ref: FileRef) -> str | None:
        """The recorded URL of a local file, by the content it had when the manifest was
        read (None: not uploaded yet)."""
        return self.ctx.ledger.state.uploads.get(ref.sha256 or "") or None

    async def urls_for(self, job: Job, file_input: FileInput) -> list[str]:
        """The URLs of one file input's files, uploading the local ones that are new."""
        urls: list[str] = []
        for ref in file_input.refs:
            url = ref.url if ref.path is None else await self.url_for(job, ref)
            if url:
                urls.append(url)
        return urls

    async def url_for(self, job: Job, ref: FileRef) -> str:
        """The service URL of a local file, uploading it when it is new."""
        assert ref.path is not None
        path = ref.path
        key = await asyncio.to_thread(self.digest, path)
        if ref.sha256 is not None and key != ref.sha256:
            raise InvalidInputError(
                f"{path.name} changed after the manifest was read; re-run to use its new "
                "content (the job is then a new version)"
            )
        known = self.ctx.ledger.state.uploads.get(key)
        if known:
            return known
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            client = self.ctx.client
            uploaded = await self.ctx.options.policy.call(lambda: client.upload(path))
            await self.ctx.record(
                UploadDone(path=str(path.name), sha256=key, url=uploaded.url, job=job.id)
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
