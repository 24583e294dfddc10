"""The durable ledger: replay, group commit, compaction, torn and corrupt journals, kill -9."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_state import ledger_events

from batch_runner._resources import schemas_dir
from batch_runner.errors import LedgerError
from batch_runner.ledger import codec
from batch_runner.ledger import store as ledger_module
from batch_runner.ledger.events import (
    Event,
    JobRegistered,
    OutputSaved,
    RunStarted,
    SubmitIntent,
    Submitted,
    TaskDone,
    TaskStatusSeen,
)
from batch_runner.ledger.state import JobStatus, LedgerState, TransitionError, apply_event
from batch_runner.ledger.store import (
    JOURNAL_NAME,
    SNAPSHOT_NAME,
    Ledger,
    decode_snapshot,
    encode_line,
    encode_snapshot,
    parse_journal,
    read_ledger,
    replay,
    restore,
    snapshot_payload,
)

SCHEMA = json.loads((schemas_dir() / "ledger.schema.json").read_text())
SHA = "cd" * 32


def validate(directory: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((directory / SNAPSHOT_NAME).read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    return data


def dump(state: LedgerState) -> Any:
    """A comparable picture of a state (everything persisted, plus the counts)."""
    return orjson.loads(encode_snapshot(snapshot_payload(state))), dict(state.counts)


def accepted(events: list[Event]) -> tuple[LedgerState, list[bytes]]:
    """What Ledger.record would keep: the in-memory state and the journal lines."""
    state, lines = LedgerState(), []
    for event in events:
        try:
            apply_event(state, event)
        except TransitionError:
            continue
        state.seq += 1
        lines.append(encode_line(state.seq, event))
    return state, lines


# --- replay properties -------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(ledger_events, max_size=50), st.data())
def test_snapshot_plus_journal_equals_memory_at_any_cut(events: list[Event], data: Any) -> None:
    memory, lines = accepted(events)
    journal, good_end = parse_journal(b"".join(lines))
    assert good_end == sum(map(len, lines))
    full = LedgerState()
    replay(full, journal)
    assert dump(full) == dump(memory)
    assert replay(full, journal) == 0  # replaying twice changes nothing
    assert dump(full) == dump(memory)
    cut = data.draw(st.integers(0, len(lines)))
    partial = LedgerState()
    replay(partial, journal[:cut])
    restored = decode_snapshot(encode_snapshot(snapshot_payload(partial)))
    replay(restored, journal)  # the journal may still hold lines the snapshot covers
    assert dump(restored) == dump(memory)


@settings(max_examples=100, deadline=None)
@given(st.lists(ledger_events, max_size=40))
def test_any_journal_replays_even_with_impossible_events(events: list[Event]) -> None:
    lines = b"".join(encode_line(i + 1, event) for i, event in enumerate(events))
    state = LedgerState()
    replay(state, parse_journal(lines)[0])
    assert state.seq == len(events)


@settings(max_examples=60, deadline=None)
@given(st.lists(ledger_events, max_size=40), st.integers(1, 300))
def test_a_snapshot_read_in_pieces_is_the_snapshot_read_whole(
    events: list[Event], piece: int
) -> None:
    """Records cut as the pieces arrive (marks and records split at any byte) give the
    same state as the whole file; so does a file laid out otherwise (read whole)."""
    memory, _ = accepted(events)
    data = encode_snapshot(snapshot_payload(memory))
    pretty = orjson.dumps(orjson.loads(data), option=orjson.OPT_INDENT_2)

    def no_whole_read(*args: object, **kwargs: object) -> None:
        raise AssertionError("a snapshot as encode_snapshot writes it was read whole")

    with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as patch:
        path = Path(folder) / SNAPSHOT_NAME
        patch.setattr(codec, "_PIECE", piece)
        path.write_bytes(pretty)
        assert dump(codec.read_snapshot(path)) == dump(memory)
        path.write_bytes(data)
        patch.setattr(codec, "iter_snapshot", no_whole_read)
        assert dump(codec.read_snapshot(path)) == dump(memory)


def test_a_snapshot_cut_short_is_refused_when_read_in_pieces(tmp_path: Path) -> None:
    state, _ = accepted([JobRegistered(job=f"j{i}", fingerprint="f") for i in range(5)])
    data = encode_snapshot(snapshot_payload(state))
    path = tmp_path / SNAPSHOT_NAME
    path.write_bytes(data[:-40])
    with pytest.raises(LedgerError, match="not a readable ledger"):
        codec.read_snapshot(path)


# --- journal files -----------------------------------------------------------------------


def journal_bytes(n: int) -> bytes:
    return b"".join(
        encode_line(i + 1, JobRegistered(job=f"j{i}", fingerprint="f", t=1)) for i in range(n)
    )


@pytest.mark.parametrize("tail", [b'{"seq": 4, "t"', b"\x00\x00\x00\n", b"garbage\n\n{bad\n"])
def test_torn_tail_is_dropped(tmp_path: Path, tail: bytes, caplog: Any) -> None:
    (tmp_path / JOURNAL_NAME).write_bytes(journal_bytes(3) + tail)
    assert read_ledger(tmp_path).seq == 3
    state = restore(tmp_path)
    assert (state.seq, sorted(state.jobs)) == (3, ["j0", "j1", "j2"])
    assert "torn tail" in caplog.text
    assert not (tmp_path / JOURNAL_NAME).exists()
    assert validate(tmp_path)["seq"] == 3


def test_corrupt_middle_line_names_the_line(tmp_path: Path) -> None:
    lines = journal_bytes(3).splitlines(keepends=True)
    (tmp_path / JOURNAL_NAME).write_bytes(lines[0] + b"{not json\n" + lines[1] + lines[2])
    with pytest.raises(LedgerError, match="line 2"):
        read_ledger(tmp_path)
    with pytest.raises(LedgerError, match="line 2"):
        Ledger.open(tmp_path)


def test_gap_and_version_are_errors(tmp_path: Path) -> None:
    (tmp_path / JOURNAL_NAME).write_bytes(journal_bytes(3).splitlines(keepends=True)[2])
    with pytest.raises(LedgerError, match="missing"):
        restore(tmp_path)
    (tmp_path / JOURNAL_NAME).unlink()
    (tmp_path / SNAPSHOT_NAME).write_text('{"version": 99, "seq": 0}')
    with pytest.raises(LedgerError, match="version"):
        read_ledger(tmp_path)
    with pytest.raises(LedgerError, match="no ledger"):
        read_ledger(tmp_path / "absent")


def test_read_ledger_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / JOURNAL_NAME).write_bytes(journal_bytes(2) + b'{"seq"')
    before = sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in tmp_path.iterdir())
    assert read_ledger(tmp_path).seq == 2
    after = sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in tmp_path.iterdir())
    assert before == after


# --- the live ledger ---------------------------------------------------------------------


async def register(ledger: Ledger, n: int) -> None:
    for i in range(n):
        await ledger.record(JobRegistered(job=f"j{i}", fingerprint="f"), durable=False)


async def test_group_commit_and_reopen(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path)
    await register(ledger, 500)
    await asyncio.gather(
        *(ledger.record(SubmitIntent(job=f"j{i}", attempt=1, fingerprint="f")) for i in range(500))
    )
    stats = ledger.stats
    assert stats.events == 1000 and 1 <= stats.fsyncs <= 10
    for name in (SNAPSHOT_NAME, JOURNAL_NAME):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600
    assert dump(read_ledger(tmp_path)) == dump(ledger.state)
    await ledger.close()
    assert not (tmp_path / JOURNAL_NAME).exists()
    assert validate(tmp_path)["seq"] == 1000
    again = Ledger.open(tmp_path)
    assert dump(again.state) == dump(ledger.state)
    assert again.state.counts[JobStatus.SUBMITTING] == 500
    await again.close()


async def test_impossible_event_writes_nothing(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path)
    await ledger.record(JobRegistered(job="a", fingerprint="f"))
    with pytest.raises(TransitionError):
        await ledger.record(Submitted(job="a", taskid="t1"))
    assert ledger.state.seq == 1
    assert ledger.state.jobs["a"].status is JobStatus.PENDING
    assert len((tmp_path / JOURNAL_NAME).read_bytes().splitlines()) == 1
    await ledger.close()


async def test_lazy_events_then_flush(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path)
    await register(ledger, 50)
    await asyncio.sleep(0.05)
    assert ledger.stats.fsyncs == 0 and ledger.stats.writes >= 1
    await ledger.flush()
    assert ledger.stats.fsyncs == 1
    assert [seq for seq, _ in parse_journal((tmp_path / JOURNAL_NAME).read_bytes())[0]] == list(
        range(1, 51)
    )
    ledger.close_sync()
    assert validate(tmp_path)["seq"] == 50 and not (tmp_path / JOURNAL_NAME).exists()
    with pytest.raises(LedgerError, match="closed"):
        await ledger.record(JobRegistered(job="z", fingerprint="f"))


async def test_the_journal_queue_is_bounded_even_for_lazy_events(tmp_path: Path) -> None:
    """5,000 lazy events in a row (a new run registering its jobs) never queue more than
    MAX_QUEUED lines: past it, record waits for the writer, and every line lands in order."""
    from batch_runner.ledger.store import MAX_QUEUED

    ledger = Ledger.open(tmp_path, compact_every=10**6)
    most = 0
    for i in range(5000):
        await ledger.record(JobRegistered(job=f"j{i}", fingerprint="f"), durable=False)
        most = max(most, len(ledger._pending))
    assert most <= MAX_QUEUED
    assert ledger.stats.fsyncs >= 5000 // MAX_QUEUED - 1
    await ledger.flush()
    lines = parse_journal((tmp_path / JOURNAL_NAME).read_bytes())[0]
    assert [seq for seq, _ in lines] == list(range(1, 5001))
    await ledger.close()


async def test_compaction_while_reading_and_writing(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path, compact_every=20)
    await register(ledger, 10)
    stop, seen, errors = threading.Event(), [], []

    def reader() -> None:
        while not stop.is_set():
            try:
                seen.append(read_ledger(tmp_path).seq)
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    for round_ in range(30):
        await asyncio.gather(
            *(
                ledger.record(TaskStatusSeen(job=f"j{i}", status=f"s{round_}"), durable=i % 2 == 0)
                for i in range(10)
            )
        )
    stop.set()
    thread.join()
    assert not errors and seen == sorted(seen)
    assert ledger.stats.snapshots >= 3
    validate(tmp_path)
    journal = parse_journal((tmp_path / JOURNAL_NAME).read_bytes())[0]
    assert len(journal) < 300  # rotated: 310 events were recorded
    assert dump(read_ledger(tmp_path)) == dump(ledger.state)
    await ledger.close()
    assert dump(read_ledger(tmp_path)) == dump(ledger.state)


async def test_write_failure_fails_waiters_and_later_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger.open(tmp_path)

    def full(fd: int, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ledger_module, "write_all", full)
    with pytest.raises(LedgerError, match="No space"):
        await ledger.record(JobRegistered(job="a", fingerprint="f"))
    with pytest.raises(LedgerError, match="No space"):
        await ledger.record(JobRegistered(job="b", fingerprint="f"))
    monkeypatch.undo()
    await ledger.close()  # the final snapshot still saves what is in memory
    assert sorted(read_ledger(tmp_path).jobs) == ["a"]


async def test_a_rename_noted_is_durable_before_the_line_that_names_it(tmp_path: Path) -> None:
    """The ledger fsyncs the folders noted in ``renames`` before it writes a journal line or
    a snapshot: a folder it cannot fsync (here, one that is gone) fails the write, and the
    line does not reach the journal."""
    ledger = Ledger.open(tmp_path)
    await ledger.record(JobRegistered(job="a", fingerprint="f"))
    (tmp_path / "out").mkdir()
    ledger.renames.note(tmp_path / "out")
    await ledger.record(JobRegistered(job="b", fingerprint="f"))
    assert not ledger.renames.pending  # synced with that write
    ledger.renames.note(tmp_path / "missing")
    with pytest.raises(LedgerError, match="missing"):
        await ledger.record(JobRegistered(job="c", fingerprint="f"))
    journal = (tmp_path / JOURNAL_NAME).read_bytes()
    assert b'"b"' in journal and b'"c"' not in journal
    with pytest.raises(LedgerError, match="missing"):
        await ledger.close()  # nor does the final snapshot
    assert sorted(read_ledger(tmp_path).jobs) == ["a", "b"]


# --- a real kill -9 ----------------------------------------------------------------------

WRITER = """
import asyncio, os, sys
from batch_runner.ledger.store import Ledger
from batch_runner.ledger.events import *  # noqa: F403
from batch_runner.ledger.state import *  # noqa: F403

