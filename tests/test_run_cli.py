"""The run engine through the real CLI, as a subprocess, against the sandbox over loopback."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import jsonschema
import pytest
from clihelp import FAST, MakeBatch, kill, load_ledger

from batch_runner._resources import schemas_dir
from batch_runner.sandbox import FaultConfig, Sandbox, SandboxConfig


def assert_ledger_valid(out_dir: Path) -> dict:
    ledger = load_ledger(out_dir)
    schema = json.loads((schemas_dir() / "ledger.schema.json").read_text("utf-8"))
    jsonschema.Draft202012Validator(schema).validate(ledger)
    assert (out_dir / "ledger.json").stat().st_mode & 0o777 == 0o600
    return ledger


def assert_no_duplicates(sb: Sandbox) -> None:
    stats = sb.stats()
    assert stats["duplicate_tasks"] == 0, stats["tasks_per_input_set"]


async def test_clean_run(batch: MakeBatch) -> None:
    b = await batch(jobs=6)
    done = await b.run()
    assert done.code == 0, done.err
    assert "6 succeeded" in done.out
    ledger = assert_ledger_valid(b.out)
    assert len(ledger["jobs"]) == 6
    assert {r["status"] for r in ledger["jobs"].values()} == {"succeeded"}
    assert b.outputs_match_service() == 6
    assert b.stats()["tasks_created"] == 6
    assert_no_duplicates(b.sb)
    assert not (b.out / "journal.jsonl").exists()
    # A second run does nothing and sends no /Run.
    again = await b.run()
    assert again.code == 0, again.err
    assert b.stats()["tasks_created"] == 6


async def test_resume_after_sigkill_pays_once(batch: MakeBatch) -> None:
    b = await batch(jobs=16, config=SandboxConfig(queue_seconds=0.1, run_seconds=(0.8, 1.5)))
    proc = await b.start("--concurrency", "4")
    await b.wait_journal("submitted", 5, timeout=30)
    kill(proc)
    await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # status restores the picture from the journal without a lock.
    assert (await b.status())["jobs"] == 16
    done = await b.run("--concurrency", "4")
    assert done.code == 0, done.err
    assert_ledger_valid(b.out)
    assert b.stats()["tasks_created"] == 16
    assert_no_duplicates(b.sb)
    assert b.outputs_match_service() == 16


async def test_ambiguous_run_is_reconciled_not_resubmitted(batch: MakeBatch) -> None:
    b = await batch(jobs=4, config=FAST.but(faults=FaultConfig(drop_after_create=1.0)))
    done = await b.run()
    assert done.code == 0, done.err
    assert b.stats()["tasks_created"] == 4
    assert_no_duplicates(b.sb)
    assert "found task" in done.err
    assert b.outputs_match_service() == 4


async def test_dropped_before_create_is_resubmitted(batch: MakeBatch) -> None:
    b = await batch(jobs=6, config=FAST.but(faults=FaultConfig(drop_before_create=0.4), seed=3))
    done = await b.run("--reconcile-delay", "0.2")
    assert done.code == 0, done.err
    assert b.stats()["tasks_created"] == 6
    assert_no_duplicates(b.sb)


async def test_code_96_lowers_concurrency_and_fails_nothing(batch: MakeBatch) -> None:
    b = await batch(jobs=8, config=FAST.but(concurrency_limit=2))
    done = await b.run("--concurrency", "6")
    assert done.code == 0, done.err
    assert b.stats()["max_in_flight"] <= 2
    assert b.stats()["tasks_created"] == 8
    assert "code 96" in done.err


async def test_code_97_stops_with_exit_4_and_resumes(batch: MakeBatch) -> None:
    b = await batch(jobs=6, config=FAST.but(balance_usd=1.0, concurrency_limit=1))
    done = await b.run()
    assert done.code == 4, done.err
    assert "top up" in (done.out + done.err)
    first = b.stats()["tasks_created"]
    assert 0 < first < 6
    b.sb.set_balance(100.0)
    again = await b.run()
    assert again.code == 0, again.err
    assert b.stats()["tasks_created"] == 6
    assert_no_duplicates(b.sb)


async def test_second_run_on_same_folder_exits_3(batch: MakeBatch) -> None:
    b = await batch(jobs=3, config=SandboxConfig(queue_seconds=0.1, run_seconds=(3, 4)))
    first = await b.start()
    await b.wait_journal("submitted", 1)
    started = time.monotonic()
    second = await b.run()
    assert second.code == 3, second.err
    assert time.monotonic() - started < 10
    assert f"process {first.pid}" in second.err
    kill(first, signal.SIGTERM)
    assert await asyncio.wait_for(first.wait(), 20) == 143


async def test_sigint_records_state_and_resume_tracks_by_task_id(batch: MakeBatch) -> None:
    b = await batch(jobs=4, config=SandboxConfig(queue_seconds=0.1, run_seconds=(2, 3)))
    proc = await b.start()
    await b.wait_journal("submitted", 4)
    sent = time.monotonic()
    kill(proc, signal.SIGINT)
    code = await asyncio.wait_for(proc.wait(), 15)
    assert code == 130
    assert time.monotonic() - sent < 5
    ledger = assert_ledger_valid(b.out)
    assert len(ledger["jobs"]) == 4
    assert all(r["taskid"] for r in ledger["jobs"].values())
    done = await b.run()
    assert done.code == 0, done.err
    assert b.stats()["tasks_created"] == 4
    assert_no_duplicates(b.sb)


async def test_edited_job_runs_again_and_keeps_earlier_output(batch: MakeBatch) -> None:
    b = await batch(jobs=3)
    assert (await b.run()).code == 0
    before = (b.out / "job-0001.mp4").read_bytes()
    text = b.manifest.read_text("utf-8").replace("scene number 1:", "scene number one:")
    b.manifest.write_text(text, "utf-8")
    done = await b.run()
    assert done.code == 0, done.err
    assert b.stats()["tasks_created"] == 4
    kept = list(b.out.glob("job-0001.prev-*.mp4"))
    assert len(kept) == 1 and kept[0].read_bytes() == before
    assert (b.out / "job-0001.mp4").read_bytes() != before
    ledger = assert_ledger_valid(b.out)
    assert ledger["jobs"]["job-0001"]["previous"]


async def test_dry_run_sends_nothing(batch: MakeBatch) -> None:
    b = await batch(jobs=5)
    done = await b.run("--dry-run")
    assert done.code == 0, done.err
    assert "would submit:   5 jobs" in done.out
    assert b.stats()["requests_total"] == 0
    assert not (b.out / "ledger.json").exists()
    assert b.sb.api_key not in done.out + done.err


async def test_invalid_manifest_sends_nothing(batch: MakeBatch) -> None:
    b = await batch(jobs=1)
    b.manifest.write_text("jobs:\n  - id: a\n    promt: hi\n    inputImageUrl: https://x/y.jpg\n")
    done = await b.run()
    assert done.code == 2
    assert "prompt" in done.err
    assert b.stats()["requests_total"] == 0
    assert not b.out.exists()


async def test_rejected_credentials_exit_2(batch: MakeBatch) -> None:
    b = await batch(jobs=2, env={"WIRO_API_SECRET": "not-the-secret"})
    done = await b.run()
    assert done.code == 2, done.err
    assert "credentials" in done.err
    assert "not-the-secret" not in done.err + done.out
    assert b.stats()["tasks_created"] == 0


async def test_failed_generation_exit_1_and_retry_failed(batch: MakeBatch) -> None:
    b = await batch(jobs=3, config=FAST.but(faults=FaultConfig(generation_failure=1.0)))
    done = await b.run()
    assert done.code == 1, done.err
    assert "generation failed" in done.out
    ledger = assert_ledger_valid(b.out)
    assert len(ledger["jobs"]) == 3
    assert all(r["status"] == "failed" and r["error"] for r in ledger["jobs"].values())
    b.sb.set_faults(FaultConfig())
    skipped = await b.run()
    assert skipped.code == 1
    assert b.stats()["tasks_created"] == 3
    retried = await b.run("--retry-failed")
    assert retried.code == 0, retried.err
    assert b.stats()["tasks_created"] == 6


@pytest.mark.parametrize("attempts", [2])
async def test_max_attempts_resubmits_failed_tasks(batch: MakeBatch, attempts: int) -> None:
    b = await batch(jobs=6, config=FAST.but(faults=FaultConfig(task_error=0.5), seed=11))
    done = await b.run("--max-attempts", str(attempts))
    assert done.code in (0, 1), done.err
    ledger = assert_ledger_valid(b.out)
    assert len(ledger["jobs"]) == 6
    for rec in ledger["jobs"].values():
        assert rec["attempts"] <= attempts
        assert len(rec["history"]) == rec["attempts"] - 1
    assert b.stats()["tasks_created"] > 6


async def test_damaged_output_is_fetched_again_not_resubmitted(batch: MakeBatch) -> None:
    b = await batch(jobs=3)
    assert (await b.run()).code == 0
    (b.out / "job-0000.mp4").write_bytes(b"not a video any more")
    (b.out / "job-0002.mp4").unlink()
    done = await b.run()
    assert done.code == 0, done.err
    assert "fetching it again" in done.err
    assert b.stats()["tasks_created"] == 3
    assert b.outputs_match_service() == 3


async def test_output_no_longer_served_resubmits_the_job(batch: MakeBatch) -> None:
    b = await batch(jobs=2)
    assert (await b.run()).code == 0
    (b.out / "job-0001.mp4").unlink()
    ledger = b.ledger()
    remote = ledger["jobs"]["job-0001"]["remote_outputs"][0]
    remote["url"] = remote["url"].rsplit("/cdn/", 1)[0] + "/cdn/expired/0.mp4"
    (b.out / "ledger.json").write_text(json.dumps(ledger), "utf-8")
    done = await b.run()
    assert done.code == 0, done.err
    assert "no longer serves" in done.err
    assert b.stats()["tasks_created"] == 3
    ledger = assert_ledger_valid(b.out)
    assert len(ledger["jobs"]["job-0001"]["history"]) == 1
    assert b.outputs_match_service() == 2
