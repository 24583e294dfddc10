"""The ledger's two file formats, as pure functions of bytes and state.

``ledger.json`` (``{"version": 1, "seq": S, "updated_at", "runs", "uploads", "jobs"}``) is a
snapshot; ``journal.jsonl`` holds one ``{"seq", "t", "type", "job", ...}`` line per event.
State = snapshot + journal lines with ``seq > S`` (older lines are skipped, so replaying twice
changes nothing). Only newline-terminated lines count; unparsable lines at the very end are a
torn write and are dropped. An unparsable line *followed by a good one* is corruption:
LedgerError naming the line, because skipping it could forget a task id and pay twice.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from ..errors import LedgerError
from .events import Event, event_from_dict, event_to_dict
from .layout import JOURNAL_NAME, SNAPSHOT_NAME
from .state import JobRecord, LedgerState, RunInfo, TransitionError, apply_event

VERSION = 1

log = logging.getLogger("batch_runner.ledger")


def snapshot_payload(state: LedgerState) -> dict[str, Any]:
    """A consistent copy of ``state`` to encode elsewhere: shallow copies (records are
    immutable), so taking it on the event loop is cheap even at 100,000 jobs."""
    return {
        "version": VERSION,
        "seq": state.seq,
        "updated_at": state.updated_at,
        "runs": list(state.runs),
        "uploads": dict(state.uploads),
        "jobs": dict(state.jobs),
    }


def encode_snapshot(payload: dict[str, Any]) -> bytes:
    """``ledger.json`` bytes; orjson serialises the record dataclasses natively (fast)."""
    return orjson.dumps(payload)


def decode_snapshot(data: bytes, where: str = SNAPSHOT_NAME) -> LedgerState:
    """Parse ``ledger.json``; LedgerError when it is not a ledger this version can read."""
    try:
        raw = orjson.loads(data)
        if not isinstance(raw, dict):
            raise TypeError("not a JSON object")
        if raw.get("version") != VERSION:
            raise LedgerError(f"{where} has version {raw.get('version')!r}; expected {VERSION}.")
        raw_jobs = raw["jobs"]
        jobs: dict[str, JobRecord] = {}
        for key in list(raw_jobs):
            # Pop as we go: each parsed dict is freed once its record exists, so the peak
            # stays near one copy of the jobs rather than two (100,000 jobs: ~150 MB less).
            jobs[key] = JobRecord.from_dict(raw_jobs.pop(key))
        state = LedgerState(
            jobs=jobs,
            uploads={str(k): str(v) for k, v in raw.get("uploads", {}).items()},
            runs=[RunInfo(**run) for run in raw.get("runs", [])],
            seq=int(raw["seq"]),
            updated_at=raw.get("updated_at"),
        )
    except LedgerError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise LedgerError(f"{where} is not a readable ledger: {exc!r}") from exc
    state.recount()
    return state


def encode_line(seq: int, event: Event) -> bytes:
    """One journal line, newline included."""
    line = orjson.dumps({"seq": seq, **event_to_dict(event)}, option=orjson.OPT_APPEND_NEWLINE)
    # orjson (3.13) hands back a 4 KiB allocation for a ~150-byte line; lines queued for the
    # writer would hold 4 KiB each (400 MB for 100,000 queued events), so keep an exact copy.
    return bytes(memoryview(line))


def parse_journal(data: bytes, where: str = JOURNAL_NAME) -> tuple[list[tuple[int, Event]], int]:
    """The journal's events in file order, and the byte length of its good prefix (what a
    writer keeps; anything after it is a torn tail)."""
    events: list[tuple[int, Event]] = []
    good_end = pos = lineno = 0
    bad: tuple[int, str] | None = None
    while (end := data.find(b"\n", pos)) >= 0:
        lineno, line, pos = lineno + 1, data[pos:end], end + 1
        if not line.strip():
            good_end = pos if bad is None else good_end
            continue
        try:
            obj = orjson.loads(line)
            seq = obj["seq"]
            if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
                raise ValueError(f"bad seq {seq!r}")
            event = event_from_dict(obj)
        except (ValueError, KeyError, TypeError) as exc:
            bad = bad or (lineno, repr(exc))
            continue
        if bad is not None:
            raise LedgerError(
                f"{where}: line {bad[0]} is corrupt ({bad[1]}) but later ones are not."
            )
        events.append((seq, event))
        good_end = pos
    return events, good_end


class Gap(LedgerError):
    """The journal starts after the snapshot ends: a snapshot changed under a reader."""


def replay(state: LedgerState, events: list[tuple[int, Event]], where: str = JOURNAL_NAME) -> int:
    """Apply the events newer than ``state.seq``; returns how many applied. Impossible events
    (never written by :class:`Ledger`) are skipped with a warning so a journal always replays."""
    applied = 0
    for seq, event in events:
        if seq <= state.seq:
            continue
        if seq != state.seq + 1:
            raise Gap(f"{where}: seq {seq} follows {state.seq}; events are missing.")
        try:
            apply_event(state, event)
        except TransitionError as exc:
            state.skipped += 1
            log.warning("%s: skipping seq %d: %s", where, seq, exc)
        state.seq = seq
        applied += 1
    return applied
