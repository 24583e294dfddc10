"""Request bodies as the service reads them: JSON, urlencoded form, or multipart with files.

A JSON text is accepted whatever the content type says, as the API page's own examples send
JSON labelled ``multipart/form-data``. Multipart is read part by part, so a file input on
``/Run`` is capped (like ``/File/Upload``) without buffering a larger request first; file
parts are kept apart from text fields, by field name, in the order they came.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from aiohttp import BodyPartReader, web

from . import jsonio

_CHUNK = 256 * 1024
#: Cap on one text field of a multipart body (the app's limit for a whole non-file body).
TEXT_LIMIT = 4 * 1024 * 1024


class BadBody(Exception):
    """The request body is neither JSON, a form nor multipart."""


class FileTooLarge(Exception):
    """A file part is over the size limit; ``limit`` is in bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


@dataclass(frozen=True)
class FilePart:
    """One uploaded file of a multipart body."""

    field: str
    filename: str
    data: bytes


@dataclass
class Body:
    """``fields``: the last value per name (JSON values as they are). ``values``: every text
    value per name, for repeated form fields. ``form``: json, multipart, urlencoded or empty."""

    form: str
    fields: dict[str, Any] = field(default_factory=dict)
    values: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, list[FilePart]] = field(default_factory=dict)

    def add(self, name: str, value: str) -> None:
        self.fields[name] = value
        self.values.setdefault(name, []).append(value)


async def read_body(request: web.Request, max_file_bytes: int) -> Body:
    """Parse the body; raises BadBody, or FileTooLarge for an oversized file part."""
    header = request.headers.get("Content-Type", "")
    if request.content_type == "multipart/form-data" and "boundary=" in header:
        return await _multipart(request, max_file_bytes)
    raw = (await request.read()).strip()
    if not raw:
        return Body("empty")
    if raw.startswith(b"{") or request.content_type == "application/json":
        try:
            data = jsonio.loads(raw)
        except ValueError:
            raise BadBody from None
        if not isinstance(data, dict):
            raise BadBody
        return Body("json", fields=data)
    body = Body("urlencoded")
    text = raw.decode("utf-8", errors="replace")
    for name, value in parse_qsl(text, keep_blank_values=True):
        body.add(name, value)
    return body


async def _multipart(request: web.Request, max_file_bytes: int) -> Body:
    body = Body("multipart")
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or not part.name:
                continue
            if part.filename is None:
                data = part.decode(await _read(part, TEXT_LIMIT, is_file=False))
                body.add(part.name, data.decode(part.get_charset(default="utf-8")))
                continue
            data = await _read(part, max_file_bytes, is_file=True)
            # aiohttp clients percent-encode the file name; curl sends it raw
            name = unquote(part.filename)
            body.files.setdefault(part.name, []).append(FilePart(part.name, name, data))
    except (ValueError, AssertionError, UnicodeDecodeError, LookupError, RuntimeError):
        raise BadBody from None
    return body


async def _read(part: BodyPartReader, limit: int, *, is_file: bool) -> bytes:
    """A part's bytes. Past ``limit``: FileTooLarge for a file (the service's code-0 answer),
    HTTP 413 for a text field (as for any other body over the app's limit)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(_CHUNK):
        size += len(chunk)
        if size > limit:
            if is_file:
                raise FileTooLarge(limit)
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
        chunks.append(chunk)
    return b"".join(chunks)
