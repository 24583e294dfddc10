"""The pure job state machine: transitions, ignored news, resets, the public record format."""

from __future__ import annotations

import dataclasses

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_runner.ledger.events import (
    EVENT_TYPES,
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
    event_from_dict,
    event_to_dict,
)
from batch_runner.ledger.state import (
    IN_FLIGHT,
    TERMINAL,
    JobRecord,
    JobStatus,
    LedgerState,
    TransitionError,
    apply,
    apply_event,
    counts_by_status,
    evolve,
    failures,
    total_cost,
)

SHA = "ab" * 32
JOBS = ("a", "b", "c")
FPS = ("fp1", "fp2")
TASKS = ("t1", "t2", "t3")


def run(*events: JobEvent, record: JobRecord | None = None) -> JobRecord:
    for event in events:
        record = apply(record, event)
    assert record is not None
    return record


def to_downloading(job: str = "a") -> JobRecord:
    return run(
        JobRegistered(job=job, fingerprint="fp1", t=1),
        SubmitIntent(job=job, attempt=1, fingerprint="fp1", marker="m1", t=2),
        Submitted(job=job, taskid="t1", tasktoken="tok", t=3),
        TaskStatusSeen(job=job, status="task_start", t=4),
        TaskDone(job=job, outputs=(RemoteOutput("v.mp4", "https://x/v.mp4", 10),), cost=0.5, t=5),
    )


def test_happy_path_sets_every_field() -> None:
    record = run(
        OutputSaved(job="a", name="v.mp4", path="a.mp4", size=10, sha256=SHA, t=6),
        JobSucceeded(job="a", t=7),
        record=to_downloading(),
    )
    assert record.status is JobStatus.SUCCEEDED
    assert (record.taskid, record.tasktoken, record.marker) == ("t1", "tok", "m1")
    assert (record.attempts, record.cost, record.service_status) == (1, 0.5, "task_start")
    assert record.outputs == (SavedOutput("v.mp4", "a.mp4", 10, SHA),)
    assert (record.created_at, record.submitted_at, record.finished_at) == (1, 2, 7)
    assert "tok" not in repr(record)


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        ("task_queue", JobStatus.QUEUED),
        ("task_accept", JobStatus.QUEUED),
        ("task_start", JobStatus.RUNNING),
        ("task_postprocess_end", JobStatus.RUNNING),
        ("something_new", JobStatus.RUNNING),
    ],
)
def test_task_status_mapping(service: str, expected: JobStatus) -> None:
    base = run(
        JobRegistered(job="a", fingerprint="f"),
        SubmitIntent(job="a", attempt=1, fingerprint="f"),
        Submitted(job="a", taskid="t1"),
    )
    record = apply(base, TaskStatusSeen(job="a", status=service))
    assert (record.status, record.service_status) == (expected, service)


def test_late_and_stale_news_is_ignored() -> None:
    done = apply(to_downloading(), JobFailed(job="a", error="boom", cost=None))
    for late in (
        TaskStatusSeen(job="a", status="task_start"),
        TaskDone(job="a", outputs=()),
        JobSucceeded(job="a"),
        Submitted(job="a", taskid="t9"),
    ):
        assert apply(done, late) is done
    queued = run(
        JobRegistered(job="a", fingerprint="f"),
        SubmitIntent(job="a", attempt=1, fingerprint="f"),
        Submitted(job="a", taskid="t1"),
    )
    assert apply(queued, TaskStatusSeen(job="a", status="task_start", taskid="old")) is queued
    assert apply(queued, TaskDone(job="a", outputs=(), taskid="old")) is queued


@pytest.mark.parametrize(
    "event",
    [
        Submitted(job="a", taskid="t1"),
        SubmitRejected(job="a", error="x"),
        TaskDone(job="a", outputs=()),
        JobSucceeded(job="a"),
        AttemptFailed(job="a", error="x"),
        SubmitIntent(job="a", attempt=1, fingerprint="other"),
    ],
)
def test_impossible_transitions_raise(event: JobEvent) -> None:
    with pytest.raises(TransitionError):
        apply(JobRecord("a", JobStatus.PENDING, "fp1"), event)


