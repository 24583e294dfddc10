"""The job state machine: job records and the pure transition function.

Nothing here does I/O: :mod:`batch_runner.ledger.store` journals the events of
:mod:`batch_runner.ledger.events` and replays them through :func:`apply_event`; the engine and
``status`` read the resulting :class:`LedgerState`. Everything that decides how an event
changes a job lives in this one module.

Two kinds of unexpected event, handled differently on purpose:

* **late or stale news is ignored** (the record comes back unchanged): any event other than a
  reset on a terminal record, ``task_status`` outside queued/running, and ``task_status`` or
  ``task_done`` naming another task than the record's. Feeds and polls race; that is normal.
* **an impossible transition raises** :class:`TransitionError` (``submitted`` for a pending
  job, ``job_reset`` while a task is in flight): a runner bug. ``Ledger.record`` applies before
  it writes, so such an event never reaches the journal; replay skips and counts any it meets,
  so a journal always replays.

Resets, the only way out of a terminal status: ``job_registered`` with a new fingerprint,
``job_reset`` and ``output_lost`` (a saved file no longer matches: fetch it again). One event
annotates a terminal record without moving it: ``output_published`` (an upload to object
storage), recorded only on a succeeded job whose output of that name still has that hash.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from .._slots import slot_builder
from ..wiro.records import QUEUED_STATUSES
from .events import (
    ANNOTATIONS,
    RESETS,
    AttemptFailed,
    Event,
    JobCancelled,
    JobEvent,
    JobFailed,
    JobRegistered,
    JobReset,
    JobSucceeded,
    OutputLost,
    OutputPublished,
    OutputSaved,
    PreviousRun,
    PublishedOutput,
    Reconciled,
    RemoteOutput,
    RunEnded,
    RunStarted,
    SavedOutput,
    SubmitAmbiguous,
    SubmitIntent,
    SubmitRejected,
    Submitted,
    TaskDone,
    TaskStatusSeen,
    UploadDone,
    parse_published,
    parse_remote,
    parse_saved,
    plain,
)

if TYPE_CHECKING:
    from .records import Records


class JobStatus(StrEnum):
    """Where a job stands; the ledger's ``status`` values."""

    #: no task on the service: never submitted, or certainly not created
    PENDING = "pending"
    #: the /Run intent is durable and /Run has not answered: a task may exist
    SUBMITTING = "submitting"
    #: a /Run that may have created a task: reconcile through /Task/List before resubmitting
    UNKNOWN = "unknown"
    #: the task id is durable; the task waits on the service
    QUEUED = "queued"
    #: the task runs on the service (also any status we do not know)
    RUNNING = "running"
    #: the task finished on the service; its outputs are being fetched
    DOWNLOADING = "downloading"
    #: terminal: every output saved and verified
    SUCCEEDED = "succeeded"
    #: terminal: failed, the reason in ``error``
    FAILED = "failed"
    #: terminal: cancelled, the reason in ``error``
    CANCELLED = "cancelled"


#: Statuses that only a reset event leaves.
TERMINAL: frozenset[JobStatus] = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}
)
#: Statuses in which a task exists or may exist on the service and is not finished.
IN_FLIGHT: frozenset[JobStatus] = frozenset(
    {JobStatus.SUBMITTING, JobStatus.UNKNOWN, JobStatus.QUEUED, JobStatus.RUNNING}
)

_STATUS: dict[str, JobStatus] = {s.value: s for s in JobStatus}


