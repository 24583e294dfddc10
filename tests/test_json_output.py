"""``--log-format json``: stderr carries only JSON lines ending with ``run_ended`` and the
whole summary, stdout that summary as one object; ``status --json`` follows its schema."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import jsonschema
from clihelp import (
    cli_env,
    journal_events,
    kill,
    load_ledger,
    run_cli,
    start_cli,
    wait_until,
    write_manifest,
)
from clihelp import finish as finish_cli
from referencing import Registry, Resource

from batch_runner._resources import schemas_dir
from batch_runner.sandbox import FaultConfig, Sandbox, SandboxConfig

FAST = SandboxConfig(queue_seconds=0.05, run_seconds=(0.1, 0.3))
SLOW = SandboxConfig(queue_seconds=0.1, run_seconds=(20, 25))


def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((schemas_dir() / name).read_text("utf-8"))
    return loaded


def validator(name: str) -> jsonschema.Draft202012Validator:
    registry: Registry = Registry()
    for other in ("summary.schema.json", "events.schema.json", "status.schema.json"):
        registry = registry.with_resource(
            f"https://github.com/batch-runner/batch-runner/schemas/{other}",
            Resource.from_contents(schema(other)),
        )
    return jsonschema.Draft202012Validator(schema(name), registry=registry)


def json_lines(err: str) -> list[dict[str, Any]]:
    """Every stderr line, each required to be one JSON object valid for the events schema."""
    events = validator("events.schema.json")
    lines = []
    for line in err.splitlines():
        obj = json.loads(line)  # raises on any line that is not JSON
        events.validate(obj)
        lines.append(obj)
    return lines


def summary_of(done: Any) -> dict[str, Any]:
    """stdout is one JSON object, the summary, equal to the last stderr line's."""
    assert done.out.count("\n") == 1, done.out
    summary: dict[str, Any] = json.loads(done.out)
    validator("summary.schema.json").validate(summary)
    last = json_lines(done.err)[-1]
    assert last["event"] == "run_ended" and last["summary"] == summary
    assert summary["exit_code"] == done.code
    return summary


async def test_json_run_with_failures_summary_matches_the_ledger(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 8)
    out = tmp_path / "out"
    config = FAST.but(faults=FaultConfig(generation_failure=0.4), seed=5)
    async with Sandbox(config) as sb:
        done = await run_cli(
            "run", str(manifest), "--out", str(out), "--log-format", "json", env=cli_env(sb)
        )
    assert done.code == 1, done.err
    summary = summary_of(done)
    ledger = load_ledger(out)
    statuses = [r["status"] for r in ledger["jobs"].values()]
    assert summary["outcome"] == "some_failed"
    assert summary["counts"]["failed"] == statuses.count("failed") > 0
    assert summary["counts"]["succeeded"] == statuses.count("succeeded") > 0
    assert summary["total"] == 8 and summary["submitted"] == 8
    assert summary["failures_total"] == statuses.count("failed")
    assert {f["job"] for f in summary["failures"]} == {
        j for j, r in ledger["jobs"].items() if r["status"] == "failed"
    }
    spent = sum(r["cost"] or 0 for r in ledger["jobs"].values())
    assert abs(summary["spent_usd"] - spent) < 1e-6
    assert summary["wall_seconds"] > 0 and summary["ended_at"] >= summary["started_at"]
    assert summary["gallery"] == str(out / "index.html")
    assert summary["error"] is None and summary["published"] is None
    kinds = [e["event"] for e in json_lines(done.err)]
    assert kinds[-1] == "run_ended" and kinds.count("run_ended") == 1
    assert {"run_started", "submitted", "succeeded", "failed"} <= set(kinds)


async def test_json_errors_before_the_run_are_json_too(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: PixVerse/image-to-video-v5\njobs:\n  - promt: typo\n", "utf-8")
    async with Sandbox(FAST) as sb:
        env = cli_env(sb)
        invalid = await run_cli("run", str(bad), "--log-format", "json", env=env)
        assert invalid.code == 2
        summary = summary_of(invalid)
        assert summary["outcome"] == "fix_needed"
        assert summary["error"]["type"] == "ManifestError" and summary["error"]["issues"]
        assert json_lines(invalid.err)[0]["event"] == "error"

    # Another run holds the folder: exit 3, said in JSON.
    manifest = write_manifest(tmp_path / "m.yaml", 2)
    out = tmp_path / "out"
    async with Sandbox(SLOW) as sb:
        env = cli_env(sb)
        holder = await start_cli("run", str(manifest), "--out", str(out), env=env)
        try:
            await wait_until(lambda: journal_events(out, "submitted") >= 1, timeout=30)
            locked = await run_cli(
                "run", str(manifest), "--out", str(out), "--log-format", "json", env=env
            )
        finally:
            kill(holder)
            await holder.wait()
    assert locked.code == 3
    assert summary_of(locked)["outcome"] == "locked"


async def test_json_interrupted_run_stays_json(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 3)
    out = tmp_path / "out"
    async with Sandbox(SLOW) as sb:
        proc = await start_cli(
            "run", str(manifest), "--out", str(out), "--log-format", "json", env=cli_env(sb)
        )
        await wait_until(lambda: journal_events(out, "submitted") >= 3, timeout=30)
        kill(proc, signal.SIGINT)
        done = await finish_cli(proc)
    assert done.code == 130
    summary = summary_of(done)
    assert summary["interrupted"] is True and summary["outcome"] == "interrupted"
    kinds = [e["event"] for e in json_lines(done.err)]
    assert "stopping" in kinds and "interrupted" in kinds


async def test_status_json_follows_its_schema_plain_and_sharded(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 4)
    status_schema = validator("status.schema.json")
    async with Sandbox(FAST) as sb:
        env = cli_env(sb)
        plain, sharded = tmp_path / "plain", tmp_path / "sharded"
        assert (await run_cli("run", str(manifest), "--out", str(plain), env=env)).code == 0
        for shard in ("0/2", "1/2"):
            run = await run_cli(
                "run", str(manifest), "--out", str(sharded), "--shard", shard, env=env
            )
            assert run.code == 0, run.err
        for folder in (plain, sharded):
            done = await run_cli("status", str(folder), "--json", env=env)
            assert done.code == 0, done.err
            data = json.loads(done.out)
            status_schema.validate(data)
            assert data["jobs"] == 4 and data["publish"] is None
    assert data["sharded"] is True and len(data["shards"]) == 2
