"""Small file-system steps that durability is built from, one copy each.

Every write that must survive a crash goes through these: data written in full, files created
private (0600: ledgers hold task tokens), renames made durable by fsyncing the directory, and
whole files replaced atomically. Nothing here knows about ledgers or outputs.
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

#: Mode of files that may hold task tokens or other secrets.
PRIVATE_MODE = 0o600


def file_identity(path: str | os.PathLike[str]) -> tuple[int, int, int] | None:
    """``(inode, size, mtime_ns)`` of ``path``: what changes when a file is replaced or
    written (None: there is no such file; any other OSError is raised)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` (``os.write`` may write less than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable (a no-op on Windows, where a
    directory cannot be opened for fsync)."""
    if os.name == "nt":  # pragma: no cover
        return
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DirSync:
    """fsync directories with group commit: one fsync covers every rename into the folder
    that finished before it began, so concurrent downloads share it (as the ledger's
    writes share one journal fsync). Thread-safe; call :meth:`after_rename` from the thread
    that renamed, once the rename has returned."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: per folder: [renames asked about, renames covered by an fsync, callers inside, gate]
        self._folders: dict[Path, list[Any]] = {}

    def after_rename(self, directory: Path) -> None:
        with self._lock:
            entry = self._folders.setdefault(directory, [0, 0, 0, threading.Lock()])
            entry[0] += 1
            entry[2] += 1
            mine = entry[0]
        try:
            with entry[3]:
                with self._lock:
                    if entry[1] >= mine:
                        return  # an fsync that began after our rename has covered it
                    upto = entry[0]
                fsync_dir(directory)
                with self._lock:
                    entry[1] = max(entry[1], upto)
        finally:
            with self._lock:
                entry[2] -= 1
                if entry[2] == 0 and entry[1] >= entry[0]:  # nobody inside: forget it
                    self._folders.pop(directory, None)


def create_private(path: Path, *, append: bool) -> int:
    """Open ``path`` for writing, created 0600 (and made 0600 if it existed with another
    mode); appending, or truncated."""
    mode = os.O_APPEND if append else os.O_TRUNC
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | mode, PRIVATE_MODE)
    os.fchmod(fd, PRIVATE_MODE)
    return fd


def atomic_write(
    directory: Path, name: str, data: bytes | Iterable[bytes], *, mode: int = PRIVATE_MODE
) -> Path:
    """Replace ``directory/name`` by ``data`` (bytes, or chunks written as they come, so a
    large file is never held whole) so that a crash leaves the old file or the new one,
    never a mix: temp file, write, fsync, rename, fsync the directory."""
    tmp = directory / f".{name}.tmp"
    fd = create_private(tmp, append=False)
    try:
        for chunk in (data,) if isinstance(data, bytes) else data:
            write_all(fd, chunk)
        if mode != PRIVATE_MODE:
            os.fchmod(fd, mode)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.close(fd)
    target = directory / name
    os.replace(tmp, target)
    fsync_dir(directory)
    return target


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building 100,000s of acyclic objects (a manifest's jobs, a
    ledger's records): its passes over them cost seconds and find nothing to free."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
