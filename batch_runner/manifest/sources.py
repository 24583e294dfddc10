"""Where job data comes from besides the manifest itself: CSV and JSON Lines files, and local
image files.

Readers never raise for bad content: they return what they could read plus ``(line, message)``
problems, so that one run of ``validate`` reports every bad row with the data file's own line.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .._media import HEAD_BYTES, extensions_of_kind, kind_of, sniff
from .schemacheck import show, unknown_key_message

#: PixVerse's limit for the input image ("under 20 MB"), read as MiB.
MAX_IMAGE_BYTES = 20 * 1024 * 1024
#: Extensions /File/Upload takes that PixVerse also accepts.
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp"})
#: /File/Upload's limit, for the files of any other model's file inputs.
MAX_UPLOAD_BYTES = 100 * 1024 * 1024

Problem = tuple[int, str]


@dataclass(slots=True)
class RawJob:
    """A job as written, before validation: its values, and where each came from.

    ``key_lines`` maps a key to its line when keys sit on different lines (YAML); CSV and
    JSON Lines rows keep every key on the row's line.
    """

    data: Any
    line: int
    key_lines: dict[str, int] | None
    file: str
    rel: str

    def line_of(self, key: str) -> int:
        """The line of a key of this job (the job's line when not known)."""
        if self.key_lines is not None:
            return self.key_lines.get(key, self.line)
        return self.line


def decode_utf8(data: bytes) -> tuple[str | None, Problem | None]:
    """Text from bytes, or the 1-based line and a message naming the first bad byte."""
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        offset = exc.start
        line = data.count(b"\n", 0, offset) + 1
        hint = ""
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            hint = " (the file looks like UTF-16: save it as UTF-8)"
        message = f"not UTF-8 text: byte 0x{data[offset]:02x} at byte offset {offset}{hint}"
        return None, (line, message)


def _read_header(row: list[str], known: list[str] | None) -> tuple[list[str | None], list[str]]:
    """Column names to keep (None: dropped) and the problems with the header (``known``
    None: every name is kept, to be checked by the caller)."""
    problems: list[str] = []
    names: list[str | None] = []
    seen: set[str] = set()
    for raw in row:
        name = raw.strip()
        if not name:
            problems.append("the header has an empty column name")
            names.append(None)
        elif name in seen:
            problems.append(f"column {show(name)} appears twice in the header")
            names.append(None)
        elif known is not None and name not in known:
            problems.append(unknown_key_message(name, known, "column"))
            names.append(None)
        else:
            names.append(name)
        seen.add(name)
    return names, problems


@dataclass(slots=True)
class CsvHeader:
    """A CSV file's column names and the line they are on."""

    names: list[str]
    line: int


def read_csv(
    text: str,
    file: str,
    rel: str,
    known: list[str] | None,
    limit: int,
    header_out: list[CsvHeader] | None = None,
) -> tuple[list[RawJob], list[Problem]]:
    """Rows of a CSV file with a header of input names; empty cells mean "not set".

    ``known`` None keeps every column (the caller checks the names, given in
    ``header_out``, once it knows which models the rows use)."""
    jobs: list[RawJob] = []
    problems: list[Problem] = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str | None] | None = None
    end = 0
    try:
        for row in reader:
            line, end = end + 1, reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            if header is None:
                header, header_problems = _read_header(row, known)
                problems.extend((line, p) for p in header_problems)
                if header_out is not None:
                    header_out.append(CsvHeader([n for n in header if n], line))
                continue
            if len(row) != len(header):
                problems.append(
                    (line, f"the row has {len(row)} fields but the header has {len(header)}")
                )
                continue
            if len(jobs) >= limit:
                problems.append((line, f"more than {limit:,} rows; split the batch"))
                break
            data = {name: cell for name, cell in zip(header, row, strict=True) if name and cell}
            jobs.append(RawJob(data, line, None, file, rel))
    except csv.Error as exc:
        problems.append((end + 1, f"not valid CSV: {exc}"))
    if header is None and not problems:
        problems.append((1, "the CSV file is empty: it needs a header row and job rows"))
    elif not jobs and not problems:
        problems.append((1, "the CSV file has a header but no job rows"))
    return jobs, problems