def test_unregistered_job_raises_and_reset_in_flight_raises() -> None:
    with pytest.raises(TransitionError):
        apply(None, JobSucceeded(job="zz"))
    queued = run(
        JobRegistered(job="a", fingerprint="f"),
        SubmitIntent(job="a", attempt=1, fingerprint="f"),
        Submitted(job="a", taskid="t1"),
    )
    with pytest.raises(TransitionError):
        apply(queued, JobReset(job="a"))


def test_rejection_and_reconciliation_count_only_created_tasks() -> None:
    record = run(
        JobRegistered(job="a", fingerprint="f"),
        SubmitIntent(job="a", attempt=1, fingerprint="f"),
        SubmitRejected(job="a", error="code 96"),
    )
    assert (record.status, record.attempts, record.error) == (JobStatus.PENDING, 0, "code 96")
    record = run(
        SubmitIntent(job="a", attempt=1, fingerprint="f"),
        SubmitAmbiguous(job="a", error="timeout"),
        record=record,
    )
    assert (record.status, record.attempts) == (JobStatus.UNKNOWN, 1)
    assert apply(record, Reconciled(job="a")).status is JobStatus.PENDING
    found = apply(record, Reconciled(job="a", taskid="t7", tasktoken="k"))
    assert (found.status, found.taskid, found.attempts) == (JobStatus.QUEUED, "t7", 1)


def test_attempt_failed_then_retry_keeps_history_and_cost() -> None:
    record = run(
        AttemptFailed(job="a", error="pexit 1", cost=0.25),
        SubmitIntent(job="a", attempt=2, fingerprint="fp1"),
        Submitted(job="a", taskid="t2"),
        record=to_downloading(),
    )
    assert (record.taskid, record.history, record.attempts) == ("t2", ("t1",), 2)
    assert record.cost == 0.75


def test_fingerprint_change_resets_and_keeps_outputs_beside() -> None:
    done = run(
        OutputSaved(job="a", name="v.mp4", path="a.mp4", size=10, sha256=SHA),
        JobSucceeded(job="a"),
        record=to_downloading(),
    )
    assert apply(done, JobRegistered(job="a", fingerprint="fp1")) is done
    moved = (SavedOutput("v.mp4", "a.fp1.mp4", 10, SHA),)
    fresh = apply(done, JobRegistered(job="a", fingerprint="fp2", kept=moved))
    assert (fresh.status, fresh.fingerprint, fresh.outputs, fresh.attempts) == (
        JobStatus.PENDING, "fp2", (), 0,
    )  # fmt: skip
    assert fresh.previous == (PreviousRun("fp1", moved),)
    assert (fresh.history, fresh.cost, fresh.taskid) == (("t1",), 0.5, None)


def test_output_lost_reopens_a_succeeded_job() -> None:
    done = run(
        OutputSaved(job="a", name="v.mp4", path="a.mp4", size=10, sha256=SHA),
        JobSucceeded(job="a"),
        record=to_downloading(),
    )
    assert apply(done, OutputLost(job="a", name="other")) is done
    lost = apply(done, OutputLost(job="a", name="v.mp4", reason="sha256 differs"))
    assert (lost.status, lost.outputs, lost.finished_at) == (JobStatus.DOWNLOADING, (), None)
    assert lost.remote_outputs == done.remote_outputs


def test_record_format_round_trips_and_matches_orjson() -> None:
    record = run(
        OutputSaved(job="a", name="v.mp4", path="a.mp4", size=10, sha256=SHA),
        JobSucceeded(job="a"),
        JobRegistered(job="a", fingerprint="fp2"),
        record=to_downloading(),
    )
    data = record.to_dict()
    assert orjson.loads(orjson.dumps(record)) == data
    assert orjson.loads(orjson.dumps(data)) == data
    assert JobRecord.from_dict(data) == record


