"""The ledger's record table: older successes are packed, and nobody can tell.

Every reader sees the records it would see in a dict (equal values, registration order);
the snapshot written from a table with packed records is byte for byte the snapshot of the
same records unpacked; a record that changes after being packed is stored as the new
object; the gallery's change detection sees a change exactly when the stored row changes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson
import pytest
from clihelp import write_manifest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_api import FAST, client_for
from test_ledger_scan import state_of
from test_state import ledger_events

import batch_runner
import batch_runner.ledger.records as records_module
from batch_runner.ledger.codec import decode_snapshot, encode_snapshot, snapshot_payload
from batch_runner.ledger.events import (
    Event,
    JobRegistered,
    JobSucceeded,
    OutputLost,
    OutputSaved,
    RemoteOutput,
    SubmitIntent,
    Submitted,
    TaskDone,
)
from batch_runner.ledger.records import Records, pack, unpack
from batch_runner.ledger.state import JobStatus, LedgerState, apply_event, failures
from batch_runner.sandbox import Sandbox


def succeeded_job(job_id: str, t: float) -> list[Event]:
    """A job's events from registration to success, with one saved output."""
    remote = (
        RemoteOutput("output.mp4", f"https://cdn1.wiro.ai/{job_id}/0.mp4", 2048, "video/mp4"),
    )
    return [
        JobRegistered(t=t, job=job_id, fingerprint="f" * 64, model="PixVerse/image-to-video-v5"),
        SubmitIntent(t=t + 1, job=job_id, fingerprint="f" * 64, attempt=1, marker="m"),
        Submitted(t=t + 2, job=job_id, taskid=f"9{t:.0f}", tasktoken=f"tok-{job_id}"),
        TaskDone(t=t + 3, job=job_id, taskid=f"9{t:.0f}", outputs=remote, cost=0.05),
        OutputSaved(
            t=t + 4,
            job=job_id,
            name="output.mp4",
            path=f"{job_id}.mp4",
            size=2048,
            sha256="a" * 64,
            content_type="video/mp4",
            kind="video",
        ),
        JobSucceeded(t=t + 5.123456789, job=job_id),
    ]


def state_with(count: int) -> LedgerState:
    state = LedgerState()
    for n in range(count):
        for event in succeeded_job(f"job-{n:05d}", 1_700_000_000.0 + n):
            apply_event(state, event)
    return state


