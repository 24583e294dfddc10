"""``status``'s figures of a ledger, straight from the bytes of its two files.

Decoding a 100,000-job snapshot into records takes seconds, and ``status`` needs only the
job count, the counts by status, the cost, the runs, the failures and the publishing
figures. So a snapshot as :func:`.codec.encode_snapshot` writes it is scanned as bytes, a
piece at a time (the reader never holds the whole file): a regular expression matches each
record's leading fields (``job_id`` to ``cost``, in the order the record dataclass writes
them) and C loops count statuses and sum costs. Only the records that need more are parsed:
failed or cancelled ones (their rows), succeeded ones when a run published (their outputs),
and the ones a journal tail touches, which are replayed with :func:`.codec.replay` on a
state holding just them, so a killed run's events apply exactly as ``read_ledger`` applies
them.

Anything else (another layout, a record whose leading fields do not match, a malformed
value) is decoded the old way, whole: the figures always equal ``of_state(`` *the decoded
state* ``)``, and the errors are the decode's. Pure: the caller reads the files
(:func:`.store.read_summary`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache, reduce
from operator import add, itemgetter
from typing import Any

import orjson

from ..errors import LedgerError
from .codec import (
    JOBS_MARK,
    RECORD_MARK,
    VERSION,
    Gap,
    NotCut,
    decode_snapshot,
    head_state,
    parse_journal,
    read_head,
    replay,
)
from .events import JobEvent, RunStarted, parse_published, parse_saved
from .layout import JOURNAL_NAME, SNAPSHOT_NAME
from .published import PublishFigures, figures, figures_of, last_target
from .records import Records
from .state import (
    JobRecord,
    JobStatus,
    LedgerState,
    RunInfo,
    counts_by_status,
    failures,
    total_cost,
)

__all__ = ["Summary", "of_state", "scan", "summarize", "summarize_pieces"]


@dataclass(frozen=True, slots=True)
class Summary:
    """A folder's figures: what ``status`` shows of its ledger."""

    jobs: int
    #: jobs per status value, every status present, in lifecycle order
    counts: dict[str, int]
    #: :func:`.state.total_cost`
    cost: float
    runs: list[RunInfo]
    #: failed and cancelled jobs in manifest order: ``job``, ``status``, ``error``, ``taskid``
    failures: list[dict[str, Any]]
    #: publishing figures for the last run's target, None when no run published
    publish: PublishFigures | None


def _row(record: JobRecord) -> dict[str, Any]:
    return {
        "job": record.job_id,
        "status": record.status.value,
        "error": record.error,
        "taskid": record.taskid,
    }


def of_state(state: LedgerState) -> Summary:
    """The figures of a decoded state: the reference every scan agrees with."""
    target = last_target(state)
    return Summary(
        jobs=len(state.jobs),
        counts=counts_by_status(state),
        cost=total_cost(state),
        runs=list(state.runs),
        failures=[_row(r) for r in failures(state)],
        publish=figures(state, target) if target else None,
    )


def summarize(
    snapshot: bytes | None,
    journal: bytes | None,
    *,
    snapshot_where: str = SNAPSHOT_NAME,
    journal_where: str = JOURNAL_NAME,
) -> Summary:
    """The figures of a ledger whose ``ledger.json`` and ``journal.jsonl`` hold these bytes
    (None: no such file). LedgerError as decoding raises it; :class:`.codec.Gap` when the
    journal starts after the snapshot (the files changed under the reader: read again)."""
    if snapshot is None:
        return _decoded(None, journal, snapshot_where, journal_where)
    return summarize_pieces(
        lambda: (snapshot,),
        lambda: snapshot,
        journal,
        snapshot_where=snapshot_where,
        journal_where=journal_where,
    )


def summarize_pieces(
    pieces: Callable[[], Iterable[bytes]],
    whole: Callable[[], bytes],
    journal: bytes | None,
    *,
    snapshot_where: str = SNAPSHOT_NAME,
    journal_where: str = JOURNAL_NAME,
) -> Summary:
    """:func:`summarize` of a snapshot handed over as ``pieces()`` (its bytes in order, cut
    anywhere); ``whole()`` gives all of them at once, for the decode, when the scan cannot
    read them (the same bytes: the caller keeps the file open, or checks it did not change)."""
    try:
        found = scan(pieces(), journal, snapshot_where, journal_where)
    except Gap:
        raise
    except (LedgerError, KeyError, TypeError, ValueError, AttributeError):
        found = None  # decoding says what is wrong, in its own words
    if found is not None:
        return found
    return _decoded(whole(), journal, snapshot_where, journal_where)


def _decoded(
    snapshot: bytes | None, journal: bytes | None, where: str, journal_where: str
) -> Summary:
    state = decode_snapshot(snapshot, where) if snapshot is not None else LedgerState()
    if journal is not None:
        replay(state, parse_journal(journal, journal_where)[0], journal_where)
    return of_state(state)


# --- the scan ------------------------------------------------------------------------------

