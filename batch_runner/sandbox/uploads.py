"""``/File/Upload``: keep uploaded files in memory and serve them back by URL.

The body is read part by part so the 100 MB limit is enforced without buffering a larger
request first; the answer's URL is what a client passes on as ``inputImageUrl``. Files sent
straight to ``/Run`` in a file input are stored the same way (:meth:`UploadStore.put`).
Images, videos and audio are accepted: the file inputs of the catalogue's models take all
three kinds.
"""

from __future__ import annotations

import hashlib
import posixpath
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import BodyPartReader, web

CONTENT_TYPES = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "heic": "image/heic",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "webm": "video/webm",
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "m4a": "audio/mp4",
    "ogg": "audio/ogg",
    "flac": "audio/flac",
    "aac": "audio/aac",
}
_CHUNK = 256 * 1024


@dataclass(frozen=True)
class StoredFile:
    id: str
    name: str
    contenttype: str
    data: bytes
    folderid: str
    added_ts: float


def extension_of(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def refusal(name: str, data: bytes) -> str | None:
    """The service's code-0 message for a file it does not take, else None."""
    if extension_of(name) not in CONTENT_TYPES:
        allowed = ", ".join(CONTENT_TYPES)
        return f"File type is not allowed. Allowed file types: {allowed}."
    if not data:
        return "Uploaded file is empty."
    return None


class UploadStore:
    """Uploaded files by id."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._files: dict[str, StoredFile] = {}

    def get(self, file_id: str) -> StoredFile | None:
        return self._files.get(file_id)

    async def receive(self, request: web.Request, origin: str) -> dict[str, Any] | str:
        """The answer's list entry, or a code-0 error message."""
        if request.content_type != "multipart/form-data":
            return "Request parameter [file] required"
        try:
            reader = await request.multipart()
        except (ValueError, AssertionError):
            return "Request parameter [file] required"
        name, data, folderid = "", b"", ""
        found = False
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "folderid":
                folderid = (await part.text()).strip()
            elif part.name == "file" and not found:
                found = True
                # aiohttp clients percent-encode the file name; curl sends it raw
                raw_name = unquote(part.filename or "").replace("\\", "/")
                name = posixpath.basename(raw_name)
                chunks: list[bytes] = []
                size = 0
                while chunk := await part.read_chunk(_CHUNK):
                    size += len(chunk)
                    if size > self.max_bytes:
                        limit_mb = self.max_bytes // (1024 * 1024)
                        return f"File size exceeds the limit of {limit_mb} MB."
                    chunks.append(chunk)
                data = b"".join(chunks)
        if not found:
            return "Request parameter [file] required"
        message = refusal(name, data)
        if message is not None:
            return message
        stored = self.put(name, data, folderid)
        return {
            "id": stored.id,
            "name": name,
            "size": str(len(data)),
            "contenttype": stored.contenttype,
            "folderid": folderid,
            "parentid": folderid,
            "addedtime": str(int(stored.added_ts)),
            "accesskey": stored.id[:30],
            "url": self.url_of(stored, origin),
        }

    def put(self, name: str, data: bytes, folderid: str = "") -> StoredFile:
        """Store a file (already checked with :func:`refusal`); the same bytes under the
        same name get the same id, so a re-sent file has the same URL."""
        file_id = hashlib.sha256(data + name.encode()).hexdigest()[:32]
        contenttype = CONTENT_TYPES[extension_of(name)]
        stored = StoredFile(file_id, name, contenttype, data, folderid, time.time())
        self._files[file_id] = stored
        return stored

    @staticmethod
    def url_of(stored: StoredFile, origin: str) -> str:
        return f"{origin}/files/{stored.id}/{quote(stored.name, safe='')}"
