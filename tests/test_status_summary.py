"""``status`` reads its figures from the ledger's bytes (ledger/summary.py): differential
tests against the full decode (``read_ledger`` and the state's own queries) on real ledgers
written by :class:`Ledger`, on random histories cut at random seqs, and on layouts the scan
does not read (which must fall back to the decode and still agree)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_state import JOBS, SHA, job_events

from batch_runner.errors import LedgerError
from batch_runner.ledger.codec import Gap
from batch_runner.ledger.events import (
    AttemptFailed,
    Event,
    JobCancelled,
    JobFailed,
    JobRegistered,
    JobReset,
    JobSucceeded,
    OutputLost,
    OutputPublished,
    OutputSaved,
    RemoteOutput,
    RunEnded,
    RunStarted,
    SubmitIntent,
    Submitted,
    TaskDone,
    TaskStatusSeen,
    UploadDone,
)
from batch_runner.ledger.published import figures, last_target
from batch_runner.ledger.shard import SHARDS_DIR
from batch_runner.ledger.state import (
    LedgerState,
    TransitionError,
    apply_event,
    counts_by_status,
    failures,
    total_cost,
)
from batch_runner.ledger.store import (
    JOURNAL_NAME,
    SNAPSHOT_NAME,
    Ledger,
    decode_snapshot,
    encode_line,
    encode_snapshot,
    parse_journal,
    read_ledger,
    read_summary,
    replay,
    snapshot_payload,
)
from batch_runner.ledger.summary import scan, summarize
from batch_runner.report.status import folder_data, status_data

TARGET = "s3://bucket/run"
DATA = Path(__file__).parent / "data"


# --- the reference: the full decode, as status computed it before ------------------------


def expected(state: LedgerState) -> dict[str, Any]:
    target = last_target(state)
    return {
        "jobs": len(state.jobs),
        "counts": counts_by_status(state),
        "cost": total_cost(state),
        "runs": list(state.runs),
        "failures": [
            {"job": r.job_id, "status": r.status.value, "error": r.error, "taskid": r.taskid}
            for r in failures(state)
        ],
        "publish": figures(state, target) if target else None,
    }


def got(summary: Any) -> dict[str, Any]:
    names = ("jobs", "counts", "cost", "runs", "failures", "publish")
    return {name: getattr(summary, name) for name in names}


def files(directory: Path) -> tuple[bytes | None, bytes | None]:
    found = []
    for name in (SNAPSHOT_NAME, JOURNAL_NAME):
        path = directory / name
        found.append(path.read_bytes() if path.exists() else None)
    return found[0], found[1]


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def scanned(snapshot: bytes, journal: bytes | None, size: int | None = None) -> Any:
    """The byte scan's own answer (None: it handed over to the decode)."""
    return scan(pieces(snapshot, size) if size else [snapshot], journal)


def check_folder(directory: Path, *, scans: bool = True) -> dict[str, Any]:
    """The summary equals the full decode; with ``scans`` the byte scan itself answered
    (not the decode), whatever pieces the snapshot comes in."""
    want = expected(read_ledger(directory))
    assert got(read_summary(directory)) == want
    snapshot, journal = files(directory)
    if scans:
        assert snapshot is not None
        sizes = [None, 997, 13] + ([1] if len(snapshot) < 50_000 else [])
        for size in sizes:
            found = scanned(snapshot, journal, size)
            assert found is not None and got(found) == want, size
    return want


# --- real ledgers, written by Ledger -------------------------------------------------------


def _remote(job: str) -> tuple[RemoteOutput, ...]:
    return (RemoteOutput("v", f"http://x/{job}/v.mp4", 10, "video/mp4"),)


