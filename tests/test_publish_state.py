"""``output_published`` in the pure state machine and the ledger's JSON form: it annotates a
succeeded job without moving it, is ignored once stale, and a new round forgets it."""

from __future__ import annotations

import json

import jsonschema
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_runner._resources import schemas_dir
from batch_runner.ledger.codec import decode_snapshot, encode_snapshot, snapshot_payload
from batch_runner.ledger.events import (
    JobRegistered,
    JobReset,
    JobSucceeded,
    OutputLost,
    OutputPublished,
    OutputSaved,
    RemoteOutput,
    RunStarted,
    SubmitIntent,
    Submitted,
    TaskDone,
    event_from_dict,
    event_to_dict,
)
from batch_runner.ledger.published import figures, is_published, last_target, object_url
from batch_runner.ledger.state import JobRecord, JobStatus, LedgerState, apply, apply_event

SHA, OTHER = "ab" * 32, "cd" * 32
TARGET = "s3://bucket/prefix"


def succeeded(sha: str = SHA) -> JobRecord:
    record = None
    for event in (
        JobRegistered(job="a", fingerprint="fp"),
        SubmitIntent(job="a", attempt=1, fingerprint="fp"),
        Submitted(job="a", taskid="t1"),
        TaskDone(job="a", outputs=(RemoteOutput("v.mp4", "https://x/v.mp4", 3),)),
        OutputSaved(job="a", name="v.mp4", path="a.mp4", size=3, sha256=sha),
        JobSucceeded(job="a"),
    ):
        record = apply(record, event)
    assert record is not None
    return record


def published(sha: str = SHA, url: str = f"{TARGET}/a.mp4") -> OutputPublished:
    return OutputPublished(
        job="a", name="v.mp4", path="a.mp4", url=url, size=3, sha256=sha, etag='"e"'
    )


def test_published_annotates_a_succeeded_job_without_moving_it() -> None:
    record = apply(succeeded(), published())
    assert record.status is JobStatus.SUCCEEDED
    (entry,) = record.published
    assert entry.url == object_url(TARGET, "a.mp4") and entry.etag == '"e"'
    assert is_published(record, TARGET)
    assert not is_published(record, "s3://another/target")  # another target: not there
    again = apply(record, published())  # the same news twice: one entry
    assert len(again.published) == 1


def test_stale_publish_news_is_ignored_and_a_new_output_is_unpublished() -> None:
    record = succeeded()
    assert apply(record, published(sha=OTHER)) is record  # not this content
    downloading = apply(
        apply(succeeded(), published()), OutputLost(job="a", name="v.mp4", reason="changed")
    )
    assert downloading.status is JobStatus.DOWNLOADING
    assert apply(downloading, published()) is downloading  # not succeeded: ignored
    refetched = apply(
        apply(downloading, OutputSaved(job="a", name="v.mp4", path="a.mp4", size=3, sha256=OTHER)),
        JobSucceeded(job="a"),
    )
    assert not is_published(refetched, TARGET)  # its entry is for the old content


def test_a_new_round_forgets_what_was_published() -> None:
    record = apply(succeeded(), published())
    assert apply(record, JobReset(job="a", reason="retry")).published == ()
    assert apply(record, JobRegistered(job="a", fingerprint="fp2")).published == ()


events = st.lists(
    st.sampled_from(
        [
            published(),
            published(sha=OTHER),
            OutputLost(job="a", name="v.mp4"),
            OutputSaved(job="a", name="v.mp4", path="a.mp4", size=3, sha256=OTHER),
            JobSucceeded(job="a"),
            JobReset(job="a"),
        ]
    ),
    max_size=12,
)


@settings(max_examples=200)
@given(events)
def test_publishing_never_changes_a_status_and_entries_match_outputs(seq: list) -> None:
    record = succeeded()
    for event in seq:
        try:
            after = apply(record, event)
        except ValueError:
            continue
        if isinstance(event, OutputPublished):
            assert after.status is record.status
        if len(after.published) > len(record.published):  # gained only while succeeded
            assert after.status is JobStatus.SUCCEEDED
        if is_published(after, TARGET):  # counted only for the outputs' present content
            assert after.status is JobStatus.SUCCEEDED
            shas = {p.name: p.sha256 for p in after.published}
            assert all(shas.get(o.name) == o.sha256 for o in after.outputs)
        record = after


def test_ledger_round_trips_and_matches_its_schema() -> None:
    state = LedgerState()
    for event in (
        RunStarted(pid=1, publish=TARGET),
        JobRegistered(job="a", fingerprint="fp"),
        SubmitIntent(job="a", attempt=1, fingerprint="fp"),
        Submitted(job="a", taskid="t1"),
        TaskDone(job="a", outputs=(RemoteOutput("v.mp4", "https://x/v.mp4", 3),)),
        OutputSaved(job="a", name="v.mp4", path="a.mp4", size=3, sha256=SHA),
        JobSucceeded(job="a"),
        published(),
    ):
        apply_event(state, event)
        data = orjson.loads(orjson.dumps(event_to_dict(event)))
        assert event_from_dict(data) == event
    raw = encode_snapshot(snapshot_payload(state))
    schema = json.loads((schemas_dir() / "ledger.schema.json").read_text("utf-8"))
    jsonschema.Draft202012Validator(schema).validate(orjson.loads(raw))
    back = decode_snapshot(raw)
    assert back.jobs["a"] == state.jobs["a"]
    assert back.jobs["a"].to_dict() == orjson.loads(orjson.dumps(state.jobs["a"]))
    assert last_target(back) == TARGET
    fig = figures(back, TARGET)
    assert (fig.published_jobs, fig.unpublished_jobs, fig.objects, fig.bytes) == (1, 0, 1, 3)


def test_a_ledger_written_before_publishing_still_reads() -> None:
    state = LedgerState()
    apply_event(state, RunStarted(pid=1))
    apply_event(state, JobRegistered(job="a", fingerprint="fp"))
    old = orjson.loads(encode_snapshot(snapshot_payload(state)))
    del old["jobs"]["a"]["published"]
    del old["runs"][0]["publish"]
    back = decode_snapshot(orjson.dumps(old))
    assert back.jobs["a"].published == () and back.runs[0].publish is None
    schema = json.loads((schemas_dir() / "ledger.schema.json").read_text("utf-8"))
    jsonschema.Draft202012Validator(schema).validate(old)