class TransitionError(ValueError):
    """An event that cannot apply to the record's status: a bug in the caller."""


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One job's durable state. Field names and order are the public ``ledger.json`` format
    (orjson serialises the dataclass itself for snapshots; :meth:`to_dict` gives the same).

    ``attempts`` counts the /Run calls of the current round that created or may have created a
    task (a certain refusal is not counted; a reset starts a new round at 0). ``cost`` is the
    total over every task of the job. ``history`` lists earlier task ids, oldest first.
    ``submitted_at`` is when the latest /Run was sent (reconciliation matches on it).
    """

    job_id: str
    status: JobStatus
    fingerprint: str
    attempts: int = 0
    taskid: str | None = None
    tasktoken: str | None = field(default=None, repr=False)
    marker: str | None = None
    service_status: str | None = None
    error: str | None = None
    cost: float | None = None
    remote_outputs: tuple[RemoteOutput, ...] = ()
    outputs: tuple[SavedOutput, ...] = ()
    previous: tuple[PreviousRun, ...] = ()
    history: tuple[str, ...] = ()
    created_at: float | None = None
    submitted_at: float | None = None
    finished_at: float | None = None
    updated_at: float | None = None
    #: the model the job runs on (None for jobs registered before it was recorded)
    model: str | None = None
    #: outputs uploaded to object storage (``--publish``); see :class:`PublishedOutput`
    published: tuple[PublishedOutput, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON values, exactly as ``ledger.json`` stores it."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["status"] = self.status.value
        data["remote_outputs"] = plain(self.remote_outputs)
        data["outputs"] = plain(self.outputs)
        data["previous"] = [
            {"fingerprint": p.fingerprint, "outputs": plain(p.outputs)} for p in self.previous
        ]
        data["history"] = list(self.history)
        data["published"] = plain(self.published)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobRecord:
        """Parse a record of ``ledger.json``; KeyError/ValueError/TypeError when malformed."""
        previous = data.get("previous")
        history = data.get("history")
        return build_record(  # every field, in order
            data["job_id"],
            _STATUS[data["status"]],
            data["fingerprint"],
            data.get("attempts", 0),
            data.get("taskid"),
            data.get("tasktoken"),
            data.get("marker"),
            data.get("service_status"),
            data.get("error"),
            data.get("cost"),
            parse_remote(data.get("remote_outputs")),
            parse_saved(data.get("outputs")),
            tuple([PreviousRun(p["fingerprint"], parse_saved(p["outputs"])) for p in previous])
            if previous
            else (),
            tuple(history) if history else (),
            data.get("created_at"),
            data.get("submitted_at"),
            data.get("finished_at"),
            data.get("updated_at"),
            data.get("model"),
            parse_published(data.get("published")),
        )  # fmt: skip


#: JobRecord's fields in order, all of one record's values at once, and a setter per slot.
_FIELDS = tuple(f.name for f in fields(JobRecord))
_VALUES = operator.attrgetter(*_FIELDS)
_SETTER = {name: JobRecord.__dict__[name].__set__ for name in _FIELDS}
#: ``JobRecord(...)`` with every field given, in a third of the time (see :mod:`._slots`):
#: for every transition and every record a resume decodes.
build_record = slot_builder(JobRecord)


def evolve(record: JobRecord, **changes: Any) -> JobRecord:
    """``dataclasses.replace(record, **changes)`` in under half the time (KeyError for a
    field JobRecord lacks): ``replace`` goes through the frozen ``__init__`` (8 us, and a
    job's life is six transitions, in the run and in every replay of its journal)."""
    new = build_record(*_VALUES(record))
    for name, value in changes.items():
        _SETTER[name](new, value)
    return new


# --- transitions -------------------------------------------------------------------------


def _require(record: JobRecord, event: JobEvent, *allowed: JobStatus) -> None:
    if record.status not in allowed:
        raise TransitionError(f"{event.TYPE} cannot apply to {record.job_id!r} ({record.status})")


def _add(total: float | None, cost: float | None) -> float | None:
    return total if cost is None else (total or 0.0) + cost


def _new_round(r: JobRecord, t: float, **changes: Any) -> JobRecord:
    """Back to pending with a fresh attempt count; the current task id joins the history."""
    history = (*r.history, r.taskid) if r.taskid else r.history
    return evolve(
        r, status=JobStatus.PENDING, attempts=0, taskid=None, tasktoken=None, marker=None,
        service_status=None, error=None, remote_outputs=(), outputs=(), history=history,
        submitted_at=None, finished_at=None, updated_at=t, published=(), **changes,
    )  # fmt: skip


def _registered(r: JobRecord, e: JobRegistered) -> JobRecord:
    if e.fingerprint == r.fingerprint:
        return r
    kept = r.outputs if e.kept is None else e.kept
    previous = (*r.previous, PreviousRun(r.fingerprint, kept)) if kept else r.previous
    model = e.model if e.model is not None else r.model
    return _new_round(r, e.t, fingerprint=e.fingerprint, previous=previous, model=model)


def _reset(r: JobRecord, e: JobReset) -> JobRecord:
    _require(r, e, JobStatus.PENDING, JobStatus.DOWNLOADING, *TERMINAL)
    return _new_round(r, e.t)


def _intent(r: JobRecord, e: SubmitIntent) -> JobRecord:
    _require(r, e, JobStatus.PENDING)
    if e.fingerprint != r.fingerprint:
        raise TransitionError(f"submit_intent for {r.job_id!r} carries a stale fingerprint")
    return evolve(
        r, status=JobStatus.SUBMITTING, attempts=max(r.attempts + 1, e.attempt),
        marker=e.marker, submitted_at=e.t, updated_at=e.t,
    )  # fmt: skip


def _submitted(r: JobRecord, e: Submitted) -> JobRecord:
    _require(r, e, JobStatus.SUBMITTING, JobStatus.UNKNOWN)
    return evolve(
        r, status=JobStatus.QUEUED, taskid=e.taskid, tasktoken=e.tasktoken,
        service_status=None, updated_at=e.t,
    )  # fmt: skip


def _not_created(r: JobRecord, t: float, error: str | None) -> JobRecord:
    return evolve(
        r, status=JobStatus.PENDING, attempts=max(r.attempts - 1, 0), marker=None,
        error=error, updated_at=t,
    )  # fmt: skip


def _rejected(r: JobRecord, e: SubmitRejected) -> JobRecord:
    _require(r, e, JobStatus.SUBMITTING)
    return _not_created(r, e.t, e.error)


def _ambiguous(r: JobRecord, e: SubmitAmbiguous) -> JobRecord:
    _require(r, e, JobStatus.SUBMITTING)
    return evolve(r, status=JobStatus.UNKNOWN, error=e.error, updated_at=e.t)


def _reconciled(r: JobRecord, e: Reconciled) -> JobRecord:
    _require(r, e, JobStatus.SUBMITTING, JobStatus.UNKNOWN)
    if e.taskid is None:
        return _not_created(r, e.t, r.error)
    return evolve(
        r, status=JobStatus.QUEUED, taskid=e.taskid, tasktoken=e.tasktoken, updated_at=e.t
    )


def _task_status(r: JobRecord, e: TaskStatusSeen) -> JobRecord:
    if r.status not in (JobStatus.QUEUED, JobStatus.RUNNING) or e.taskid not in (None, r.taskid):
        return r  # early, late or stale news
    status = JobStatus.QUEUED if e.status in QUEUED_STATUSES else JobStatus.RUNNING
    if status == r.status and e.status == r.service_status:
        return r
    return evolve(r, status=status, service_status=e.status, updated_at=e.t)


def _task_done(r: JobRecord, e: TaskDone) -> JobRecord:
    if e.taskid not in (None, r.taskid):
        return r
    _require(r, e, JobStatus.QUEUED, JobStatus.RUNNING)
    return evolve(
        r, status=JobStatus.DOWNLOADING, remote_outputs=e.outputs, cost=_add(r.cost, e.cost),
        updated_at=e.t,
    )  # fmt: skip


def _saved_one(r: JobRecord, e: OutputSaved) -> JobRecord:
    _require(r, e, JobStatus.DOWNLOADING)
    kept = tuple(o for o in r.outputs if o.name != e.name)
    saved = SavedOutput(e.name, e.path, e.size, e.sha256, e.content_type, e.kind)
    return evolve(r, outputs=(*kept, saved), updated_at=e.t)


def _lost(r: JobRecord, e: OutputLost) -> JobRecord:
    kept = tuple(o for o in r.outputs if o.name != e.name)
    if len(kept) == len(r.outputs):
        return r
    _require(r, e, JobStatus.SUCCEEDED, JobStatus.DOWNLOADING)
    return evolve(r, status=JobStatus.DOWNLOADING, outputs=kept, finished_at=None, updated_at=e.t)


def _succeeded(r: JobRecord, e: JobSucceeded) -> JobRecord:
    _require(r, e, JobStatus.DOWNLOADING)
    return evolve(r, status=JobStatus.SUCCEEDED, error=None, finished_at=e.t, updated_at=e.t)


def _finished(r: JobRecord, e: JobFailed | JobCancelled) -> JobRecord:
    status = JobStatus.FAILED if isinstance(e, JobFailed) else JobStatus.CANCELLED
    return evolve(
        r, status=status, error=e.error, cost=_add(r.cost, e.cost), finished_at=e.t,
        updated_at=e.t,
    )  # fmt: skip


def _attempt_failed(r: JobRecord, e: AttemptFailed) -> JobRecord:
    _require(r, e, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.DOWNLOADING)
    history = (*r.history, r.taskid) if r.taskid else r.history
    return evolve(
        r, status=JobStatus.PENDING, taskid=None, tasktoken=None, marker=None,
        service_status=None, error=e.error, cost=_add(r.cost, e.cost), remote_outputs=(),
        outputs=(), history=history, updated_at=e.t, published=(),
    )  # fmt: skip


def _published(r: JobRecord, e: OutputPublished) -> JobRecord:
    """Record an upload of a saved output; stale news (the job is no longer succeeded, or
    its output of that name changed since) is ignored."""
    if r.status != JobStatus.SUCCEEDED or not any(
        o.name == e.name and o.sha256 == e.sha256 for o in r.outputs
    ):
        return r
    entry = PublishedOutput(e.name, e.path, e.url, e.size, e.sha256, e.etag, e.public_url)
    kept = tuple(p for p in r.published if p.name != e.name)
    return evolve(r, published=(*kept, entry), updated_at=e.t)


_HANDLERS: dict[type[JobEvent], Callable[[JobRecord, Any], JobRecord]] = {
    JobRegistered: _registered, JobReset: _reset, SubmitIntent: _intent,
    Submitted: _submitted, SubmitRejected: _rejected, SubmitAmbiguous: _ambiguous,
    Reconciled: _reconciled, TaskStatusSeen: _task_status, TaskDone: _task_done,
    OutputSaved: _saved_one, OutputLost: _lost, JobSucceeded: _succeeded,
    JobFailed: _finished, JobCancelled: _finished, AttemptFailed: _attempt_failed,
    OutputPublished: _published,
}  # fmt: skip


def apply(record: JobRecord | None, event: JobEvent) -> JobRecord:
    """The job's record after ``event``; the same object when the event changes nothing.

    Raises :class:`TransitionError` for an impossible transition (see the module docstring).
    """
    if record is None:
        if isinstance(event, JobRegistered):
            return JobRecord(
                job_id=event.job, status=JobStatus.PENDING, fingerprint=event.fingerprint,
                created_at=event.t, updated_at=event.t, model=event.model,
            )  # fmt: skip
        raise TransitionError(f"{event.TYPE} for unregistered job {event.job!r}")
    if record.status in TERMINAL and not isinstance(event, RESETS + ANNOTATIONS):
        return record
    return _HANDLERS[type(event)](record, event)


# --- ledger-level state ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One runner process that worked on the folder."""

    pid: int
    started_at: float
    ended_at: float | None = None
    exit_code: int | None = None
    counts: dict[str, int] | None = None
    #: where the run published outputs (``--publish``), None when it did not
    publish: str | None = None


def _records(jobs: Mapping[str, JobRecord] | None = None) -> Records:
    """``jobs`` as a :class:`Records` table (itself when it is one)."""
    from .records import Records  # which builds on this module's records

    return jobs if type(jobs) is Records else Records(jobs or {})


@dataclass(slots=True)
class LedgerState:
    """Everything the ledger knows. ``jobs`` is mutated in place (cheap at 100,000 jobs); the
    records in it never are (a :class:`~batch_runner.ledger.records.Records`: a dict of
    records, older successes packed; a plain dict given here becomes one). ``counts`` follows
    ``jobs``; ``skipped`` counts events replay dropped as impossible (never persisted)."""

    jobs: Records = field(default_factory=_records)
    uploads: dict[str, str] = field(default_factory=dict)
    runs: list[RunInfo] = field(default_factory=list)
    seq: int = 0
    updated_at: float | None = None
    counts: dict[JobStatus, int] = field(default_factory=lambda: dict.fromkeys(JobStatus, 0))
    #: the sum of every job's ``cost``, kept in step with ``jobs`` (O(1) to read)
    cost: float = 0.0
    skipped: int = 0

    def __post_init__(self) -> None:
        self.jobs = _records(self.jobs)

    def recount(self) -> None:
        """Rebuild ``counts`` from ``jobs`` (after loading a snapshot)."""
        self.counts = dict.fromkeys(JobStatus, 0)
        self.cost = 0.0
        for record in self.jobs.values():
            self.counts[record.status] += 1
            self.cost += record.cost or 0.0


def apply_event(state: LedgerState, event: Event) -> None:
    """Apply one event to ``state`` (``seq`` is the ledger's business). Raises
    :class:`TransitionError` with ``state`` unchanged."""
    if isinstance(event, JobEvent):
        old = state.jobs.get(event.job)
        new = apply(old, event)
        if new is not old:
            state.jobs[event.job] = new
            if old is not None:
                state.counts[old.status] -= 1
                state.cost -= old.cost or 0.0
            state.counts[new.status] += 1
            state.cost += new.cost or 0.0
    elif isinstance(event, UploadDone):
        state.uploads[event.sha256] = event.url
    elif isinstance(event, RunStarted):
        state.runs.append(RunInfo(pid=event.pid, started_at=event.t, publish=event.publish))
    elif isinstance(event, RunEnded):
        for i in range(len(state.runs) - 1, -1, -1):
            run = state.runs[i]
            if run.pid == event.pid and run.ended_at is None:
                state.runs[i] = replace(
                    run, ended_at=event.t, exit_code=event.exit_code, counts=dict(event.counts)
                )
                break
        else:
            state.runs.append(RunInfo(event.pid, event.t, event.t, event.exit_code, event.counts))
    state.updated_at = event.t


def counts_by_status(state: LedgerState) -> dict[str, int]:
    """Jobs per status, every status present, in lifecycle order."""
    return {status.value: state.counts.get(status, 0) for status in JobStatus}


def total_cost(state: LedgerState) -> float:
    """What every task of every job has cost so far, as the service reported it (O(1):
    kept up to date as events apply; rounded to absorb float drift)."""
    return max(0.0, round(state.cost, 9))


def failures(state: LedgerState) -> list[JobRecord]:
    """Failed and cancelled jobs, in manifest order, for reports."""
    bad = (JobStatus.FAILED, JobStatus.CANCELLED)
    jobs = state.jobs
    return [jobs[job_id] for job_id in jobs if jobs.status(job_id) in bad]