def succeed(job: str, cost: float | None = 0.1, *, outputs: int = 1) -> list[Event]:
    events: list[Event] = [
        SubmitIntent(job=job, attempt=1, fingerprint="fp"),
        Submitted(job=job, taskid=f"task-{job}", tasktoken="tok"),
        TaskStatusSeen(job=job, status="task_start"),
        TaskDone(job=job, outputs=_remote(job), cost=cost),
    ]
    for i in range(outputs):
        events.append(OutputSaved(job=job, name=f"o{i}", path=f"{job}-{i}.mp4", size=10 + i,
                                  sha256=SHA, content_type="video/mp4", kind="video"))  # fmt: skip
    events.append(JobSucceeded(job=job))
    return events


def publish(job: str, i: int = 0, *, target: str = TARGET, sha: str = SHA) -> Event:
    path = f"{job}-{i}.mp4"
    return OutputPublished(job=job, name=f"o{i}", path=path, url=f"{target}/{path}",
                           size=10 + i, sha256=sha, etag="e")  # fmt: skip


def history(prefix: str = "") -> list[Event]:
    """Every kind of record: succeeded (with outputs, published or not), failed,
    cancelled, in flight, downloading, pending, reset, re-registered, odd text."""
    j = [f"{prefix}{name}" for name in ("ok", "ok2", "bad", "gone", "q", "dl", "new", "rs", "ed")]
    events: list[Event] = [RunStarted(pid=1, t=100.0, publish=TARGET)]
    events += [JobRegistered(job=job, fingerprint="fp", model="m/x") for job in j]
    events += [*succeed(j[0], 0.1, outputs=2), publish(j[0], 0), publish(j[0], 1)]
    events += [*succeed(j[1], 0.2), publish(j[1], 0, target="s3://other")]
    events += [
        SubmitIntent(job=j[2], attempt=1, fingerprint="fp"),
        Submitted(job=j[2], taskid="t-bad"),
        JobFailed(job=j[2], error='refused: "quota", line\nand \\ more ","status":"x"', cost=0.3),
        JobCancelled(job=j[3], error="timeout"),
        SubmitIntent(job=j[4], attempt=1, fingerprint="fp"),
        Submitted(job=j[4], taskid="t-q"),
        SubmitIntent(job=j[5], attempt=1, fingerprint="fp"),
        Submitted(job=j[5], taskid="t-dl"),
        TaskDone(job=j[5], outputs=_remote(j[5]), cost=1 / 3),
    ]
    events += [*succeed(j[7], 0.7), JobReset(job=j[7], reason="again")]
    events += [*succeed(j[8], 0.05), JobRegistered(job=j[8], fingerprint="fp2")]
    events += [UploadDone(path="in.png", sha256=SHA, url="https://u/1")]
    return events


def killed_tail(prefix: str = "") -> list[Event]:
    """What a run goes on doing after the last snapshot before it is killed."""
    j = [f"{prefix}{name}" for name in ("ok", "ok2", "bad", "q", "dl", "late", "late2")]
    events: list[Event] = [RunStarted(pid=2, t=200.0, publish=TARGET)]
    events += [publish(j[1], 0), OutputLost(job=j[0], name="o1")]
    events += [TaskStatusSeen(job=j[2], status="task_start")]  # late news: still failed
    events += [Submitted(job=j[3], taskid="t-q2"), TaskDone(job=j[3], outputs=(), cost=0.25)]
    events += [AttemptFailed(job=j[3], error="lost", cost=0.125)]
    events += [OutputSaved(job=j[4], name="o0", path=f"{j[4]}-0.mp4", size=10, sha256=SHA)]
    events += [JobSucceeded(job=j[4]), publish(j[4], 0, sha="ee" * 32)]
    events += [JobRegistered(job=j[5], fingerprint="fp"), JobCancelled(job=j[5], error="x")]
    events += [JobRegistered(job=j[6], fingerprint="fp"), *succeed(j[6], None)]
    events += [publish(j[6], 0)]
    return events


