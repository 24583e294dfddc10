"""The video the sandbox "generates", and serving bytes the way a CDN does.

Every video output is the bundled sample MP4 plus one top-level ``free`` box naming the
task, so each output has its own sha256 yet stays a playable file (pictures and sounds are
made the same way, in :mod:`.outputs`). Serving supports HEAD, single ``Range`` requests
(206 / 416) and the two download faults: a body cut short after a full ``Content-Length``
was promised, and a body that stalls half-way.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from aiohttp import web

MEDIA_DIR = Path(__file__).resolve().parent / "media"
SAMPLE_NAME = "sample.mp4"
CHUNK = 64 * 1024


class RangeNotSatisfiable(Exception):
    """The ``Range`` header asks for bytes past the end of the file."""


@lru_cache(maxsize=1)
def sample_bytes() -> bytes:
    return (MEDIA_DIR / SAMPLE_NAME).read_bytes()


def free_box(task_uuid: str, task_id: int, index: int = 0) -> bytes:
    """The per-output ``free`` box: the task (and the output's index after the first)."""
    text = f"batch-runner sandbox output; task {task_id}; uuid {task_uuid}"
    payload = (text if index == 0 else f"{text}; output {index}").encode()
    return struct.pack(">I", 8 + len(payload)) + b"free" + payload


def output_bytes(task_uuid: str, task_id: int) -> bytes:
    """The exact bytes of a task's (first) video output."""
    return sample_bytes() + free_box(task_uuid, task_id)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive for a single satisfiable range; None to send the whole file.

    Malformed and multi-range headers are ignored (a server may always do that).
    Raises RangeNotSatisfiable when the range starts past the end.
    """
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    if not dash:
        return None
    first_text, last_text = first_text.strip(), last_text.strip()
    if not (first_text.isdigit() or first_text == "") or not (
        last_text.isdigit() or last_text == ""
    ):
        return None
    if first_text == "":
        if last_text == "":
            return None
        length = int(last_text)
        if length == 0:
            raise RangeNotSatisfiable
        return max(0, size - length), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if last_text and last < first:
        return None
    if first >= size:
        raise RangeNotSatisfiable
    return first, min(last, size - 1)


async def serve_bytes(
    request: web.Request,
    data: bytes,
    *,
    content_type: str,
    etag: str,
    fault: str | None,
    slow_seconds: float,
    count_bytes: Callable[[int], None],
) -> web.StreamResponse:
    """Answer GET/HEAD for ``data``; ``fault`` is "truncated_download", "slow_download" or None."""
    size = len(data)
    try:
        wanted = parse_range(request.headers.get("Range"), size)
    except RangeNotSatisfiable:
        return web.Response(
            status=416,
            headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"},
        )
    first, last = wanted if wanted is not None else (0, size - 1)
    body = memoryview(data)[first : last + 1]
    headers = {
        "Content-Type": content_type,
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Cache-Control": "public, max-age=86400",
    }
    if wanted is not None:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    status = 206 if wanted is not None else 200
    if request.method == "GET" and fault is None:
        # One write for headers and body (a StreamResponse sends its headers on their own).
        count_bytes(len(body))
        return web.Response(status=status, body=body, headers=headers)
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = len(body)
    try:
        await response.prepare(request)
        if request.method == "HEAD":
            await response.write_eof()
            return response
        if len(body) > 1:
            half = len(body) // 2
            await response.write(body[:half])
            count_bytes(half)
            if fault == "truncated_download":
                if request.transport is not None:
                    request.transport.close()
                return response
            await asyncio.sleep(slow_seconds)
            body = body[half:]
        for start in range(0, len(body), CHUNK):
            piece = body[start : start + CHUNK]
            await response.write(piece)
            count_bytes(len(piece))
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client went away mid-body (killed, timed out): a CDN just stops sending
    return response
