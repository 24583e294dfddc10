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


class PendingRenames:
    """Folders holding renames that are not durable yet, made durable together by :meth:`sync`.

    A rename survives a crash once its folder is fsync'd. Whoever renames notes the folder
    here; whoever is about to write a record naming the file calls :meth:`sync` first (the
    ledger does, before every journal write and snapshot). Concurrent renames then share
    one fsync per folder, and the renaming side needs no thread hop of its own for it: on a
    saturated event loop each hop is a round of GIL handoffs. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the set
        self._gate = threading.Lock()  # one sync at a time
        self._folders: set[Path] = set()

    def note(self, *folders: Path) -> None:
        """Remember ``folders`` as holding a rename that :meth:`sync` must make durable."""
        with self._lock:
            self._folders.update(folders)

    @property
    def pending(self) -> frozenset[Path]:
        with self._lock:
            return frozenset(self._folders)

    def sync(self) -> None:
        """fsync every folder noted before this call; return only once they are durable,
        those another thread's sync took included (so one sync at a time). On an error the
        folders stay noted and the OSError is raised."""
        with self._gate:
            with self._lock:
                folders, self._folders = self._folders, set()
            done: set[Path] = set()
            try:
                for folder in folders:
                    fsync_dir(folder)
                    done.add(folder)
            except BaseException:
                with self._lock:
                    self._folders |= folders - done
                raise


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