_STR = rb'"[^"\\]*(?:\\.[^"\\]*)*"'
_OPT = rb"(?:null|" + _STR + rb")"
_NUM = rb"(?:null|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)"


def _head(status: bytes, *, rows: bool) -> re.Pattern[bytes]:
    """A record's leading fields as :func:`.codec.encode_snapshot` writes them, the status
    one of ``status``; groups (status, cost), or with ``rows`` (job_id, status, taskid,
    error). It starts with the literal record mark, which ``re`` searches for quickly."""
    job_id, taskid, error, cost = (
        (b"(" + _STR + b")", b"(" + _OPT + b")", b"(" + _OPT + b")", _NUM)
        if rows
        else (_STR, _OPT, _OPT, b"(" + _NUM + b")")
    )
    return re.compile(
        re.escape(RECORD_MARK) + job_id + rb',"status":"(' + status + rb')","fingerprint":' + _STR
        + rb',"attempts":-?[0-9]+,"taskid":' + taskid + rb',"tasktoken":' + _OPT
        + rb',"marker":' + _OPT + rb',"service_status":' + _OPT + rb',"error":' + error
        + rb',"cost":' + cost + rb',"remote_outputs":\['
    )  # fmt: skip


@cache
def _patterns() -> tuple[re.Pattern[bytes], ...]:
    """Compiled on first use, not at import (10 ms every command would pay): the counting
    pattern, then the row patterns for every record, failed ones and succeeded ones."""
    every = rb"[a-z]+"
    return (
        _head(every, rows=False),
        _head(every, rows=True),
        _head(rb"failed|cancelled", rows=True),
        _head(rb"succeeded", rows=True),
    )


_BAD = (JobStatus.FAILED, JobStatus.CANCELLED)


def scan(
    pieces: Iterable[bytes],
    journal: bytes | None,
    where: str = SNAPSHOT_NAME,
    journal_where: str = JOURNAL_NAME,
) -> Summary | None:
    """:func:`summarize` for a snapshot in encode_snapshot's layout, its bytes in
    ``pieces``; None for another layout, NotCut (or another ValueError) when a record does
    not read as expected."""
    segments = _segments(pieces)
    head = next(segments, None)
    if not isinstance(head, dict) or "jobs" in head:
        return None
    if head.get("version") != VERSION:
        raise LedgerError(f"{where}: not this version")  # the decode says it properly
    events = parse_journal(journal, journal_where)[0] if journal is not None else []
    state = head_state(head, {})
    tail = [(seq, e) for seq, e in events if seq > state.seq]
    touched = {e.job for _, e in tail if isinstance(e, JobEvent)}
    # The target publishing figures are for: the runs' last, as the replay will leave them.
    targets = [run.publish for run in state.runs]
    targets += [e.publish for _, e in tail if isinstance(e, RunStarted)]
    target = next((t for t in reversed(targets) if t), None)
    records = _Records(touched, target)
    for segment in segments:
        if segment is None or isinstance(segment, dict):
            return None  # not encode_snapshot's layout after all
        records.read(*segment)
    state.jobs, state.counts, state.cost = Records(records.touched), records.counts(), records.cost
    found = len(state.jobs)
    replay(state, events, journal_where)
    if last_target(state) != target:
        raise NotCut("the replayed runs disagree")  # never: the decode answers
    rows: list[dict[str, Any]] = []
    for item in records.listed:
        if isinstance(item, str):
            record = state.jobs[item]
            if record.status in _BAD:
                rows.append(_row(record))
        else:
            rows.append(item)
    added = list(state.jobs.values())[found:]  # registered after the snapshot
    rows += [_row(r) for r in added if r.status in _BAD]
    publish = None
    if target:  # the snapshot's other succeeded records, then the replayed ones
        mine = _ints(figures_of(state.jobs.values(), target))
        publish = PublishFigures(
            target, *[a + b for a, b in zip(records.publish, mine, strict=True)]
        )
    return Summary(
        jobs=records.records + len(added),
        counts=counts_by_status(state),
        cost=total_cost(state),
        runs=list(state.runs),
        failures=rows,
        publish=publish,
    )


def _ints(fig: PublishFigures) -> tuple[int, int, int, int]:
    return fig.published_jobs, fig.unpublished_jobs, fig.objects, fig.bytes


_Segment = tuple[bytes, int, int]


def _segments(pieces: Iterable[bytes]) -> Iterator[dict[str, Any] | _Segment | None]:
    """The snapshot's top level (anything but a dict: not encode_snapshot's layout), then
    ``(buffer, start, stop)`` runs of whole records: every record whose mark lies in
    ``buffer[start:stop]`` ends by ``stop``. A None at the end: the file does not end as
    that layout does."""
    chunks = iter(pieces)
    head, buffer, split = read_head(chunks)
    if split < 0:
        yield None
        return
    yield head
    start = split + len(JOBS_MARK) - 1  # keep the "{" before the first key
    for piece in chunks:
        buffer = buffer[start:] + piece if start else buffer + piece
        start = 0
        last = buffer.rfind(RECORD_MARK)
        cut = buffer.rfind(b',"', 0, last) if last > 0 else -1
        if cut > 0:  # the records before the last one are whole
            yield buffer, 0, cut
            start = cut
    if not buffer.endswith(b"}}") or len(buffer) - 2 < start:
        yield None
        return
    yield buffer, start, len(buffer) - 2