async def job(ledger, i):
    j = f"j{i}"
    await ledger.record(JobRegistered(job=j, fingerprint="f"), durable=False)
    await ledger.record(SubmitIntent(job=j, attempt=1, fingerprint="f", marker=j))
    seq = await ledger.record(Submitted(job=j, taskid=f"task-{i}", tasktoken="tok"))
    print(ledger.state.jobs[j].taskid, seq, flush=True)
    await ledger.record(TaskStatusSeen(job=j, status="task_start"), durable=False)
    await ledger.record(TaskDone(job=j, outputs=(RemoteOutput("v", "u", 1),), cost=0.1))
    await ledger.record(OutputSaved(job=j, name="v", path=j + ".mp4", size=1, sha256="SHA"))
    seq = await ledger.record(JobSucceeded(job=j))
    print(j, seq, flush=True)

async def main():
    ledger = Ledger.open(sys.argv[1], compact_every=40)
    await ledger.record(RunStarted(pid=os.getpid()))
    i = 0
    while True:
        await asyncio.gather(*(job(ledger, i + k) for k in range(8)))
        i += 8

asyncio.run(main())
""".replace("SHA", SHA)


def test_kill_9_loses_nothing_acknowledged(tmp_path: Path) -> None:
    rng = random.Random()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for round_ in range(3):
        directory = tmp_path / f"run{round_}"
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(directory)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
        )  # fmt: skip
        assert proc.stdout is not None
        acknowledged, wanted = [], rng.randint(5, 400)
        while len(acknowledged) < wanted:
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            acknowledged.append(line.split())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        acknowledged += [line.split() for line in proc.stdout.read().splitlines() if line]
        proc.stdout.close()
        assert proc.stderr is not None
        proc.stderr.close()
        for name in (SNAPSHOT_NAME, JOURNAL_NAME):
            if (directory / name).exists():
                assert (directory / name).stat().st_mode & 0o777 == 0o600
        status = read_ledger(directory)  # what `status` shows, before any restore
        ledger = Ledger.open(directory)
        state = ledger.state
        assert dump(status) == dump(state)
        for word, seq in (pair for pair in acknowledged if len(pair) == 2):
            assert int(seq) <= state.seq
            if word.startswith("task-"):
                job = "j" + word.removeprefix("task-")
                assert state.jobs[job].taskid == word  # never pay twice
            else:
                assert state.jobs[word].status is JobStatus.SUCCEEDED
        assert not state.skipped
        ledger.close_sync()
        assert sorted(p.name for p in directory.iterdir()) == [SNAPSHOT_NAME]
        data = validate(directory)
        assert data["runs"] and data["seq"] == state.seq
        assert (directory / SNAPSHOT_NAME).stat().st_mode & 0o777 == 0o600


def test_schema_accepts_a_rich_ledger() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)

        async def fill() -> None:
            ledger = Ledger.open(directory)
            await ledger.record(RunStarted(pid=1))
            await ledger.record(JobRegistered(job="a", fingerprint="f"))
            await ledger.record(SubmitIntent(job="a", attempt=1, fingerprint="f", marker="m"))
            await ledger.record(Submitted(job="a", taskid="t", tasktoken="k"))
            await ledger.record(TaskDone(job="a", outputs=(), cost=0.5))
            await ledger.record(OutputSaved(job="a", name="v", path="a.mp4", size=3, sha256=SHA))
            await ledger.record(JobRegistered(job="a", fingerprint="g"))
            await ledger.close()

        asyncio.run(fill())
        data = validate(directory)
        assert data["jobs"]["a"]["previous"][0]["outputs"][0]["path"] == "a.mp4"


def test_is_locked_sees_a_holder_in_this_process_and_in_another(tmp_path: Path) -> None:
    """The flock probe of ``status`` agrees with filelock, which the run lock uses."""
    from batch_runner.ledger.lock import RunLock, _probe, is_locked

    assert not is_locked(tmp_path)  # no lock file at all
    with RunLock(tmp_path):
        assert is_locked(tmp_path) and _probe(tmp_path / ".lock")
    assert not is_locked(tmp_path) and not _probe(tmp_path / ".lock")  # the file stays
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path;"
         "from batch_runner.ledger.lock import RunLock; l = RunLock(Path(sys.argv[1]));"
         "l.acquire(); print('held', flush=True); time.sleep(60)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert is_locked(tmp_path)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()  # type: ignore[union-attr]
    assert not is_locked(tmp_path), "the kernel lets go of a killed holder's lock"
