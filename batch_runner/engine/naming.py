"""Output names and paths inside the folder: what a service's file name may become on disk.

Names come from the service and are treated as hostile: only the last path component is kept,
control and format characters are dropped, Windows' reserved device names are defused, lengths
are capped, the runner's own names (:mod:`batch_runner.ledger.layout`) are never taken, and
every path is checked to stay inside the folder, symlinks included.
"""

from __future__ import annotations

import functools
import os
import posixpath
import re
import stat
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from ..errors import UnsafeDownloadError
from ..ledger.layout import OWNED_PREFIXES

MAX_NAME_CHARS = 100
MAX_NAME_BYTES = 200  # well under the usual 255-byte limit, whatever the script
DEFAULT_EXT = ".mp4"

_WINDOWS_RESERVED = frozenset(
    {"con", "prn", "aux", "nul"} | {f"{p}{i}" for p in ("com", "lpt") for i in range(1, 10)}
)
_EXT_RE = re.compile(r"\.[A-Za-z0-9]{1,10}")
_TYPE_EXT = {
    "video/mp4": ".mp4", "video/webm": ".webm", "video/quicktime": ".mov",
    "image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "image/gif": ".gif",
    "audio/mpeg": ".mp3", "audio/wav": ".wav", "audio/x-wav": ".wav", "audio/wave": ".wav",
    "audio/ogg": ".ogg", "audio/flac": ".flac", "audio/mp4": ".m4a", "audio/aac": ".aac",
    "image/heic": ".heic", "image/avif": ".avif", "application/json": ".json",
    "text/plain": ".txt", "text/markdown": ".md", "text/csv": ".csv",
}  # fmt: skip


def safe_name(name: str, *, fallback: str) -> str:
    """A single harmless file name made from ``name`` (a service's), else from ``fallback``.

    Keeps only the last path component, drops control and format characters, leading and
    trailing dots and spaces and characters Windows forbids, defuses reserved device names and
    caps the length (keeping a short extension): the result can never leave its folder.
    """
    return _clean(name) or _clean(fallback) or "file"


#: Names that sanitising leaves as they are (job ids, "0.mp4"): checked by one regex rather
#: than character by character. Anything else takes the full path of :func:`_sanitise`.
_PLAIN = re.compile(r"[A-Za-z0-9_-](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9_-])?")


def _clean(name: str) -> str:
    """The sanitised form of ``name``; "" when nothing usable is left."""
    if (
        _PLAIN.fullmatch(name)
        and ".." not in name
        and name.split(".")[0].lower() not in _WINDOWS_RESERVED
    ):
        return name
    return _sanitise(name)


def _sanitise(name: str) -> str:
    """:func:`_clean` for any name: normalised, one component, no control characters."""
    text = unicodedata.normalize("NFC", name)
    parts = [p for p in re.split(r"[/\\]", text) if p.strip(". ")]
    text = parts[-1] if parts else ""
    text = "".join(
        "_" if c in '<>:"|?*' else c for c in text if not unicodedata.category(c).startswith("C")
    ).strip(". ")
    if text.split(".")[0].strip().lower() in _WINDOWS_RESERVED:
        text = "_" + text
    stem, ext = _split_ext(text)
    while len(stem) + len(ext) > MAX_NAME_CHARS or len((stem + ext).encode()) > MAX_NAME_BYTES:
        stem = stem[: min(len(stem) - 1, MAX_NAME_CHARS - len(ext))]
    stem = stem.rstrip(". ")
    return stem + ext if stem else ""


def _split_ext(name: str) -> tuple[str, str]:
    """Split a short alphanumeric extension (``.mp4``) off ``name``; "" when there is none."""
    stem, dot, ext = name.rpartition(".")
    if dot and stem and _EXT_RE.fullmatch(dot + ext):
        return stem, dot + ext
    return name, ""