async def _record(
    directory: Path, events: list[Event], *, close: bool, every: int, tail: list[Event]
) -> None:
    ledger = Ledger.open(directory, compact_every=every, compact_interval=3600.0)
    for batch in (events, tail):  # the tail after the compactions the events caused
        for event in batch:
            try:
                await ledger.record(event, durable=False)
            except TransitionError:
                continue
        await ledger.flush()
        if ledger._compactor is not None:
            await ledger._compactor
    if close:
        await ledger.close()
    else:
        os.close(ledger._fd)  # as kill -9 leaves the folder


def write(
    directory: Path,
    events: list[Event],
    *,
    close: bool = True,
    every: int = 5000,
    tail: list[Event] | None = None,
) -> None:
    asyncio.run(_record(directory, events, close=close, every=every, tail=tail or []))


def test_a_finished_folder(tmp_path: Path) -> None:
    write(tmp_path, [*history(), RunEnded(pid=1, exit_code=1, counts={"failed": 1})])
    assert not (tmp_path / JOURNAL_NAME).exists()
    want = check_folder(tmp_path)
    assert want["publish"].published_jobs == 1 and want["publish"].unpublished_jobs == 1
    assert [f["job"] for f in want["failures"]] == ["bad", "gone"]
    assert want["counts"]["downloading"] == 1 and want["counts"]["pending"] == 3


def test_a_killed_run_leaves_a_tail_after_the_snapshot(tmp_path: Path) -> None:
    write(tmp_path, history(), close=True)
    write(tmp_path, killed_tail(), close=False)  # the second run's journal, no snapshot
    events = parse_journal((tmp_path / JOURNAL_NAME).read_bytes())[0]
    assert events and (tmp_path / SNAPSHOT_NAME).exists()
    want = check_folder(tmp_path)
    assert want["jobs"] == 11
    assert [f["job"] for f in want["failures"]] == ["bad", "gone", "late"]  # in manifest order


def test_a_run_killed_between_compactions(tmp_path: Path) -> None:
    """Compactions every 5 events: a snapshot mid-history and a journal tail after it."""
    write(tmp_path, history(), close=False, every=5, tail=killed_tail()[:6])
    snapshot = decode_snapshot((tmp_path / SNAPSHOT_NAME).read_bytes())
    tail = [s for s, _ in parse_journal((tmp_path / JOURNAL_NAME).read_bytes())[0]]
    assert snapshot.seq > 0 and tail and min(tail) == snapshot.seq + 1
    check_folder(tmp_path)


def test_a_journal_left_before_the_first_snapshot(tmp_path: Path) -> None:
    write(tmp_path, [*history(), *killed_tail()], close=False)
    assert decode_snapshot((tmp_path / SNAPSHOT_NAME).read_bytes()).seq == 0  # Ledger.open's
    check_folder(tmp_path)
    (tmp_path / SNAPSHOT_NAME).unlink()  # as a killed older version leaves it
    check_folder(tmp_path, scans=False)


def test_a_journal_that_repeats_lines_the_snapshot_holds(tmp_path: Path) -> None:
    """A compaction killed after the snapshot and before the journal was cut: the journal
    still holds every line, the older ones are skipped."""
    state, lines = LedgerState(), []
    for event in [*history(), *killed_tail()]:
        try:
            apply_event(state, event)
        except TransitionError:
            continue
        state.seq += 1
        lines.append(encode_line(state.seq, event))
        if state.seq == 30:
            (tmp_path / SNAPSHOT_NAME).write_bytes(encode_snapshot(snapshot_payload(state)))
    (tmp_path / JOURNAL_NAME).write_bytes(b"".join(lines) + b'{"seq": 9')  # a torn tail
    check_folder(tmp_path)


def test_a_gap_between_the_snapshot_and_the_journal_is_reported(tmp_path: Path) -> None:
    write(tmp_path, history())
    line = encode_line(10_000, JobRegistered(job="zz", fingerprint="f"))
    with pytest.raises(Gap):
        summarize((tmp_path / SNAPSHOT_NAME).read_bytes(), line)


