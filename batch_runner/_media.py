"""What a file is, from its first bytes (never from its name): media type and kind.

Used both ways: a local file given to a model's file input is checked to be a real image,
audio or video file before anything is uploaded, and every saved output is recorded with
its content type and kind (``video``, ``image``, ``audio``, ``text``, ``other``) so that
reports can show it natively.
"""

from __future__ import annotations

import mimetypes

#: Bytes :func:`sniff` needs to see.
HEAD_BYTES = 64

KINDS = ("video", "image", "audio", "text", "other")

#: Known file extensions (lower case, with the dot) by media type.
EXTENSIONS: dict[str, tuple[str, ...]] = {
    "image/png": (".png",),
    "image/jpeg": (".jpg", ".jpeg"),
    "image/webp": (".webp",),
    "image/gif": (".gif",),
    "image/heic": (".heic", ".heif"),
    "image/avif": (".avif",),
    "video/mp4": (".mp4", ".m4v"),
    "video/quicktime": (".mov",),
    "video/webm": (".webm", ".mkv"),
    "audio/wav": (".wav",),
    "audio/mpeg": (".mp3",),
    "audio/mp4": (".m4a",),
    "audio/ogg": (".ogg", ".oga", ".opus"),
    "audio/flac": (".flac",),
    "audio/aac": (".aac",),
}

_FTYP_BRANDS: dict[bytes, str] = {
    b"heic": "image/heic", b"heix": "image/heic", b"mif1": "image/heic", b"msf1": "image/heic",
    b"avif": "image/avif", b"qt  ": "video/quicktime", b"M4A ": "audio/mp4",
    b"M4B ": "audio/mp4",
}  # fmt: skip


def sniff(head: bytes) -> str | None:
    """The media type of a file starting with ``head``, or None when it is not a known
    image, audio or video format."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(head) >= 12 and head[:4] == b"RIFF":
        return {b"WEBP": "image/webp", b"WAVE": "audio/wav"}.get(head[8:12])
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(head[8:12], "video/mp4")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    if head.startswith(b"ID3"):
        return "audio/mpeg"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        # An MPEG audio frame header: layer bits 00 are ADTS (AAC), others MP3/MP2.
        return "audio/aac" if head[1] & 0x06 == 0 else "audio/mpeg"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    return None


_KINDS = {kind: kind for kind in ("video", "image", "audio", "text")}


def kind_of(content_type: str) -> str:
    """``video``, ``image``, ``audio``, ``text`` or ``other`` for a media type."""
    mime = content_type.split(";")[0].strip().lower()
    found = _KINDS.get(mime.partition("/")[0])
    if found is not None:
        return found  # the one string of each kind, not a copy per output
    if mime in ("application/json", "application/xml", "application/x-ndjson"):
        return "text"
    return "other"


def looks_like_text(head: bytes) -> bool:
    """True for a non-empty start that decodes as UTF-8 without control characters."""
    if not head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # a character cut at the end of the sample is fine
            return False
        text = head[: exc.start].decode("utf-8")
    return not any(ord(c) < 32 and c not in "\t\n\r\f" for c in text)


def type_of_file(head: bytes, name: str, declared: str = "") -> str:
    """The best content type for a saved file: its bytes first, then what the service
    declared, then its name; ``application/octet-stream`` when nothing says."""
    found = sniff(head)
    if found is not None:
        return found
    declared = declared.split(";")[0].strip().lower()
    if declared and declared != "application/octet-stream":
        return declared
    guessed = mimetypes.guess_type(name)[0]
    if guessed:
        return guessed
    return "text/plain" if looks_like_text(head) else "application/octet-stream"


def extensions_of_kind(kind: str) -> list[str]:
    """Every known extension of a kind (``image``: .png, .jpg, ...), in table order."""
    return [ext for mime, exts in EXTENSIONS.items() if mime.startswith(kind + "/") for ext in exts]
