"""The files the sandbox "generates": real MP4, PNG and WAV files, unique per output.

Every output is a shared *prefix* (the bundled sample video; a drawn picture; a short
tone) followed by a small per-output *tail* naming the task and the output's index (an MP4
``free`` box; a PNG ``tEXt`` chunk before ``IEND``; a fixed-size WAV ``LIST/INFO`` chunk).
So each output has its own sha256 and is a valid, playable file, nothing is stored per task,
and hashing one costs a copy of the prefix's hash state plus the tail.
"""

from __future__ import annotations

import hashlib
import io
import math
import struct
import wave
import zlib
from functools import lru_cache

from . import media

Shape = tuple[int, int]

#: WAV tone: 16-bit mono, 16 kHz, a quarter of a second.
_RATE, _TONE_SECONDS = 16_000, 0.25
#: Bytes of text in a WAV's INFO comment: fixed, so the RIFF size can be in the prefix.
_WAV_NOTE_BYTES = 160


def _note(task_uuid: str, task_id: int, index: int) -> bytes:
    text = f"batch-runner sandbox output; task {task_id}; uuid {task_uuid}"
    return (text if index == 0 else f"{text}; output {index}").encode()


# -- PNG -----------------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@lru_cache(maxsize=64)
def _png_prefix(shape: Shape, hue: int) -> bytes:
    """Signature, header and pixels: a two-way gradient, tinted by ``hue`` (0..7)."""
    width, height = shape
    tint = ((hue * 97) % 256, (hue * 53 + 80) % 256, (hue * 29 + 160) % 256)
    rows = []
    for y in range(height):
        row = bytearray(b"\x00")  # filter type: none
        green = (y * 255 // max(height - 1, 1) + tint[1]) % 256
        for x in range(width):
            red = (x * 255 // max(width - 1, 1) + tint[0]) % 256
            row += bytes((red, green, tint[2]))
        rows.append(bytes(row))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"".join(rows), 6))
    )


def _png_tail(task_uuid: str, task_id: int, index: int) -> bytes:
    return _chunk(b"tEXt", b"Comment\x00" + _note(task_uuid, task_id, index)) + _chunk(b"IEND", b"")


# -- WAV -----------------------------------------------------------------------------------


@lru_cache(maxsize=16)
def _wav_prefix(pitch: int) -> bytes:
    """RIFF header (its size counting the fixed-size tail), format and a sine tone."""
    frequency = 440.0 * 2 ** (pitch / 12)
    count = int(_RATE * _TONE_SECONDS)
    samples = struct.pack(
        f"<{count}h",
        *(int(12_000 * math.sin(2 * math.pi * frequency * n / _RATE)) for n in range(count)),
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(_RATE)
        out.writeframes(samples)
    data = bytearray(buffer.getvalue())
    tail_size = len(_wav_tail("", 0, 0))
    data[4:8] = struct.pack("<I", len(data) - 8 + tail_size)
    return bytes(data)


def _wav_tail(task_uuid: str, task_id: int, index: int) -> bytes:
    note = _note(task_uuid, task_id, index)[:_WAV_NOTE_BYTES].ljust(_WAV_NOTE_BYTES, b"\x00")
    comment = b"ICMT" + struct.pack("<I", len(note)) + note
    info = b"INFO" + comment
    return b"LIST" + struct.pack("<I", len(info)) + info


# -- any output ----------------------------------------------------------------------------


def parts(
    contenttype: str, shape: Shape | None, task_uuid: str, task_id: int, index: int
) -> tuple[bytes, bytes]:
    """(prefix, tail) of one output."""
    if contenttype == "image/png":
        return _png_prefix(shape or (64, 64), index % 8), _png_tail(task_uuid, task_id, index)
    if contenttype == "audio/wav":
        return _wav_prefix(index % 12), _wav_tail(task_uuid, task_id, index)
    return media.sample_bytes(), media.free_box(task_uuid, task_id, index)


@lru_cache(maxsize=128)
def _prefix_hash(prefix: bytes) -> hashlib._Hash:
    return hashlib.sha256(prefix)


def render(
    contenttype: str, shape: Shape | None, task_uuid: str, task_id: int, index: int
) -> bytes:
    """The exact bytes of one output (deterministic, so nothing is stored per task)."""
    prefix, tail = parts(contenttype, shape, task_uuid, task_id, index)
    return prefix + tail


def digest(
    contenttype: str, shape: Shape | None, task_uuid: str, task_id: int, index: int
) -> tuple[int, str]:
    """(size, sha256 hex) of one output, hashing only its tail."""
    prefix, tail = parts(contenttype, shape, task_uuid, task_id, index)
    state = _prefix_hash(prefix).copy()
    state.update(tail)
    return len(prefix) + len(tail), state.hexdigest()