def test_sharded_folders_show_what_each_shard_decodes_to(tmp_path: Path) -> None:
    shards = tmp_path / SHARDS_DIR
    write(shards / "0-of-3", [*history("a"), RunEnded(pid=1, exit_code=0)])
    write(shards / "1-of-3", history("b"), close=False, every=5, tail=killed_tail("b"))
    (shards / "2-of-3").mkdir()  # not reported yet
    data = status_data(tmp_path)
    rows = {row["shard"]: row for row in data["shards"]}
    for name in ("0-of-3", "1-of-3"):
        want = expected(read_ledger(shards / name))
        row = rows[name]
        assert (row["jobs"], row["counts"], row["failures"]) == (
            want["jobs"], want["counts"], want["failures"],
        )  # fmt: skip
        assert row["spent_usd"] == round(want["cost"], 6)
        assert row["publish"] == want["publish"].to_dict()
        assert row == {**folder_data(shards / name), "shard": name, "index": int(name[0]),
                       "reported": True}  # fmt: skip
    assert data["shards_not_reported"] == ["2-of-3"]


def test_many_costs_sum_exactly_as_the_decode_sums_them(tmp_path: Path) -> None:
    costs = [0.1, 0.2, 1 / 3, 1e-9, 7.0, None, 0.3, 2.5e-7, 1 / 7]
    events: list[Event] = []
    for i in range(300):
        job = f"j{i:03d}"
        events += [JobRegistered(job=job, fingerprint="fp"), *succeed(job, costs[i % 9])]
    write(tmp_path, events)
    again: list[Event] = []
    for i in range(0, 300, 7):  # a second run redoes some jobs, and is killed
        again += [JobReset(job=f"j{i:03d}"), *succeed(f"j{i:03d}", costs[(i + 4) % 9])]
    write(tmp_path, again, close=False)
    snapshot, journal = files(tmp_path)
    assert snapshot is not None and journal
    want = expected(read_ledger(tmp_path))
    for size in (None, 4096, 333):
        found = scanned(snapshot, journal, size)
        assert found is not None and found.cost == want["cost"]


def test_job_ids_and_texts_that_need_escaping(tmp_path: Path) -> None:
    odd = ['quo"te', "back\\slash", "uni-é-☃", 'x":{"job_id":"y', "tab\tnew\nline"]
    events: list[Event] = []
    for job in odd:
        events += [JobRegistered(job=job, fingerprint="fp"), JobFailed(job=job, error=job * 2)]
    events += [JobRegistered(job="fine", fingerprint="fp"), *succeed("fine")]
    write(tmp_path, events)
    check_folder(tmp_path, scans=False)  # ids with quotes: the decode answers
    write(tmp_path, [JobReset(job=odd[1]), JobFailed(job="fine", error="late")], close=False)
    check_folder(tmp_path, scans=False)


def test_texts_with_escapes_in_a_scanned_ledger(tmp_path: Path) -> None:
    events: list[Event] = []
    for i, error in enumerate(['say "hi"', "a\\b", "é\u2028☃", '","status":"succeeded","']):
        job = f"j{i}"
        events += [JobRegistered(job=job, fingerprint="fp")]
        events += [SubmitIntent(job=job, attempt=1, fingerprint="fp")]
        events += [Submitted(job=job, taskid=f'ta"sk\\{i}'), JobFailed(job=job, error=error)]
    events += [JobRegistered(job="k", fingerprint='f"p'), JobCancelled(job="k", error="")]
    write(tmp_path, events)
    want = check_folder(tmp_path)
    assert want["failures"][3]["error"] == '","status":"succeeded","'
    write(tmp_path, [JobReset(job="j1"), JobRegistered(job="j9", fingerprint="x")], close=False)
    check_folder(tmp_path)


# --- layouts the scan does not read: the decode answers, the same way --------------------


