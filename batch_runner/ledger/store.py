"""Durable ledger: an fsync'd append-only journal beside an atomically replaced snapshot.

In the output folder: ``ledger.json`` (``{"version": 1, "seq": S, "updated_at", "runs",
"uploads", "jobs"}``) and ``journal.jsonl`` (one ``{"seq", "t", "type", "job", ...}`` per line).
State = snapshot + journal lines with ``seq > S`` (older lines are skipped, so replaying twice
changes nothing). Both files are mode 0600: they hold task tokens.

Why this shape: an event costs one short appended line whatever the number of jobs; concurrent
events share one write+fsync (group commit); the snapshot is rewritten only every
``max(compact_every, jobs)`` events or ``compact_interval`` seconds, encoded and written off the
event loop, so its cost per event is constant too.

Crash safety at any instant: the snapshot is replaced atomically (temp file, fsync, rename, fsync
dir) *before* the journal is replaced by one holding only the lines after the snapshot's seq.
The formats themselves, and how a torn or corrupt journal is read, are in :mod:`.codec`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._files import PendingRenames, atomic_write, create_private, fsync_dir, write_all
from ..errors import LedgerError
from .codec import (
    VERSION,
    decode_snapshot,
    encode_line,
    encode_snapshot,
    encode_snapshot_chunks,
    parse_journal,
    replay,
    snapshot_payload,
)
from .events import Event
from .layout import JOURNAL_NAME, SNAPSHOT_NAME
from .reading import has_ledger, read_ledger, read_summary, restore
from .state import LedgerState, apply_event

__all__ = [
    "VERSION",
    "Ledger",
    "LedgerStats",
    "decode_snapshot",
    "encode_line",
    "encode_snapshot",
    "has_ledger",
    "parse_journal",
    "read_ledger",
    "read_summary",
    "replay",
    "restore",
    "snapshot_payload",
]

log = logging.getLogger("batch_runner.ledger")

#: Lines queued at most before :meth:`Ledger.record` waits for the writer even when the
#: caller does not: registering 100,000 jobs at once would otherwise queue 100,000 lines
#: (25 MB) before the first is written, and leave that memory scattered among the records.
MAX_QUEUED = 2048


# --- the live ledger ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LedgerStats:
    """Counters for tests and benchmarks: ``fsyncs < events`` shows group commit working."""

    events: int
    writes: int
    fsyncs: int
    snapshots: int


class Ledger:
    """The run's durable record. One writer per folder (the caller holds the lock).

    :meth:`record` applies an event to :attr:`state` at once, then queues its line; one writer
    task writes every queued line with a single write+fsync in a thread and wakes the callers
    it covered. The queue is bounded (:data:`MAX_QUEUED`): past it, even a caller that does
    not need durability waits for the writer. Call it from one event loop; :meth:`flush_sync`
    and :meth:`close_sync` are for signal paths on that loop's thread or after the loop has stopped.
    """

    def __init__(
        self, directory: Path, state: LedgerState, *, compact_every: int, compact_interval: float
    ) -> None:
        self.directory = directory
        #: Folders with renames that the next journal write or snapshot must make durable
        #: first: a file is renamed into place, noted here, then recorded, and a record never
        #: reaches the disk before the rename it names.
        self.renames = PendingRenames()
        self._state = state
        self._compact_every = compact_every
        self._compact_interval = compact_interval
        self._fd = create_private(directory / JOURNAL_NAME, append=True)
        fsync_dir(directory)
        self._io_lock = threading.Lock()  # journal writes and rotation
        self._snap_lock = threading.Lock()  # snapshot files
        self._pending: list[tuple[int, bytes]] = []
        self._inflight: list[tuple[int, bytes]] = []
        self._tail: list[tuple[int, bytes]] | None = None  # written during a compaction
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self._compactor: asyncio.Task[None] | None = None
        self._written_seq = self._synced_seq = self._snapshot_seq = state.seq
        self._since_snapshot = 0
        self._last_snapshot = time.monotonic()
        self._closing = self._closed = False
        self._error: LedgerError | None = None
        self._events = self._writes = self._fsyncs = self._snapshots = 0

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        compact_every: int = 5000,
        compact_interval: float = 60.0,
    ) -> Ledger:
        """Read the folder's ledger once (restoring it after a crash) and start a journal."""
        path = Path(directory)
        try:
            path.mkdir(parents=True, exist_ok=True)
            state = restore(path)
            return cls(path, state, compact_every=compact_every, compact_interval=compact_interval)
        except OSError as exc:
            raise LedgerError(f"Cannot open the ledger in {path}: {exc}") from exc

    @property
    def state(self) -> LedgerState:
        """The live state, every recorded event applied. Read it; never mutate it."""
        return self._state

    @property
    def stats(self) -> LedgerStats:
        return LedgerStats(self._events, self._writes, self._fsyncs, self._snapshots)

    async def record(self, event: Event, *, durable: bool = True) -> int:
        """Apply ``event`` and journal it; with ``durable`` return once it is fsync'd.
        Returns the event's ``seq``.

        TransitionError (nothing applied, nothing written) for an impossible event;
        LedgerError when the ledger is closed or the disk refused an earlier write.
        """
        if self._error is not None:
            raise self._error
        if self._closing:
            raise LedgerError("The ledger is closed.")
        seq = self._state.seq + 1
        line = encode_line(seq, event)
        apply_event(self._state, event)
        self._state.seq = seq
        self._pending.append((seq, line))
        self._events += 1
        self._since_snapshot += 1
        if self._wake is None:
            self._wake = asyncio.Event()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop(), name="ledger-writer")
        self._wake.set()
        if durable or len(self._pending) >= MAX_QUEUED:
            await self._wait_for(seq)
        return seq

    async def flush(self) -> None:
        """Return once everything recorded so far is fsync'd."""
        if self._error is not None:
            raise self._error
        if self._state.seq > self._synced_seq and not self._closed:
            await self._wait_for(self._state.seq)

    async def _wait_for(self, seq: int) -> None:
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((seq, future))
        if self._wake is not None:
            self._wake.set()
        await future

    async def _write_loop(self) -> None:
        assert self._wake is not None
        while True:
            # an empty batch still runs when a flush() waits for an fsync
            if not self._pending and not (self._waiters and not self._closed):
                if self._closing:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            batch, self._pending = self._pending, []
            self._inflight = batch
            try:
                await asyncio.to_thread(self._write_batch, batch, bool(self._waiters))
            except OSError as exc:
                self._fail(exc)
                return
            finally:
                self._inflight = []
            del batch  # do not hold the written lines while waiting for the next ones
            self._release()
            self._maybe_compact()

    def _write_batch(self, batch: list[tuple[int, bytes]], sync: bool) -> None:
        """Write (and fsync) the lines not yet written; any thread, in seq order."""
        with self._io_lock:
            if self._closed:
                return
            fresh = [item for item in batch if item[0] > self._written_seq]
            if fresh:
                self.renames.sync()
                write_all(self._fd, b"".join(line for _, line in fresh))
                self._written_seq = fresh[-1][0]
                self._writes += 1
                if self._tail is not None:
                    self._tail.extend(fresh)
            if sync and self._synced_seq < self._written_seq:
                os.fsync(self._fd)
                self._fsyncs += 1
                self._synced_seq = self._written_seq

    def _release(self) -> None:
        while self._waiters and self._waiters[0][0] <= self._synced_seq:
            future = self._waiters.popleft()[1]
            if not future.done():
                future.set_result(None)

    def _fail(self, exc: OSError) -> LedgerError:
        error = self._error = LedgerError(f"Cannot write the ledger in {self.directory}: {exc}")
        while self._waiters:
            future = self._waiters.popleft()[1]
            if not future.done():
                future.set_exception(error)
        return error

    def _maybe_compact(self) -> None:
        if self._compactor is not None and not self._compactor.done():
            return
        due = max(self._compact_every, len(self._state.jobs))
        late = time.monotonic() - self._last_snapshot >= self._compact_interval
        if self._since_snapshot >= due or (late and self._since_snapshot):
            self._since_snapshot = 0
            self._last_snapshot = time.monotonic()
            self._tail = []  # before the copy: every line after it is captured
            payload = snapshot_payload(self._state)
            self._compactor = asyncio.create_task(self._compact(payload), name="ledger-compact")

    async def _compact(self, payload: dict[str, Any]) -> None:
        try:
            await asyncio.to_thread(self._compact_sync, payload)
        except OSError as exc:
            self._tail = None
            self._fail(exc)

    def _compact_sync(self, payload: dict[str, Any]) -> None:
        """Snapshot first, then a journal holding only the lines after it (crash-safe)."""
        seq = payload["seq"]
        stored = self._store_snapshot(payload)
        with self._io_lock:
            tail, self._tail = self._tail or [], None
            if self._closed or not stored:
                return
            tmp = self.directory / f".{JOURNAL_NAME}.tmp"
            fd = create_private(tmp, append=True)
            try:
                write_all(fd, b"".join(line for s, line in tail if s > seq))
                os.fsync(fd)
                os.replace(tmp, self.directory / JOURNAL_NAME)
                fsync_dir(self.directory)
            except BaseException:
                os.close(fd)
                raise
            os.close(self._fd)
            self._fd = fd
            self._synced_seq = self._written_seq

    def _store_snapshot(self, payload: dict[str, Any]) -> bool:
        seq = payload["seq"]
        with self._snap_lock:
            if self._closed or seq <= self._snapshot_seq:
                return False
            self.renames.sync()
            atomic_write(self.directory, SNAPSHOT_NAME, encode_snapshot_chunks(payload))
            self._snapshot_seq = seq
            self._snapshots += 1
            return True

    def _finish(self, payload: dict[str, Any]) -> None:
        """Final snapshot, then the journal goes: ``ledger.json`` alone is complete."""
        self._store_snapshot(payload)
        with self._snap_lock, self._io_lock:
            if self._closed:
                return
            self._closed = True
            os.close(self._fd)
            with contextlib.suppress(FileNotFoundError):
                (self.directory / JOURNAL_NAME).unlink()
            fsync_dir(self.directory)
            self._synced_seq = self._written_seq = self._state.seq

    async def close(self) -> None:
        """Flush, write the final snapshot off the loop, remove the journal."""
        if self._closed:
            return
        self._closing = True
        if self._writer is not None and self._wake is not None:
            self._wake.set()
            await self._writer
        if self._compactor is not None:
            await self._compactor
        try:
            await asyncio.to_thread(self._finish, snapshot_payload(self._state))
        except OSError as exc:
            raise LedgerError(f"Cannot write the ledger in {self.directory}: {exc}") from exc
        self._release()

    def flush_sync(self) -> None:
        """Write and fsync everything recorded, blocking: for a signal path."""
        batch, self._pending = [*self._inflight, *self._pending], []
        try:
            self._write_batch(batch, True)
        except OSError as exc:
            raise self._fail(exc) from exc
        with contextlib.suppress(RuntimeError):  # the loop may be gone
            self._release()

    def close_sync(self) -> None:
        """:meth:`close`, blocking: flush, final snapshot, journal removed."""
        if self._closed:
            return
        self._closing = True
        self.flush_sync()
        try:
            self._finish(snapshot_payload(self._state))
        except OSError as exc:
            raise LedgerError(f"Cannot write the ledger in {self.directory}: {exc}") from exc
        if self._wake is not None:
            self._wake.set()  # let the writer task end
