"""The run engine through the real CLI, as a subprocess, against the sandbox over loopback."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import jsonschema
import pytest
from clihelp import (
    check_outputs_match_service,
    cli_env,
    journal_events,
    kill,
    load_ledger,
    run_cli,
    start_cli,
    wait_until,
    write_manifest,
)

from batch_runner._resources import schemas_dir
from batch_runner.sandbox import FaultConfig, Sandbox, SandboxConfig

FAST = SandboxConfig(queue_seconds=0.05, run_seconds=(0.1, 0.3))


def assert_ledger_valid(out_dir: Path) -> dict:
    ledger = load_ledger(out_dir)
    schema = json.loads((schemas_dir() / "ledger.schema.json").read_text("utf-8"))
    jsonschema.Draft202012Validator(schema).validate(ledger)
    assert (out_dir / "ledger.json").stat().st_mode & 0o777 == 0o600
    return ledger


def assert_no_duplicates(sb: Sandbox) -> None:
    stats = sb.stats()
    assert stats["duplicate_tasks"] == 0, stats["tasks_per_input_set"]


async def test_clean_run(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 6)
    out = tmp_path / "out"
    async with Sandbox(FAST) as sb:
        done = await run_cli("run", str(manifest), "--out", str(out), env=cli_env(sb))
        assert done.code == 0, done.err
        assert "6 succeeded" in done.out
        ledger = assert_ledger_valid(out)
        assert {r["status"] for r in ledger["jobs"].values()} == {"succeeded"}
        assert check_outputs_match_service(out, sb) == 6
        assert sb.stats()["tasks_created"] == 6
        assert_no_duplicates(sb)
        assert not (out / "journal.jsonl").exists()
        # A second run does nothing and sends no /Run.
        again = await run_cli("run", str(manifest), "--out", str(out), env=cli_env(sb))
        assert again.code == 0, again.err
        assert sb.stats()["tasks_created"] == 6


async def test_resume_after_sigkill_pays_once(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 16)
    out = tmp_path / "out"
    config = SandboxConfig(queue_seconds=0.1, run_seconds=(0.8, 1.5))
    async with Sandbox(config) as sb:
        env = cli_env(sb)
        proc = await start_cli(
            "run", str(manifest), "--out", str(out), "--concurrency", "4", env=env
        )
        await wait_until(lambda: journal_events(out, "submitted") >= 5, timeout=30)
        kill(proc)
        await proc.wait()
        assert proc.returncode == -signal.SIGKILL
        # status restores the picture from the journal without a lock.
        status = await run_cli("status", str(out), "--json", env=env)
        assert status.code == 0, status.err
        assert json.loads(status.out)["jobs"] == 16
        done = await run_cli("run", str(manifest), "--out", str(out), "--concurrency", "4", env=env)
        assert done.code == 0, done.err
        assert_ledger_valid(out)
        assert sb.stats()["tasks_created"] == 16
        assert_no_duplicates(sb)
        assert check_outputs_match_service(out, sb) == 16


async def test_ambiguous_run_is_reconciled_not_resubmitted(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 4)
    out = tmp_path / "out"
    config = FAST.but(faults=FaultConfig(drop_after_create=1.0))
    async with Sandbox(config) as sb:
        done = await run_cli("run", str(manifest), "--out", str(out), env=cli_env(sb))
        assert done.code == 0, done.err
        assert sb.stats()["tasks_created"] == 4
        assert_no_duplicates(sb)
        assert "found task" in done.err
        assert check_outputs_match_service(out, sb) == 4


async def test_dropped_before_create_is_resubmitted(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 6)
    out = tmp_path / "out"
    config = FAST.but(faults=FaultConfig(drop_before_create=0.4), seed=3)
    async with Sandbox(config) as sb:
        done = await run_cli(
            "run", str(manifest), "--out", str(out), "--reconcile-delay", "0.2", env=cli_env(sb)
        )
        assert done.code == 0, done.err
        assert sb.stats()["tasks_created"] == 6
        assert_no_duplicates(sb)


async def test_code_96_lowers_concurrency_and_fails_nothing(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 8)
    out = tmp_path / "out"
    async with Sandbox(FAST.but(concurrency_limit=2)) as sb:
        done = await run_cli(
            "run", str(manifest), "--out", str(out), "--concurrency", "6", env=cli_env(sb)
        )
        assert done.code == 0, done.err
        assert sb.stats()["max_in_flight"] <= 2
        assert sb.stats()["tasks_created"] == 8
        assert "code 96" in done.err


async def test_code_97_stops_with_exit_4_and_resumes(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 6)
    out = tmp_path / "out"
    async with Sandbox(FAST.but(balance_usd=1.0, concurrency_limit=1)) as sb:
        env = cli_env(sb)
        done = await run_cli("run", str(manifest), "--out", str(out), env=env)
        assert done.code == 4, done.err
        assert "top up" in (done.out + done.err)
        first = sb.stats()["tasks_created"]
        assert 0 < first < 6
        sb.set_balance(100.0)
        again = await run_cli("run", str(manifest), "--out", str(out), env=env)
        assert again.code == 0, again.err
        assert sb.stats()["tasks_created"] == 6
        assert_no_duplicates(sb)


async def test_second_run_on_same_folder_exits_3(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 3)
    out = tmp_path / "out"
    async with Sandbox(SandboxConfig(queue_seconds=0.1, run_seconds=(3, 4))) as sb:
        env = cli_env(sb)
        first = await start_cli("run", str(manifest), "--out", str(out), env=env)
        await wait_until(lambda: journal_events(out, "submitted") >= 1, timeout=20)
        started = time.monotonic()
        second = await run_cli("run", str(manifest), "--out", str(out), env=env)
        assert second.code == 3, second.err
        assert time.monotonic() - started < 10
        assert f"process {first.pid}" in second.err
        kill(first, signal.SIGTERM)
        assert await asyncio.wait_for(first.wait(), 20) == 143


async def test_sigint_records_state_and_resume_tracks_by_task_id(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 4)
    out = tmp_path / "out"
    async with Sandbox(SandboxConfig(queue_seconds=0.1, run_seconds=(2, 3))) as sb:
        env = cli_env(sb)
        proc = await start_cli("run", str(manifest), "--out", str(out), env=env)
        await wait_until(lambda: journal_events(out, "submitted") >= 4, timeout=20)
        sent = time.monotonic()
        kill(proc, signal.SIGINT)
        code = await asyncio.wait_for(proc.wait(), 15)
        assert code == 130
        assert time.monotonic() - sent < 5
        ledger = assert_ledger_valid(out)
        assert all(r["taskid"] for r in ledger["jobs"].values())
        done = await run_cli("run", str(manifest), "--out", str(out), env=env)
        assert done.code == 0, done.err
        assert sb.stats()["tasks_created"] == 4
        assert_no_duplicates(sb)


async def test_edited_job_runs_again_and_keeps_earlier_output(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 3)
    out = tmp_path / "out"
    async with Sandbox(FAST) as sb:
        env = cli_env(sb)
        assert (await run_cli("run", str(manifest), "--out", str(out), env=env)).code == 0
        before = (out / "job-0001.mp4").read_bytes()
        text = manifest.read_text("utf-8").replace("scene number 1:", "scene number one:")
        manifest.write_text(text, "utf-8")
        done = await run_cli("run", str(manifest), "--out", str(out), env=env)
        assert done.code == 0, done.err
        assert sb.stats()["tasks_created"] == 4
        kept = list(out.glob("job-0001.prev-*.mp4"))
        assert len(kept) == 1 and kept[0].read_bytes() == before
        assert (out / "job-0001.mp4").read_bytes() != before
        ledger = assert_ledger_valid(out)
        assert ledger["jobs"]["job-0001"]["previous"]


async def test_dry_run_sends_nothing(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 5)
    out = tmp_path / "out"
    async with Sandbox(FAST) as sb:
        done = await run_cli("run", str(manifest), "--out", str(out), "--dry-run", env=cli_env(sb))
        assert done.code == 0, done.err
        assert "would submit:   5 jobs" in done.out
        assert sb.stats()["requests_total"] == 0
        assert not (out / "ledger.json").exists()
        assert sb.api_key not in done.out + done.err


async def test_invalid_manifest_sends_nothing(tmp_path: Path) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text("jobs:\n  - id: a\n    promt: hi\n    inputImageUrl: https://x/y.jpg\n")
    async with Sandbox(FAST) as sb:
        done = await run_cli("run", str(manifest), "--out", str(tmp_path / "o"), env=cli_env(sb))
        assert done.code == 2
        assert "prompt" in done.err
        assert sb.stats()["requests_total"] == 0


async def test_rejected_credentials_exit_2(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 2)
    async with Sandbox(FAST) as sb:
        env = cli_env(sb, WIRO_API_SECRET="not-the-secret")
        done = await run_cli("run", str(manifest), "--out", str(tmp_path / "o"), env=env)
        assert done.code == 2, done.err
        assert "credentials" in done.err
        assert "not-the-secret" not in done.err + done.out
        assert sb.stats()["tasks_created"] == 0


async def test_failed_generation_exit_1_and_retry_failed(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 3)
    out = tmp_path / "out"
    async with Sandbox(FAST.but(faults=FaultConfig(generation_failure=1.0))) as sb:
        env = cli_env(sb)
        done = await run_cli("run", str(manifest), "--out", str(out), env=env)
        assert done.code == 1, done.err
        assert "generation failed" in done.out
        ledger = assert_ledger_valid(out)
        assert all(r["status"] == "failed" and r["error"] for r in ledger["jobs"].values())
        sb.set_faults(FaultConfig())
        skipped = await run_cli("run", str(manifest), "--out", str(out), env=env)
        assert skipped.code == 1
        assert sb.stats()["tasks_created"] == 3
        retried = await run_cli("run", str(manifest), "--out", str(out), "--retry-failed", env=env)
        assert retried.code == 0, retried.err
        assert sb.stats()["tasks_created"] == 6


@pytest.mark.parametrize("attempts", [2])
async def test_max_attempts_resubmits_failed_tasks(tmp_path: Path, attempts: int) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 6)
    out = tmp_path / "out"
    config = FAST.but(faults=FaultConfig(task_error=0.5), seed=11)
    async with Sandbox(config) as sb:
        done = await run_cli(
            "run",
            str(manifest),
            "--out",
            str(out),
            "--max-attempts",
            str(attempts),
            env=cli_env(sb),
        )
        assert done.code in (0, 1), done.err
        ledger = assert_ledger_valid(out)
        for rec in ledger["jobs"].values():
            assert rec["attempts"] <= attempts
            assert len(rec["history"]) == rec["attempts"] - 1
        assert sb.stats()["tasks_created"] > 6


async def test_damaged_output_is_fetched_again_not_resubmitted(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 3)
    out = tmp_path / "out"
    async with Sandbox(FAST) as sb:
        env = cli_env(sb)
        assert (await run_cli("run", str(manifest), "--out", str(out), env=env)).code == 0
        (out / "job-0000.mp4").write_bytes(b"not a video any more")
        (out / "job-0002.mp4").unlink()
        done = await run_cli("run", str(manifest), "--out", str(out), env=env)
        assert done.code == 0, done.err
        assert "fetching it again" in done.err
        assert sb.stats()["tasks_created"] == 3
        assert check_outputs_match_service(out, sb) == 3


async def test_output_no_longer_served_resubmits_the_job(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 2)
    out = tmp_path / "out"
    async with Sandbox(FAST) as sb:
        env = cli_env(sb)
        assert (await run_cli("run", str(manifest), "--out", str(out), env=env)).code == 0
        (out / "job-0001.mp4").unlink()
        ledger = load_ledger(out)
        remote = ledger["jobs"]["job-0001"]["remote_outputs"][0]
        remote["url"] = remote["url"].rsplit("/cdn/", 1)[0] + "/cdn/expired/0.mp4"
        (out / "ledger.json").write_text(json.dumps(ledger), "utf-8")
        done = await run_cli("run", str(manifest), "--out", str(out), env=env)
        assert done.code == 0, done.err
        assert "no longer serves" in done.err
        assert sb.stats()["tasks_created"] == 3
        ledger = assert_ledger_valid(out)
        assert len(ledger["jobs"]["job-0001"]["history"]) == 1
        assert check_outputs_match_service(out, sb) == 2
