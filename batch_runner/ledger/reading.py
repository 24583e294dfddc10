"""Reading an output folder's ledger without a lock and without writing, and folding a
killed run's journal into a fresh snapshot.

Apart from :mod:`.store` (the live, writing ledger) so that a read-only command such as
``status`` does not import asyncio and the writer behind it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, TypeVar

from .._files import PRIVATE_MODE, atomic_write, file_identity, fsync_dir, gc_paused
from ..errors import LedgerError
from .codec import (
    Gap,
    encode_snapshot_chunks,
    parse_journal,
    read_snapshot,
    replay,
    snapshot_payload,
)
from .layout import JOURNAL_NAME, SNAPSHOT_NAME
from .state import LedgerState
from .summary import Summary, summarize, summarize_pieces

log = logging.getLogger("batch_runner.ledger")


class _Loaded(NamedTuple):
    state: LedgerState
    snapshot: bool  # ledger.json exists
    journal: bool  # journal.jsonl exists
    torn: int  # bytes of torn tail in the journal


@gc_paused()
def _load(directory: Path) -> _Loaded:
    """Snapshot + journal, writing nothing."""
    snapshot, journal = directory / SNAPSHOT_NAME, directory / JOURNAL_NAME
    try:
        state = read_snapshot(snapshot)
        found = True
    except FileNotFoundError:
        state, found = LedgerState(), False
    try:
        data = journal.read_bytes()
    except FileNotFoundError:
        return _Loaded(state, found, False, 0)
    events, good_end = parse_journal(data, str(journal))
    replay(state, events, str(journal))
    return _Loaded(state, found, True, len(data) - good_end)


def has_ledger(directory: Path) -> bool:
    """True when ``directory`` holds a ledger (a snapshot, or a journal a killed run left)."""
    return (directory / SNAPSHOT_NAME).exists() or (directory / JOURNAL_NAME).exists()


def read_ledger(directory: str | os.PathLike[str]) -> LedgerState:
    """The ledger's current state without a lock and without writing: safe while a run is
    active (retries when a compaction replaces the files under it)."""
    directory = Path(directory)

    def read() -> LedgerState | None:
        loaded = _load(directory)
        return loaded.state if loaded.snapshot or loaded.journal else None

    return _consistent(directory, read)


T = TypeVar("T")


def _consistent(directory: Path, read: Callable[[], T | None]) -> T:
    """``read()`` of a snapshot that did not change while it was read: a compaction may
    replace the files under a reader (then the journal may start after the snapshot it
    read, a :class:`Gap`), so read again, up to 20 times. LedgerError when there is no
    ledger (``read`` gives None) or it cannot be read."""
    snapshot = directory / SNAPSHOT_NAME
    for _ in range(20):
        before = file_identity(snapshot)
        try:
            found = read()
        except Gap:
            time.sleep(0.01)
            continue
        except OSError as exc:
            raise LedgerError(f"Cannot read the ledger in {directory}: {exc}") from exc
        if found is None:
            raise LedgerError(f"There is no ledger in {directory}.")
        if file_identity(snapshot) == before:
            return found
    raise LedgerError(f"The ledger in {directory} kept changing while being read.")


#: How much of ``ledger.json`` :func:`read_summary` holds at a time.
SUMMARY_PIECE = 2 << 20


@gc_paused()
def _summarize(directory: Path) -> Summary | None:
    """The figures of the snapshot + journal, writing nothing; None when neither exists.
    The snapshot is read a piece at a time from one open file (the same bytes for the
    decode, should the scan hand over to it)."""
    snapshot, journal = directory / SNAPSHOT_NAME, directory / JOURNAL_NAME
    where = {"snapshot_where": str(snapshot), "journal_where": str(journal)}
    try:
        file = snapshot.open("rb")
    except FileNotFoundError:
        file = None
    with file if file is not None else contextlib.nullcontext():
        try:
            tail: bytes | None = journal.read_bytes()
        except FileNotFoundError:
            tail = None
        if file is None:
            return None if tail is None else summarize(None, tail, **where)

        def whole() -> bytes:
            file.seek(0)
            return file.read()

        pieces = functools.partial(iter, functools.partial(file.read, SUMMARY_PIECE), b"")
        return summarize_pieces(pieces, whole, tail, **where)


def read_summary(directory: str | os.PathLike[str]) -> Summary:
    """What ``status`` shows of the ledger (:mod:`.summary`): the same figures as
    :func:`read_ledger`'s state gives, without decoding every record, and as safe while
    a run is active (retries when a compaction replaces the files under it)."""
    directory = Path(directory)
    return _consistent(directory, lambda: _summarize(directory))


def restore(directory: str | os.PathLike[str]) -> LedgerState:
    """Fold the journal into a fresh ``ledger.json`` and remove it (after ``kill -9``).
    The caller must hold the folder's lock."""
    directory = Path(directory)
    try:
        loaded = _load(directory)
        if loaded.torn:
            log.warning(
                "%s: dropped a torn tail of %d bytes", directory / JOURNAL_NAME, loaded.torn
            )
        if loaded.journal or not loaded.snapshot:
            payload = snapshot_payload(loaded.state)
            atomic_write(directory, SNAPSHOT_NAME, encode_snapshot_chunks(payload))
            with contextlib.suppress(FileNotFoundError):
                (directory / JOURNAL_NAME).unlink()
            fsync_dir(directory)
        elif (directory / SNAPSHOT_NAME).stat().st_mode & 0o777 != PRIVATE_MODE:
            os.chmod(directory / SNAPSHOT_NAME, PRIVATE_MODE)
        for name in (SNAPSHOT_NAME, JOURNAL_NAME):  # leftovers of a killed compaction
            with contextlib.suppress(FileNotFoundError):
                (directory / f".{name}.tmp").unlink()
    except OSError as exc:
        raise LedgerError(f"Cannot restore the ledger in {directory}: {exc}") from exc
    return loaded.state
