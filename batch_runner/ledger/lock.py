"""One run per output folder: an OS-level lock (released by the kernel even after ``kill -9``).

The lock file is ``DIR/.lock``; beside it ``DIR/.lock.json`` names the holder (pid, host,
start time) so that a second run can say who holds the folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from ..errors import LockedError
from .layout import HOLDER_NAME, LOCK_NAME


def holder_info(out_dir: Path) -> dict[str, object] | None:
    """What the last holder wrote about itself, or None."""
    try:
        data = json.loads((out_dir / HOLDER_NAME).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_locked(out_dir: Path) -> bool:
    """True when a live process holds the folder's lock (checked without keeping it).

    On POSIX the probe is the ``flock`` that filelock itself takes, tried and let go, so a
    read-only command (``status``) does not import filelock and asyncio behind it (70 ms of
    a 0.3 s start-up); elsewhere, or where the file system has no ``flock``, filelock."""
    path = out_dir / LOCK_NAME
    if not path.exists():
        return False
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return _probe(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return _probe(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # no flock here: filelock falls back to its soft lock, so ask it
        return _probe(path)
    finally:
        os.close(fd)  # closing the descriptor lets go of a lock it took
    return False


def _probe(path: Path) -> bool:
    from filelock import FileLock, Timeout

    probe = FileLock(str(path), timeout=0)
    try:
        probe.acquire()
    except Timeout:
        return True
    probe.release()
    return False


class RunLock:
    """Hold ``DIR/.lock`` for the duration of a run; raise :class:`LockedError` at once if taken."""

    def __init__(self, out_dir: Path) -> None:
        from filelock import FileLock

        self.out_dir = out_dir
        self._lock = FileLock(str(out_dir / LOCK_NAME), timeout=0, mode=0o600)
        self._holder: dict[str, object] = {}

    def acquire(self) -> None:
        from filelock import Timeout

        self.out_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except Timeout:
            info = holder_info(self.out_dir) or {}
            who = f"process {info.get('pid', '?')} on {info.get('host', '?')}"
            since = info.get("started")
            when = f", running since {since}" if since else ""
            raise LockedError(
                f"Another run ({who}{when}) holds the output folder {self.out_dir}. "
                "Wait for it to finish, or stop it, then re-run."
            ) from None
        self._holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        self._write_holder()

    def describe(self, **facts: object) -> None:
        """Add facts about the running run to the holder file (``status`` shows them), such
        as how it tracks completion. Best effort: a failed write changes nothing else."""
        if self._lock.is_locked:
            self._holder.update(facts)
            with contextlib.suppress(OSError):
                self._write_holder()

    def _write_holder(self) -> None:
        tmp = self.out_dir / (HOLDER_NAME + ".tmp")
        tmp.write_text(json.dumps(self._holder), "utf-8")
        os.replace(tmp, self.out_dir / HOLDER_NAME)

    def release(self) -> None:
        if self._lock.is_locked:
            try:
                (self.out_dir / HOLDER_NAME).unlink(missing_ok=True)
            finally:
                self._lock.release()

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
