"""``status``'s figures of a ledger, straight from the bytes of its two files.

Decoding a 100,000-job snapshot into records takes seconds, and ``status`` needs only the
job count, the counts by status, the cost, the runs, the failures and the publishing
figures. So a snapshot as :func:`.codec.encode_snapshot` writes it is scanned as bytes: a
regular expression matches each record's leading fields (``job_id`` to ``cost``, in the
order the record dataclass writes them) and C code counts statuses and sums costs. Only the
records that need more are parsed: failed or cancelled ones (their rows), succeeded ones
when a run published (their outputs), and the ones a journal tail touches, which are
replayed with :func:`.codec.replay` on a state holding just them, so a killed run's events
apply exactly as ``read_ledger`` applies them.

Anything else (another layout, a record whose leading fields do not match, a malformed
value) is decoded the old way, whole: :func:`summarize` always equals
``of_state(`` *the decoded state* ``)``, and raises what decoding raises. Pure functions of
bytes: the caller reads the files (:func:`.store.read_summary`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import reduce
from itertools import chain
from operator import add, itemgetter
from typing import Any

import orjson

from ..errors import LedgerError
from .codec import Gap, NotCut, cut_head, decode_snapshot, head_state, parse_journal, replay
from .events import JobEvent, parse_published, parse_saved
from .layout import JOURNAL_NAME, SNAPSHOT_NAME
from .published import PublishFigures, figures, figures_of, last_target
from .state import (
    JobRecord,
    JobStatus,
    LedgerState,
    RunInfo,
    counts_by_status,
    failures,
    total_cost,
)

__all__ = ["Summary", "of_state", "summarize"]


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
    if snapshot is not None:
        try:
            found = _scan(snapshot, journal, snapshot_where, journal_where)
        except Gap:
            raise
        except (LedgerError, KeyError, TypeError, ValueError, AttributeError):
            found = None  # decoding says what is wrong, in its own words
        if found is not None:
            return found
    state = decode_snapshot(snapshot, snapshot_where) if snapshot is not None else LedgerState()
    if journal is not None:
        replay(state, parse_journal(journal, journal_where)[0], journal_where)
    return of_state(state)


# --- the scan ------------------------------------------------------------------------------

#: Where a record starts (see :mod:`.codec`: nothing else in the file has these bytes).
_RECORD = b':{"job_id":'
_JOBS = b',"jobs":{'
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
        re.escape(_RECORD) + job_id + rb',"status":"(' + status + rb')","fingerprint":' + _STR
        + rb',"attempts":-?[0-9]+,"taskid":' + taskid + rb',"tasktoken":' + _OPT
        + rb',"marker":' + _OPT + rb',"service_status":' + _OPT + rb',"error":' + error
        + rb',"cost":' + cost + rb',"remote_outputs":\['
    )  # fmt: skip


_COUNTS = _head(rb"[a-z]+", rows=False)
_EVERY = _head(rb"[a-z]+", rows=True)
_FAILED = _head(rb"failed|cancelled", rows=True)
_SUCCEEDED = _head(rb"succeeded", rows=True)
_BAD = (JobStatus.FAILED, JobStatus.CANCELLED)


def _scan(data: bytes, journal: bytes | None, where: str, journal_where: str) -> Summary | None:
    """:func:`summarize` for a snapshot in encode_snapshot's layout; None for another
    layout, NotCut (or another ValueError) when a record does not read as expected."""
    head = cut_head(data, where)
    if head is None:
        return None
    events = parse_journal(journal, journal_where)[0] if journal is not None else []
    state = head_state(head, {})
    touched = {e.job for seq, e in events if seq > state.seq and isinstance(e, JobEvent)}
    start = data.find(_JOBS) + len(_JOBS)
    records, state.counts, state.cost = _tally(data, start)
    listed, state.jobs = _rows(data, start, touched, state.counts)
    found, succeeded = set(state.jobs), state.counts[JobStatus.SUCCEEDED]
    replay(state, events, journal_where)
    rows: list[dict[str, Any]] = []
    for item in listed:
        if isinstance(item, str):
            record = state.jobs[item]
            if record.status in _BAD:
                rows.append(_row(record))
        else:
            rows.append(item)
    added = list(state.jobs.values())[len(found) :]  # registered after the snapshot
    rows += [_row(r) for r in added if r.status in _BAD]
    target = last_target(state)
    publish = None
    if target:  # the snapshot's other succeeded records, then the replayed ones
        others = _succeeded(data, start, found, succeeded)
        publish = figures_of(chain(others, state.jobs.values()), target)
    return Summary(
        jobs=records + len(added),
        counts=counts_by_status(state),
        cost=total_cost(state),
        runs=list(state.runs),
        failures=rows,
        publish=publish,
    )


def _tally(data: bytes, start: int) -> tuple[int, dict[JobStatus, int], float]:
    """How many records, how many per status and their cost summed in file order (as
    :meth:`.state.LedgerState.recount` sums it), all in C loops."""
    heads = _COUNTS.findall(data, start)
    if len(heads) != data.count(_RECORD, start):
        raise NotCut("a record's leading fields are not in encode_snapshot's layout")
    counts = dict.fromkeys(JobStatus, 0)
    for value, count in Counter(map(itemgetter(0), heads)).items():
        counts[JobStatus(value.decode())] = count
    tokens = list(map(itemgetter(1), heads))
    del heads
    costs = {token: orjson.loads(token) or 0.0 for token in set(tokens)}
    return len(tokens), counts, reduce(add, map(costs.__getitem__, tokens), 0.0)


def _rows(
    data: bytes, start: int, touched: set[str], counts: dict[JobStatus, int]
) -> tuple[list[dict[str, Any] | str], dict[str, JobRecord]]:
    """The snapshot's failure rows in file order, with the key of each record the journal
    touches in its place (its row is known after the replay), and those records."""
    listed: list[dict[str, Any] | str] = []
    records: dict[str, JobRecord] = {}
    expected = sum(counts.values()) if touched else counts[_BAD[0]] + counts[_BAD[1]]
    if not expected:
        return listed, records
    loads, seen = orjson.loads, 0
    for match in (_EVERY if touched else _FAILED).finditer(data, start):
        seen += 1
        if touched:
            key = _key_before(data, match.start())
            if key in touched:
                records[key] = JobRecord.from_dict(_record_at(data, match.start()))
                listed.append(key)
                continue
        job_id, status, taskid, error = match.groups()
        if status == b"failed" or status == b"cancelled":
            listed.append(
                {
                    "job": loads(job_id),
                    "status": status.decode(),
                    "error": loads(error),
                    "taskid": loads(taskid),
                }
            )
    if seen != expected:
        raise NotCut("records and their leading fields disagree")
    return listed, records


def _succeeded(data: bytes, start: int, skip: set[str], expected: int) -> Iterator[JobRecord]:
    """The snapshot's succeeded records but those in ``skip``, each with just what the
    publishing figures read (its outputs and published entries)."""
    seen = 0
    for match in _SUCCEEDED.finditer(data, start):
        seen += 1
        if skip and _key_before(data, match.start()) in skip:
            continue
        raw = _record_at(data, match.start())
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


def _record_at(data: bytes, at: int) -> dict[str, Any]:
    """The record whose mark is at ``at``, parsed (cut as :func:`.codec.iter_snapshot`)."""
    after = data.find(_RECORD, at + len(_RECORD))
    end = len(data) - 2 if after < 0 else data.rfind(b',"', at, after)
    record = orjson.loads(memoryview(data)[at + 1 : end])
    if type(record) is not dict:
        raise NotCut("not a record")
    return record