@pytest.fixture
def keep_two(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(records_module, "KEEP_UNPACKED", 2)


def test_pack_and_unpack_give_an_equal_record_in_a_fraction_of_its_size() -> None:
    record = state_with(1).jobs["job-00000"]
    blob = pack(record)
    assert unpack(blob) == record
    assert len(blob) < len(orjson.dumps(record)) / 2


@pytest.mark.usefixtures("keep_two")
def test_older_successes_are_packed_and_read_back_equal() -> None:
    state = state_with(10)
    jobs = state.jobs
    assert jobs.packed() == 8  # every success but the two newest
    plain = {job_id: unpack(pack(jobs[job_id])) for job_id in jobs}
    assert list(jobs) == [f"job-{n:05d}" for n in range(10)]
    assert dict(jobs) == plain
    assert jobs.get("job-00000") == plain["job-00000"]
    assert jobs.get("nope") is None
    assert jobs.status("job-00000") is JobStatus.SUCCEEDED
    assert jobs["job-00003"].outputs[0].path == "job-00003.mp4"
    assert state.counts[JobStatus.SUCCEEDED] == 10
    assert failures(state) == []


@pytest.mark.usefixtures("keep_two")
def test_a_snapshot_with_packed_records_is_the_snapshot_of_the_records_unpacked() -> None:
    state = state_with(2050)
    assert state.jobs.packed() == 2048
    payload = snapshot_payload(state)
    data = encode_snapshot(payload)
    assert data == orjson.dumps({**payload, "jobs": dict(state.jobs)})
    again = decode_snapshot(data)
    assert dict(again.jobs) == dict(state.jobs)
    assert again.seq == state.seq


@pytest.mark.usefixtures("keep_two")
def test_a_packed_record_that_changes_is_stored_as_its_new_record() -> None:
    state = state_with(5)
    jobs = state.jobs
    before = jobs.version("job-00000")
    assert isinstance(before, bytes)
    apply_event(state, OutputLost(t=2e9, job="job-00000", name="output.mp4", reason="gone"))
    after = jobs.version("job-00000")
    assert after is not before and not isinstance(after, bytes)
    assert jobs["job-00000"].status is JobStatus.DOWNLOADING
    assert jobs["job-00000"].outputs == ()
    assert state.counts[JobStatus.SUCCEEDED] == 4
    assert state.counts[JobStatus.DOWNLOADING] == 1
    # a version is stable while nothing changes
    assert jobs.version("job-00001") is jobs.version("job-00001")


@pytest.mark.usefixtures("keep_two")
def test_a_copy_is_a_snapshot_in_time() -> None:
    state = state_with(4)
    copied = state.jobs.copy()
    apply_event(state, OutputLost(t=2e9, job="job-00000", name="output.mp4", reason="gone"))
    assert copied["job-00000"].status is JobStatus.SUCCEEDED
    assert state.jobs["job-00000"].status is JobStatus.DOWNLOADING


def test_a_plain_dict_given_to_the_state_becomes_a_table() -> None:
    record = state_with(1).jobs["job-00000"]
    state = LedgerState(jobs={"job-00000": record})
    assert isinstance(state.jobs, Records)
    assert state.jobs["job-00000"] is record


@settings(max_examples=60, deadline=None)
@given(st.lists(ledger_events, max_size=60), st.integers(min_value=0, max_value=3))
def test_whatever_the_events_a_packing_table_reads_as_a_dict(
    events: list[Event], keep: int
) -> None:
    """The same events applied to a table that packs early and to one that never packs
    leave equal records in the same order, and the same snapshot bytes."""
    saved = records_module.KEEP_UNPACKED
    try:
        records_module.KEEP_UNPACKED = keep
        packing = state_of(events)
        records_module.KEEP_UNPACKED = 10**9
        plain = state_of(events)
    finally:
        records_module.KEEP_UNPACKED = saved
    assert list(packing.jobs.items()) == list(plain.jobs.items())
    assert packing.counts == plain.counts
    assert encode_snapshot(snapshot_payload(packing)) == encode_snapshot(snapshot_payload(plain))
    for job_id in plain.jobs:
        assert packing.jobs.status(job_id) is plain.jobs[job_id].status
    assert all(
        dataclasses.replace(r) == r for r in packing.jobs.values()
    )  # unpacked records are whole dataclasses


async def test_a_run_whose_records_are_all_packed_resumes_reports_and_seals_as_usual(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real run against the sandbox with every success packed at once: the result, the
    ledger on disk, the gallery, ``status`` and a resume that submits nothing are as they
    are without packing; an output deleted afterwards is fetched again from its packed
    record's URL without a new task."""
    monkeypatch.setattr(records_module, "KEEP_UNPACKED", 0)
    manifest = batch_runner.load_manifest(write_manifest(tmp_path / "m.yaml", 12))
    out = tmp_path / "out"
    async with Sandbox(FAST) as sb, client_for(sb) as client:
        result = await batch_runner.run(manifest, client=client, out_dir=out)
        assert result.exit_code == 0 and result.succeeded == 12
        assert result.state is not None and result.state.jobs.packed() == 12
        on_disk = batch_runner.read_ledger(out)
        assert dict(on_disk.jobs) == dict(result.records)
        for record in result.records.values():
            [saved] = record.outputs
            assert (out / saved.path).stat().st_size == saved.size
        page = batch_runner.write_gallery(out, manifest)
        assert "12</b> succeeded" in page.read_text("utf-8")
        assert batch_runner.status(out)["counts"]["succeeded"] == 12
        lost = result.records["job-0003"].outputs[0].path
        (out / lost).unlink()
        again = await batch_runner.run(manifest, client=client, out_dir=out)
        assert again.exit_code == 0 and again.submitted == 0
        assert (out / lost).stat().st_size == result.records["job-0003"].outputs[0].size
        assert sb.stats()["tasks_created"] == 12


def test_the_seal_of_a_large_folder_lists_every_output_whatever_the_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seal's outputs are written 1,024 jobs a piece from packed records: the list it
    holds is every output, in manifest order, around the piece edges."""
    from batch_runner.engine.seal import Basis, make_seal
    from batch_runner.manifest.job import Job

    monkeypatch.setattr(records_module, "KEEP_UNPACKED", 0)
    count = 2049
    state = state_with(count)
    manifest = batch_runner.load_manifest(write_manifest(tmp_path / "m.yaml", 1))
    jobs = tuple(Job(f"job-{n:05d}", n, {}, None, "f" * 64, f"m.yaml:{n}") for n in range(count))
    manifest = dataclasses.replace(manifest, jobs=jobs)
    (tmp_path / "ledger.json").write_bytes(encode_snapshot(snapshot_payload(state)))
    seal = make_seal(
        tmp_path, Basis("k", [], []), state, manifest, counts={}, spent=0.0, publish=None
    )
    assert seal is not None
    written = orjson.loads(seal.to_json())["outputs"]
    expected = [
        [f"job-{n:05d}.mp4", 2048, state.jobs[f"job-{n:05d}"].finished_at] for n in range(count)
    ]
    assert written == expected


def test_a_job_just_registered_is_held_as_its_values_and_read_back_whole() -> None:
    state = LedgerState()
    apply_event(state, JobRegistered(t=5.0, job="a", fingerprint="f" * 64, model="m/x"))
    jobs = state.jobs
    assert not isinstance(jobs.version("a"), type(jobs["a"]))  # not a record object
    record = jobs["a"]
    assert record.status is JobStatus.PENDING and record.created_at == record.updated_at == 5.0
    assert record.fingerprint == "f" * 64 and record.model == "m/x" and record.attempts == 0
    assert jobs.status("a") is JobStatus.PENDING
    payload = snapshot_payload(state)
    assert encode_snapshot(payload) == orjson.dumps({**payload, "jobs": {"a": record}})
    apply_event(state, SubmitIntent(t=6.0, job="a", fingerprint="f" * 64, attempt=1))
    assert isinstance(jobs.version("a"), type(record))  # touched: a record again
    assert jobs["a"].status is JobStatus.SUBMITTING and state.counts[JobStatus.PENDING] == 0