class _Records:
    """The snapshot's records, read a run of them at a time."""

    def __init__(self, touched: set[str], target: str | None) -> None:
        self.wanted, self.target = touched, target
        self.records = 0
        self.statuses: Counter[bytes] = Counter()
        self.cost = 0.0  # summed in file order, as LedgerState.recount sums it
        #: failure rows in file order, a touched record's key in its place
        self.listed: list[dict[str, Any] | str] = []
        self.touched: dict[str, JobRecord] = {}
        #: publishing figures of the succeeded records it read (``_ints``'s order)
        self.publish = [0, 0, 0, 0]

    def counts(self) -> dict[JobStatus, int]:
        counts = dict.fromkeys(JobStatus, 0)
        for value, count in self.statuses.items():
            counts[JobStatus(value.decode())] = count
        return counts

    def read(self, data: bytes, start: int, stop: int) -> None:
        counting, every, failed, _ = _patterns()
        heads = counting.findall(data, start, stop)
        if len(heads) != data.count(RECORD_MARK, start, stop):
            raise NotCut("a record's leading fields are not in encode_snapshot's layout")
        statuses = Counter(map(itemgetter(0), heads))
        tokens = list(map(itemgetter(1), heads))
        del heads
        costs = {token: orjson.loads(token) or 0.0 for token in set(tokens)}
        self.cost = reduce(add, map(costs.__getitem__, tokens), self.cost)
        self.records += len(tokens)
        self.statuses += statuses
        bad = statuses[b"failed"] + statuses[b"cancelled"]
        if self.wanted:
            self._rows(every, data, start, stop, len(tokens))
        elif bad:
            self._rows(failed, data, start, stop, bad)
        if self.target and statuses[b"succeeded"]:
            succeeded = self._succeeded(data, start, stop, statuses[b"succeeded"])
            mine = _ints(figures_of(succeeded, self.target))
            self.publish = [a + b for a, b in zip(self.publish, mine, strict=True)]

    def _rows(
        self, pattern: re.Pattern[bytes], data: bytes, start: int, stop: int, expected: int
    ) -> None:
        loads, seen, wanted = orjson.loads, 0, self.wanted
        for match in pattern.finditer(data, start, stop):
            seen += 1
            if wanted:
                key = _key_before(data, match.start())
                if key in wanted:
                    raw = _record_at(data, match.start(), stop)
                    self.touched[key] = JobRecord.from_dict(raw)
                    self.listed.append(key)
                    continue
            job_id, status, taskid, error = match.groups()
            if status == b"failed" or status == b"cancelled":
                self.listed.append(
                    {
                        "job": loads(job_id),
                        "status": status.decode(),
                        "error": loads(error),
                        "taskid": loads(taskid),
                    }
                )
        if seen != expected:
            raise NotCut("records and their leading fields disagree")

    def _succeeded(self, data: bytes, start: int, stop: int, expected: int) -> Iterator[JobRecord]:
        """The succeeded records the journal does not touch, each with just what the
        publishing figures read (its outputs and published entries)."""
        seen, wanted = 0, self.wanted
        for match in _patterns()[3].finditer(data, start, stop):
            seen += 1
            if wanted and _key_before(data, match.start()) in wanted:
                continue
            raw = _record_at(data, match.start(), stop)
            yield JobRecord(
                job_id=raw["job_id"],
                status=JobStatus.SUCCEEDED,
                fingerprint=raw["fingerprint"],
                outputs=parse_saved(raw.get("outputs")),
                published=parse_published(raw.get("published")),
            )
        if seen != expected:
            raise NotCut("records and their leading fields disagree")


def _key_before(data: bytes, at: int) -> str:
    """The key of the record whose mark is at ``at`` (``"key":{"job_id":``)."""
    opening = data.rfind(b'"', 0, at - 1)
    if opening < 1 or data[opening - 1] == 0x5C:  # a backslash: an escaped quote
        raise NotCut("a key with a quote in it")
    key = orjson.loads(data[opening:at])
    if type(key) is not str:
        raise NotCut("not a key")
    return key


def _record_at(data: bytes, at: int, stop: int) -> dict[str, Any]:
    """The record whose mark is at ``at``, parsed (cut as :func:`.codec.iter_snapshot`)."""
    after = data.find(RECORD_MARK, at + len(RECORD_MARK), stop)
    end = stop if after < 0 else data.rfind(b',"', at, after)
    record = orjson.loads(memoryview(data)[at + 1 : end])
    if type(record) is not dict:
        raise NotCut("not a record")
    return record