def test_a_pretty_printed_ledger(tmp_path: Path) -> None:
    write(tmp_path, history())
    raw = json.loads((tmp_path / SNAPSHOT_NAME).read_text())
    (tmp_path / SNAPSHOT_NAME).write_text(json.dumps(raw, indent=2))
    check_folder(tmp_path, scans=False)
    snapshot, journal = files(tmp_path)
    assert snapshot is not None and scanned(snapshot, journal) is None


def test_a_record_in_another_field_order(tmp_path: Path) -> None:
    write(tmp_path, history())
    raw = orjson.loads((tmp_path / SNAPSHOT_NAME).read_bytes())
    record = raw["jobs"]["bad"]
    raw["jobs"]["bad"] = {"job_id": "bad", "cost": record["cost"], **record}
    (tmp_path / SNAPSHOT_NAME).write_bytes(orjson.dumps(raw))
    check_folder(tmp_path, scans=False)


def test_the_legacy_demo_ledger(tmp_path: Path) -> None:
    shutil.copytree(DATA / "legacy-demo", tmp_path / "demo")
    check_folder(tmp_path / "demo", scans=False)


def test_an_unreadable_record_fails_as_the_decode_fails(tmp_path: Path) -> None:
    write(tmp_path, history())
    data = (tmp_path / SNAPSHOT_NAME).read_bytes()
    (tmp_path / SNAPSHOT_NAME).write_bytes(data.replace(b'"status":"failed"', b'"status":"odd"'))
    with pytest.raises(LedgerError) as old:
        read_ledger(tmp_path)
    with pytest.raises(LedgerError) as new:
        read_summary(tmp_path)
    assert str(new.value) == str(old.value)


def test_an_empty_jobs_table(tmp_path: Path) -> None:
    write(tmp_path, [RunStarted(pid=1, t=1.0), RunEnded(pid=1, exit_code=0)])
    check_folder(tmp_path)


# --- random histories ----------------------------------------------------------------------

_published = st.builds(
    OutputPublished,
    job=st.sampled_from(JOBS),
    name=st.sampled_from(("v", "w")),
    path=st.sampled_from(("x", "y")),
    url=st.sampled_from((f"{TARGET}/x", f"{TARGET}/y", "s3://other/x")),
    size=st.just(1),
    sha256=st.sampled_from((SHA, "ee" * 32)),
)
_events = st.one_of(
    job_events,
    _published,
    st.builds(RunStarted, pid=st.integers(1, 3), publish=st.sampled_from((None, TARGET))),
    st.builds(RunEnded, pid=st.integers(1, 3), exit_code=st.integers(0, 4)),
    st.builds(UploadDone, path=st.just("p"), sha256=st.just(SHA), url=st.just("u")),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_events, max_size=80), st.floats(0, 1), st.booleans(), st.integers(1, 900))
def test_random_histories_cut_anywhere(
    events: list[Event], cut: float, whole: bool, size: int
) -> None:
    """Snapshot after a random prefix; the journal holds the lines after it (or, as a
    killed compaction leaves it, every line)."""
    state, lines, snapshot = LedgerState(), [], None
    accepted = []
    for event in events:
        try:
            apply_event(state, event)
        except TransitionError:
            continue
        state.seq += 1
        accepted.append(event)
        lines.append(encode_line(state.seq, event))
    at = int(cut * len(lines))
    state = LedgerState()
    for event in accepted[:at]:
        apply_event(state, event)
        state.seq += 1
    snapshot = encode_snapshot(snapshot_payload(state))
    journal = b"".join(lines if whole else lines[at:])
    reference = decode_snapshot(snapshot)
    replay(reference, parse_journal(journal)[0])
    want = expected(reference)
    for found in (scanned(snapshot, journal), scanned(snapshot, journal, size)):
        assert found is not None and got(found) == want
    assert got(summarize(snapshot, journal or None)) == want
    assert got(summarize(None, b"".join(lines))) == want