def read_jsonl(text: str, file: str, rel: str, limit: int) -> tuple[list[RawJob], list[Problem]]:
    """One JSON object per line; blank lines are skipped."""
    jobs: list[RawJob] = []
    problems: list[Problem] = []
    for number, line_text in enumerate(text.splitlines(), start=1):
        if not line_text.strip():
            continue
        try:
            data = orjson.loads(line_text)
        except orjson.JSONDecodeError as exc:
            problems.append((number, f"not valid JSON: {exc}"))
            continue
        if not isinstance(data, dict):
            problems.append((number, f"expected a JSON object per line, got {show(data)}"))
            continue
        if len(jobs) >= limit:
            problems.append((number, f"more than {limit:,} rows; split the batch"))
            break
        jobs.append(RawJob(data, number, None, file, rel))
    if not jobs and not problems:
        problems.append((1, "the JSON Lines file holds no jobs"))
    return jobs, problems


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """A local image that passed the checks."""

    path: Path
    size: int
    kind: str
    sha256: str


def sniff_image(head: bytes) -> str | None:
    """The format from the file's first bytes (never from its name): png, jpeg or webp."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def inspect_image(path: Path) -> ImageInfo | str:
    """Check a local image the way PixVerse will, and hash it; a message when it fails."""
    try:
        if not path.exists():
            return f"file not found: {path}"
        if not path.is_file():
            return f"not a regular file: {path}"
        size = path.stat().st_size
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            return f"{path.name}: the name must end in .png, .jpg, .jpeg or .webp"
        if size == 0:
            return f"{path.name} is empty"
        if size > MAX_IMAGE_BYTES:
            return f"{path.name} is {size / 1048576:.1f} MiB; images must be at most 20 MiB"
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            head = handle.read(65536)
            found = sniff_image(head)
            if found is None:
                return f"{path.name} is not a PNG, JPEG or WebP image (by its content)"
            digest.update(head)
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    return ImageInfo(path, size, found, digest.hexdigest())


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """A local file for a model's file input that passed the checks."""

    path: Path
    size: int
    content_type: str
    kind: str
    sha256: str


_ARTICLE = {"image": "an image", "audio": "an audio file", "video": "a video"}
_PLURAL = {"image": "images", "audio": "audio files", "video": "videos"}


def inspect_media(path: Path, accepts: str | None = None) -> MediaInfo | str:
    """Check a local file for a file input: it exists, is a real image, audio or video file
    by its content (of the kind ``accepts``, when the input says), has a matching name, is
    under the upload limit; and hash it. A message when it fails."""
    try:
        if not path.exists():
            return f"file not found: {path}"
        if not path.is_file():
            return f"not a regular file: {path}"
        size = path.stat().st_size
        if size == 0:
            return f"{path.name} is empty"
        if size > MAX_UPLOAD_BYTES:
            return f"{path.name} is {size / 1048576:.1f} MiB; uploads must be at most 100 MiB"
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            head = handle.read(65536)
            found = sniff(head[:HEAD_BYTES])
            if found is None:
                return f"{path.name} is not an image, audio or video file (by its content)"
            kind = kind_of(found)
            if accepts is not None and kind != accepts:
                what = f"{_ARTICLE[kind]} ({found})"
                return f"{path.name} is {what}; this input takes {_PLURAL[accepts]}"
            allowed = extensions_of_kind(kind)
            if path.suffix.lower() not in allowed:
                return (
                    f"{path.name}: its content is {found}; the name must end in "
                    f"{', '.join(allowed)}"
                )
            digest.update(head)
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    return MediaInfo(path, size, found, kind, digest.hexdigest())