def test_ledger_state_helpers() -> None:
    state = LedgerState()
    for job in JOBS:
        apply_event(state, JobRegistered(job=job, fingerprint="f"))
    apply_event(state, JobFailed(job="b", error="bad input", cost=0.25))
    apply_event(state, JobCancelled(job="c", error="timeout", cost=1.0))
    apply_event(state, UploadDone(path="in.png", sha256=SHA, url="https://u/1"))
    apply_event(state, RunStarted(pid=42, t=10))
    apply_event(state, RunEnded(pid=42, exit_code=1, counts={"failed": 1}, t=20))
    assert counts_by_status(state)["pending"] == 1
    assert list(counts_by_status(state)) == [s.value for s in JobStatus]
    assert total_cost(state) == 1.25
    assert [r.job_id for r in failures(state)] == ["b", "c"]
    assert state.uploads == {SHA: "https://u/1"}
    assert (state.runs[0].ended_at, state.runs[0].exit_code) == (20, 1)


# --- properties --------------------------------------------------------------------------

_job = st.sampled_from(JOBS)
_text = st.sampled_from(("x", "y"))
_cost = st.none() | st.sampled_from((0.25, 0.5))
_t = st.integers(1, 10**6).map(float)
_remote = st.builds(RemoteOutput, name=st.sampled_from(("v", "w")), url=_text)
_saved = st.builds(SavedOutput, st.sampled_from(("v", "w")), _text, st.just(1), st.just(SHA))

job_events = st.one_of(
    st.builds(JobRegistered, job=_job, fingerprint=st.sampled_from(FPS), t=_t),
    st.builds(JobReset, job=_job, t=_t),
    st.builds(SubmitIntent, job=_job, attempt=st.integers(0, 3), fingerprint=st.sampled_from(FPS)),
    st.builds(Submitted, job=_job, taskid=st.sampled_from(TASKS), tasktoken=_text, t=_t),
    st.builds(SubmitRejected, job=_job, error=_text, t=_t),
    st.builds(SubmitAmbiguous, job=_job, error=_text, t=_t),
    st.builds(Reconciled, job=_job, taskid=st.none() | st.sampled_from(TASKS), t=_t),
    st.builds(
        TaskStatusSeen, job=_job, status=st.sampled_from(("task_queue", "task_start", "new"))
    ),
    st.builds(TaskDone, job=_job, outputs=st.tuples(_remote), cost=_cost, t=_t),
    st.builds(
        OutputSaved,
        job=_job,
        name=st.sampled_from(("v", "w")),
        path=_text,
        size=st.just(1),
        sha256=st.just(SHA),
        t=_t,
    ),
    st.builds(OutputLost, job=_job, name=st.sampled_from(("v", "w")), t=_t),
    st.builds(JobSucceeded, job=_job, t=_t),
    st.builds(JobFailed, job=_job, error=_text, cost=_cost, t=_t),
    st.builds(JobCancelled, job=_job, error=_text, t=_t),
    st.builds(AttemptFailed, job=_job, error=_text, cost=_cost, t=_t),
)
ledger_events: st.SearchStrategy[Event] = st.one_of(
    job_events,
    st.builds(UploadDone, path=_text, sha256=st.just(SHA), url=_text, t=_t),
    st.builds(RunStarted, pid=st.integers(1, 3), t=_t),
    st.builds(RunEnded, pid=st.integers(1, 3), exit_code=st.integers(0, 4), t=_t),
)


@settings(max_examples=300)
@given(st.lists(job_events, max_size=60))
def test_only_resets_leave_a_terminal_status(events: list[JobEvent]) -> None:
    state, task_ids = LedgerState(), set()
    for event in events:
        before = state.jobs.get(event.job)
        stored = state.jobs.version(event.job) if before is not None else None
        try:
            apply_event(state, event)
        except TransitionError:
            assert state.jobs.get(event.job) == before
            assert before is None or state.jobs.version(event.job) is stored  # untouched
            continue
        after = state.jobs[event.job]
        if before is not None and before.status in TERMINAL and not isinstance(event, RESETS):
            assert after == before and state.jobs.version(event.job) is stored
        if after.status in IN_FLIGHT - {JobStatus.SUBMITTING, JobStatus.UNKNOWN}:
            assert after.taskid is not None
        if after.taskid:
            task_ids.add((after.job_id, after.taskid))
    for job, taskid in task_ids:  # a task id, once known, is never forgotten
        assert taskid == state.jobs[job].taskid or taskid in state.jobs[job].history
    assert sum(state.counts.values()) == len(state.jobs)
    for status, count in state.counts.items():
        assert count == sum(1 for r in state.jobs.values() if r.status is status)
    assert state.cost == pytest.approx(sum(r.cost or 0.0 for r in state.jobs.values()), abs=1e-9)


