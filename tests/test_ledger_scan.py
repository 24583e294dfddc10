"""Reading ``ledger.json`` a record at a time gives exactly what parsing it whole gives.

:func:`iter_snapshot` cuts a snapshot as :func:`encode_snapshot` writes it into its records
(no parsed copy of all of them at once); anything else is parsed whole. These tests compare
the two on generated ledgers, on awkward job ids, on other layouts and on the ledger of an
earlier version (``tests/data/legacy-demo``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_state import ledger_events

from batch_runner.errors import LedgerError
from batch_runner.ledger.codec import (
    decode_snapshot,
    encode_snapshot,
    encode_snapshot_chunks,
    iter_snapshot,
)
from batch_runner.ledger.events import Event, JobRegistered
from batch_runner.ledger.state import LedgerState, TransitionError, apply_event
from batch_runner.ledger.store import snapshot_payload

LEGACY = Path(__file__).resolve().parent / "data" / "legacy-demo" / "ledger.json"


def both_ways(data: bytes) -> tuple[Any, Any]:
    """(head, records) read record by record, and parsed whole."""
    head, records = iter_snapshot(data)
    cut = (head, list(records))
    head, records = iter_snapshot(data, whole=True)
    return cut, (head, list(records))


def state_of(events: list[Event]) -> LedgerState:
    state = LedgerState()
    for event in events:
        try:
            apply_event(state, event)
        except TransitionError:
            continue
        state.seq += 1
    return state


@settings(max_examples=200, deadline=None)
@given(st.lists(ledger_events, max_size=60))
def test_records_read_one_by_one_equal_the_whole_file(events: list[Event]) -> None:
    data = encode_snapshot(snapshot_payload(state_of(events)))
    cut, whole = both_ways(data)
    assert cut == whole
    assert [k for k, _ in cut[1]] == list(orjson.loads(data)["jobs"])


def one_dump(payload: dict[str, Any]) -> bytes:
    """The snapshot as one ``orjson.dumps`` of plain values (every record unpacked)."""
    return orjson.dumps({**payload, "jobs": dict(payload["jobs"])})


@settings(max_examples=100, deadline=None)
@given(st.lists(ledger_events, max_size=60))
def test_snapshots_written_in_chunks_are_the_bytes_of_one_dump(events: list[Event]) -> None:
    payload = snapshot_payload(state_of(events))
    assert encode_snapshot(payload) == one_dump(payload)


@pytest.mark.parametrize("jobs", [0, 1, 1023, 1024, 1025, 2049])
def test_chunk_edges_give_the_same_bytes(jobs: int) -> None:
    """Around the chunk size: no record lost or doubled, commas exactly between records."""
    state = state_of([JobRegistered(t=1.0, job=f"j{i}", fingerprint="f") for i in range(jobs)])
    payload = snapshot_payload(state)
    chunks = list(encode_snapshot_chunks(payload))
    assert b"".join(chunks) == one_dump(payload)
    assert len(chunks) == 2 + -(-jobs // 1024)
    assert decode_snapshot(b"".join(chunks)).jobs == state.jobs


@pytest.mark.parametrize(
    "job_id",
    ['a,"', 'x},"y', ':{"job_id":', "}}", 'a":{"b', "日本", "\\", "a\nb", ""],
)
def test_awkward_ids_are_read_the_same(job_id: str) -> None:
    state = state_of(
        [JobRegistered(job=j, fingerprint="f", t=1) for j in ("first", job_id, "last")]
    )
    data = encode_snapshot(snapshot_payload(state))
    cut, whole = both_ways(data)
    assert cut == whole and [k for k, _ in cut[1]] == ["first", job_id, "last"]
    assert list(decode_snapshot(data).jobs) == ["first", job_id, "last"]


def test_other_layouts_are_parsed_whole() -> None:
    state = state_of([JobRegistered(job=f"j{i}", fingerprint="f", t=1) for i in range(3)])
    plain = orjson.loads(encode_snapshot(snapshot_payload(state)))
    pretty = json.dumps(plain, indent=2).encode()
    reordered = json.dumps({"jobs": plain["jobs"], **{k: v for k, v in plain.items()
                                                     if k != "jobs"}}).encode()  # fmt: skip
    for data in (pretty, reordered, json.dumps(plain).encode()):
        cut, whole = both_ways(data)
        assert cut == whole
        assert list(decode_snapshot(data).jobs) == ["j0", "j1", "j2"]


def test_empty_and_broken_ledgers() -> None:
    empty = encode_snapshot(snapshot_payload(LedgerState()))
    assert decode_snapshot(empty).jobs == {}
    state = state_of([JobRegistered(job="a", fingerprint="f", t=1)])
    good = encode_snapshot(snapshot_payload(state))
    for bad in (good[:-5], good.replace(b'"status"', b'"status', 1), b"[]", b""):
        with pytest.raises(LedgerError):
            decode_snapshot(bad)
    with pytest.raises(LedgerError, match="version"):
        decode_snapshot(good.replace(b'"version":1', b'"version":2'))


def test_the_ledger_of_an_earlier_version_reads_the_same() -> None:
    data = LEGACY.read_bytes()
    cut, whole = both_ways(data)
    assert cut == whole and len(cut[1]) == 5
    state = decode_snapshot(data)
    assert {r.status.value for r in state.jobs.values()} == {"succeeded"}


def test_repeated_values_are_shared_between_records() -> None:
    events: list[Event] = [
        JobRegistered(job=f"j{i}", fingerprint="f", t=1, model="Owner/model") for i in range(3)
    ]
    data = encode_snapshot(snapshot_payload(state_of(events)))
    models = {id(r.model) for r in decode_snapshot(data).jobs.values()}
    assert len(models) == 1
