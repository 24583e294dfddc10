"""The ledger's two file formats, as pure functions of bytes and state.

``ledger.json`` (``{"version": 1, "seq": S, "updated_at", "runs", "uploads", "jobs"}``) is a
snapshot; ``journal.jsonl`` holds one ``{"seq", "t", "type", "job", ...}`` line per event.
State = snapshot + journal lines with ``seq > S`` (older lines are skipped, so replaying twice
changes nothing). Only newline-terminated lines count; unparsable lines at the very end are a
torn write and are dropped. An unparsable line *followed by a good one* is corruption:
LedgerError naming the line, because skipping it could forget a task id and pay twice.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Mapping
from itertools import islice
from pathlib import Path
from typing import Any

import orjson

from ..errors import LedgerError
from .events import Event, event_from_dict, event_to_dict
from .layout import JOURNAL_NAME, SNAPSHOT_NAME
from .records import Records
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
        "jobs": state.jobs.copy(),
    }


def encode_snapshot(payload: dict[str, Any]) -> bytes:
    """``ledger.json`` bytes; orjson serialises the record dataclasses natively (fast), each
    record an object whose first key is ``job_id`` (what :func:`iter_snapshot` finds)."""
    return b"".join(encode_snapshot_chunks(payload))


#: Records per chunk: large enough that orjson's per-call cost vanishes, small enough that a
#: chunk is a few MB at most.
_CHUNK = 1024


def encode_snapshot_chunks(payload: dict[str, Any]) -> Iterator[bytes]:
    """:func:`encode_snapshot`'s bytes in pieces of ``_CHUNK`` records, byte for byte the same
    as ``orjson.dumps(payload)``: a writer never holds the whole encoded file (78 MB at
    100,000 jobs, and orjson's growing buffer more) beside the state it encodes."""
    jobs: Mapping[str, Any] = payload["jobs"]
    head = orjson.dumps({k: v for k, v in payload.items() if k != "jobs"})
    yield head[:-1] + (b',"jobs":{' if len(head) > 2 else b'"jobs":{')
    items = jobs.encoded_items() if isinstance(jobs, Records) else iter(jobs.items())
    first = True
    while batch := dict(islice(items, _CHUNK)):
        part = orjson.dumps(batch)[1:-1]  # "id":{...},"id":{...}
        yield part if first else b"," + part
        first = False
    yield b"}}"


#: Where a record starts: every record is an object whose first key is ``job_id``, and no
#: other object of the file has that key (in JSON text the quotes of these bytes cannot be
#: inside a string: there they are escaped).
RECORD_MARK = b':{"job_id":'
#: Where the records begin, after the top level (``encode_snapshot`` writes ``jobs`` last).
JOBS_MARK = b',"jobs":{'


def read_head(pieces: Iterator[bytes]) -> tuple[Any, bytes, int]:
    """The top level of a snapshot as :func:`encode_snapshot` lays it out, read from
    ``pieces`` (consumed only until ``jobs`` starts): its parsed value (None when it does
    not parse), the bytes read so far, and where :data:`JOBS_MARK` is in them (-1: not
    that layout)."""
    buffer = b""
    for piece in pieces:
        buffer += piece
        split = buffer.find(JOBS_MARK)
        if split >= 0:
            try:
                return orjson.loads(buffer[:split] + b"}"), buffer, split
            except ValueError:
                return None, buffer, -1
    return None, buffer, -1


def iter_snapshot(
    data: bytes, where: str = SNAPSHOT_NAME, *, whole: bool = False
) -> tuple[dict[str, Any], Iterator[tuple[str, dict[str, Any]]]]:
    """The snapshot's top level (everything but ``jobs``) and its records one by one, as
    parsed JSON: each parsed record can be freed before the next is read, so a reader never
    holds a parsed copy of 100,000 records (about 2.6 KB each).

    A file as :func:`encode_snapshot` writes it is cut into its records and each is parsed
    alone; any other valid ledger (pretty-printed, hand-edited, fields in another order), or
    any file with ``whole``, is parsed whole and its records are handed out and dropped one
    by one. LedgerError when it is not a ledger this version can read; :class:`NotCut` from
    the records when a file that looked cut-able is not (read it again with ``whole``): a
    wrong cut can never parse, since it would leave an object unclosed or text after it."""
    head = None if whole else _cut_head(data)
    if head is None:
        try:
            raw = orjson.loads(data)
        except ValueError as exc:
            raise LedgerError(f"{where} is not a readable ledger: {exc!r}") from exc
        _checked_head(raw, where)
        raw_jobs = raw.get("jobs")
        head = {k: v for k, v in raw.items() if k != "jobs"}
        if not isinstance(raw_jobs, dict):
            raise LedgerError(f"{where} is not a readable ledger: KeyError('jobs')")
        return head, _popped(raw_jobs)
    return _checked_head(head, where), _cut_records(data)


class NotCut(ValueError):
    """The records of what looked like :func:`encode_snapshot`'s output are not."""


def _cut_head(data: bytes) -> dict[str, Any] | None:
    """The top level of a file as encode_snapshot writes it (``jobs`` last), else None."""
    if not data.endswith(b"}}"):
        return None
    head, _, _ = read_head(iter((data,)))
    return head if isinstance(head, dict) and "jobs" not in head else None


def _checked_head(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise LedgerError(f"{where} is not a readable ledger: TypeError('not a JSON object')")
    if raw.get("version") != VERSION:
        raise LedgerError(f"{where} has version {raw.get('version')!r}; expected {VERSION}.")
    return raw


def _popped(raw_jobs: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for key in list(raw_jobs):
        yield key, raw_jobs.pop(key)


def _cut_records(data: bytes) -> Iterator[tuple[str, dict[str, Any]]]:
    """``"id":{"job_id":...},"id":{"job_id":...}}}``, one record at a time."""
    return _cut_pieces(iter(()), data)


#: Bytes read at a time by :func:`read_snapshot`.
_PIECE = 1 << 20


def _cut_pieces(pieces: Iterator[bytes], buf: bytes) -> Iterator[tuple[str, dict[str, Any]]]:
    """The records of ``buf`` followed by ``pieces`` (a snapshot from anywhere before
    :data:`JOBS_MARK` to its end), cut as they arrive: only the piece being cut and the
    record that spans into the next are held, never the whole file."""
    loads = orjson.loads
    done = False  # every piece read
    while (pos := buf.find(JOBS_MARK)) < 0:
        piece = next(pieces, None)
        if piece is None:
            raise NotCut("no jobs")
        buf += piece
    pos += len(JOBS_MARK)
    while True:
        start = buf.find(RECORD_MARK, pos)
        after = buf.find(RECORD_MARK, start + 1) if start >= 0 else -1
        if after < 0 and not done:  # the record at start may go on in the next piece
            piece = next(pieces, None)
            if piece is None:
                done = True
                if not buf.endswith(b"}}"):
                    raise NotCut("the file does not end its records")
            else:
                buf, pos = buf[pos:] + piece, 0
            continue
        last = len(buf) - 2  # the closing braces of "jobs" and of the file
        if start < 0:
            if pos >= last:
                return  # "jobs":{}
            raise NotCut("a record without job_id")
        end = last if after < 0 else buf.rfind(b',"', start, after)
        view = memoryview(buf)
        try:
            key = loads(view[pos:start])
            record = loads(view[start + 1 : end])
        except ValueError as exc:
            raise NotCut(str(exc)) from None
        finally:
            view.release()
        if type(key) is not str or type(record) is not dict:
            raise NotCut("not a record")
        yield key, record
        if after < 0:
            return
        pos = end + 1


class _Shared:
    """One object per distinct value that most records repeat (the model, output names,
    content types and kinds, sizes, prices): 100,000 records then hold one copy of each,
    not 100,000 (about 400 bytes a record)."""

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}
        self.ints: dict[int, int] = {}
        self.floats: dict[float, float] = {}

    def record(self, raw: dict[str, Any]) -> dict[str, Any]:
        texts = self.texts
        model = raw.get("model")
        if type(model) is str:
            raw["model"] = texts.setdefault(model, model)
        cost = raw.get("cost")
        if type(cost) is float:
            raw["cost"] = self.floats.setdefault(cost, cost)
        for name in ("remote_outputs", "outputs"):
            items = raw.get(name)
            if type(items) is list:
                for item in items:
                    if type(item) is dict:
                        self.output(item)
        return raw

    def output(self, item: dict[str, Any]) -> None:
        texts = self.texts
        for key in ("name", "contenttype", "content_type", "kind"):
            value = item.get(key)
            if type(value) is str:
                item[key] = texts.setdefault(value, value)
        size = item.get("size")
        if type(size) is int:
            item["size"] = self.ints.setdefault(size, size)


def decode_snapshot(data: bytes, where: str = SNAPSHOT_NAME) -> LedgerState:
    """Parse ``ledger.json``; LedgerError when it is not a ledger this version can read.
    Records are built one at a time from their own line (or popped from the parsed file),
    so the peak stays near one copy of the jobs, and values most records repeat are
    shared between them (:class:`_Shared`)."""
    return _decoded(lambda whole: iter_snapshot(data, where, whole=whole), where)


def read_snapshot(path: Path) -> LedgerState:
    """:func:`decode_snapshot` of the file at ``path``, read in pieces: the file's bytes
    (78 MB at 100,000 jobs) are never held beside the records built from them. A file
    that is not laid out as :func:`encode_snapshot` writes it is read whole.
    FileNotFoundError when there is none."""
    where = str(path)
    with open(path, "rb") as handle:

        def parts(whole: bool) -> tuple[dict[str, Any], Iterator[tuple[str, dict[str, Any]]]]:
            handle.seek(0)
            if whole:
                return iter_snapshot(handle.read(), where, whole=True)
            pieces = iter(functools.partial(handle.read, _PIECE), b"")
            head, buffer, split = read_head(pieces)
            if split < 0 or not isinstance(head, dict) or "jobs" in head:
                return iter_snapshot(buffer + handle.read(), where)
            return _checked_head(head, where), _cut_pieces(pieces, buffer[split:])

        return _decoded(parts, where)


def _decoded(
    parts: Callable[[bool], tuple[dict[str, Any], Iterator[tuple[str, dict[str, Any]]]]],
    where: str,
) -> LedgerState:
    """The state of a snapshot whose top level and records ``parts(whole)`` gives (cut
    into records, or with ``whole`` parsed whole: when a cut fails)."""
    try:
        try:
            head, jobs = _decode(*parts(False))
        except NotCut:
            head, jobs = _decode(*parts(True))
        state = head_state(head, jobs)
    except LedgerError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise LedgerError(f"{where} is not a readable ledger: {exc!r}") from exc
    state.recount()
    return state


def head_state(head: dict[str, Any], jobs: dict[str, JobRecord]) -> LedgerState:
    """A state holding ``jobs`` under a snapshot's top level (runs, uploads, seq); KeyError,
    TypeError, ValueError or AttributeError when that top level is malformed."""
    return LedgerState(
        jobs=Records(jobs),
        uploads={str(k): str(v) for k, v in head.get("uploads", {}).items()},
        runs=[RunInfo(**run) for run in head.get("runs", [])],
        seq=int(head["seq"]),
        updated_at=head.get("updated_at"),
    )


def _decode(
    head: dict[str, Any], records: Iterator[tuple[str, dict[str, Any]]]
) -> tuple[dict[str, Any], dict[str, JobRecord]]:
    shared = _Shared()
    jobs: dict[str, JobRecord] = {}
    for key, raw in records:
        jobs[key] = JobRecord.from_dict(shared.record(raw))
    return head, jobs


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