def ext_for(name: str, content_type: str) -> str:
    """The extension an output should get: from its name, else its content type, else .mp4."""
    _, ext = _split_ext(_clean(name))
    if ext:
        return ext.lower()
    mime = content_type.split(";")[0].strip().lower()
    return _TYPE_EXT.get(mime, DEFAULT_EXT)


def output_paths(job_id: str, outputs: Sequence[tuple[str, str]]) -> list[str]:
    """Relative destinations for a job's outputs, given as ``(name, content type)`` pairs.

    One output lands at ``<job id><ext>``; several at ``<job id>/<name>``, deduplicated without
    regard to case (case-insensitive file systems would merge them otherwise).
    """
    stem = _not_owned(safe_name(job_id, fallback="job"))
    if len(outputs) == 1:
        name, ctype = outputs[0]
        paths = [_not_owned(stem + ext_for(name, ctype))]
    else:
        paths, seen = [], set()
        for i, (name, ctype) in enumerate(outputs, 1):
            clean = safe_name(name, fallback=f"output-{i}")
            base, ext = _split_ext(clean)
            ext = ext or ext_for("", ctype)
            unique, n = base + ext, 1
            while unique.lower() in seen:
                n += 1
                unique = f"{base}-{n}{ext}"
            seen.add(unique.lower())
            paths.append(f"{stem}/{unique}")
    for path in paths:
        check_relative(path)
    return paths


def _not_owned(name: str) -> str:
    """Prefix ``_`` to a top-level name that would clash with the runner's own files."""
    return "_" + name if name.lower().startswith(OWNED_PREFIXES) else name


def check_relative(rel_path: str) -> str:
    """Refuse any path that is not a plain, normalised relative path below the output folder."""
    inside = posixpath.normpath(posixpath.join("/root", rel_path)).startswith("/root/")
    if (not inside or posixpath.normpath(rel_path) != rel_path or "\\" in rel_path
            or "\x00" in rel_path or rel_path.lower().startswith(OWNED_PREFIXES)):  # fmt: skip
        raise UnsafeDownloadError(f"refusing output path {rel_path[:120]!r}: not inside the folder")
    return rel_path


def inside(out_dir: Path, rel_path: str) -> Path:
    """``out_dir/rel_path``, after checking that it resolves (symlinks included) inside.

    The folder itself is resolved once per process (:func:`resolved_folder`); below it only
    the path's own components are looked at (one ``lstat`` each, usually one or two), and a
    symlink among them is followed and must still land inside. Thousands of outputs a
    minute would otherwise resolve the whole path from ``/`` several times each.
    """
    base = resolved_folder(out_dir)
    *folders, _name = rel_path.split("/")
    # The last component needs no look: the part is opened with O_NOFOLLOW and the final
    # rename replaces a symlink there rather than following it. Folders above it are looked
    # at until one proves to be a real folder (then remembered: they are the runner's own,
    # ``.partial`` or ``<job id>/``).
    here = base
    for part in folders:
        here = here / part
        if here in _REAL_FOLDERS:
            continue
        try:
            mode = os.lstat(here).st_mode
        except FileNotFoundError:
            break  # nothing below can exist yet: it will be created as a plain folder
        if stat.S_ISLNK(mode):
            target = here.resolve()
            if target == base or not target.is_relative_to(base):
                raise UnsafeDownloadError(
                    f"refusing output path {rel_path!r}: it resolves outside {base}"
                )
        elif stat.S_ISDIR(mode) and len(_REAL_FOLDERS) < 100_000:
            _REAL_FOLDERS.add(here)
    target = base / rel_path
    if target == base:
        raise UnsafeDownloadError(f"refusing output path {rel_path!r}: it is the folder itself")
    return target


#: Folders below an output folder seen to be real folders, not symlinks.
_REAL_FOLDERS: set[Path] = set()


@functools.lru_cache(maxsize=64)
def resolved_folder(out_dir: Path) -> Path:
    """``out_dir`` with every symlink resolved (cached: a run's folder does not move)."""
    return out_dir.resolve()