@settings(max_examples=200)
@given(st.lists(ledger_events, max_size=20))
def test_every_event_round_trips_through_json(events: list[Event]) -> None:
    for event in events:
        data = orjson.loads(orjson.dumps(event_to_dict(event)))
        assert set(data) >= {"t", "type", "job"}
        assert EVENT_TYPES[data["type"]] is type(event)
        assert event_from_dict(data) == event


def test_event_from_dict_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="unknown event type"):
        event_from_dict({"type": "nope", "job": "a"})
    with pytest.raises(ValueError, match="bad submitted"):
        event_from_dict({"type": "submitted", "job": "a"})


def _every_field_set() -> JobRecord:
    """A record whose every field holds a value of its own, none a default."""
    saved = SavedOutput("v", "a/v.mp4", 3, SHA, "video/mp4", "video")
    return JobRecord(
        job_id="a", status=JobStatus.DOWNLOADING, fingerprint="fp1", attempts=2, taskid="t2",
        tasktoken="tok", marker="m", service_status="task_start", error="e", cost=0.5,
        remote_outputs=(RemoteOutput("v", "https://x/v.mp4", 3, "video/mp4"),),
        outputs=(saved,), previous=(PreviousRun("fp0", (saved,)),), history=("t1",),
        created_at=1.0, submitted_at=2.0, finished_at=3.0, updated_at=4.0, model="M/x",
        published=(PublishedOutput("v", "a/v.mp4", "s3://b/a/v.mp4", 3, SHA, "e", None),),
    )  # fmt: skip


def test_evolve_is_replace_for_every_field_and_from_dict_reads_each_back() -> None:
    """The transitions' fast copy and the fast decode set slots by position: a field added,
    removed or moved in JobRecord must not shift a value into its neighbour."""
    record = _every_field_set()
    assert JobRecord.from_dict(record.to_dict()) == record
    for f in dataclasses.fields(JobRecord):
        other = object()
        changed = evolve(record, **{f.name: other})
        assert changed == dataclasses.replace(record, **{f.name: other})
        assert getattr(changed, f.name) is other and getattr(record, f.name) is not other
    with pytest.raises(KeyError):
        evolve(record, no_such_field=1)


def test_slot_builders_make_what_init_makes() -> None:
    """The hot paths' builders give objects equal to, and as immutable as, the dataclass's
    own; a class that needs its ``__init__`` (a ``__post_init__``) is refused."""
    from batch_runner._slots import slot_builder
    from batch_runner.manifest.job import Job, fingerprint, quick_job

    saved = ("v", "a/v.mp4", 3, SHA, "video/mp4", "video")
    assert slot_builder(SavedOutput)(*saved) == SavedOutput(*saved)
    remote = ("v", "https://x/v.mp4", None, "")
    assert slot_builder(RemoteOutput)(*remote) == RemoteOutput(*remote)
    job = quick_job("j1", 0, {"prompt": "p"}, "m.yaml:3", "M/x", 0.25)
    fp = fingerprint("M/x", {"prompt": "p"}, None)
    assert job == Job("j1", 0, {"prompt": "p"}, None, fp, "m.yaml:3", "M/x", (), 0.25, "j1")
    assert job.fingerprint == fp and hash(job) == hash(Job("j1", 0, {}, None, fp, "m.yaml:3",
                                                            "M/x", (), 0.25, "j1"))  # fmt: skip
    assert job != Job("j1", 0, {"prompt": "p"}, None, "f", "m.yaml:3", "M/x", (), 0.25, "j1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.id = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        slot_builder(SavedOutput)(*saved[:-1])  # every field is given
    with pytest.raises(TypeError, match="needs its __init__"):
        slot_builder(LedgerState)
