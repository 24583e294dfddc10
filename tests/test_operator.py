"""Operator features through the real CLI: cost cap, deadline, webhook, log formats, cancel."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

from aiohttp import web
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

from batch_runner.sandbox import Sandbox, SandboxConfig

FAST = SandboxConfig(queue_seconds=0.05, run_seconds=(0.1, 0.3))
SLOW = SandboxConfig(queue_seconds=0.1, run_seconds=(20, 25))


async def test_max_cost_stops_before_passing_the_cap(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 6)  # 540p 5 s: $0.45 each
    out = tmp_path / "out"
    async with Sandbox(FAST) as sb:
        env = cli_env(sb)
        done = await run_cli("run", str(manifest), "--out", str(out), "--max-cost", "1.0", env=env)
        assert done.code == 4, done.err
        assert "--max-cost" in done.out
        assert sb.stats()["tasks_created"] == 2
        assert sb.stats()["money_charged_usd"] <= 1.0
        dry = await run_cli("run", str(manifest), "--out", str(out), "--dry-run", env=env)
        assert "would submit:   4 jobs (estimated $1.80)" in dry.out


async def test_deadline_stops_and_keeps_task_ids(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 3)
    out = tmp_path / "out"
    async with Sandbox(SLOW) as sb:
        env = cli_env(sb)
        started = time.monotonic()
        done = await run_cli("run", str(manifest), "--out", str(out), "--deadline", "2s", env=env)
        assert done.code == 4, done.err
        assert time.monotonic() - started < 15
        assert "deadline" in done.out
        ledger = load_ledger(out)
        assert all(r["taskid"] for r in ledger["jobs"].values())
        # The next run tracks them by id; cancel stops them on the service instead.
        cancelled = await run_cli("cancel", str(out), env=env)
        assert cancelled.code == 0, cancelled.err
        assert "cancelled 3 tasks" in cancelled.out
        assert {t["status"] for t in sb.task_records()} == {"task_cancel"}
        statuses = {r["status"] for r in load_ledger(out)["jobs"].values()}
        assert statuses == {"cancelled"}
        assert sb.stats()["tasks_created"] == 3


async def test_notify_url_receives_summary(tmp_path: Path) -> None:
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        manifest = write_manifest(tmp_path / "m.yaml", 2)
        async with Sandbox(FAST) as sb:
            url = f"http://127.0.0.1:{port}/hook?token=abc"
            done = await run_cli(
                "run", str(manifest), "--out", str(tmp_path / "o"), "--notify-url", url,
                env=cli_env(sb),
            )  # fmt: skip
            assert done.code == 0, done.err
    finally:
        await runner.cleanup()
    assert len(received) == 1
    body = received[0]
    assert body["exit_code"] == 0 and body["counts"] == {"succeeded": 2}
    assert sb.api_key not in json.dumps(body)


async def test_json_logs_and_quiet_mode(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 3)
    async with Sandbox(FAST) as sb:
        env = cli_env(sb)
        done = await run_cli(
            "run", str(manifest), "--out", str(tmp_path / "a"), "--log-format", "json", env=env
        )
        assert done.code == 0
        events = [json.loads(line) for line in done.err.splitlines() if line.strip()]
        assert {"run_started", "submitted", "succeeded"} <= {e["event"] for e in events}
        assert all("ts" in e and "level" in e for e in events)
        quiet = await run_cli("run", str(manifest), "--out", str(tmp_path / "b"), "-q", env=env)
        assert quiet.code == 0
        assert quiet.err == ""
        assert "3 succeeded" in quiet.out


async def test_status_while_running_and_after_kill(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 4)
    out = tmp_path / "out"
    async with Sandbox(SLOW) as sb:
        env = cli_env(sb)
        proc = await start_cli("run", str(manifest), "--out", str(out), env=env)
        await wait_until(lambda: journal_events(out, "submitted") >= 4, timeout=20)
        live = json.loads((await run_cli("status", str(out), "--json", env=env)).out)
        assert live["active"] is True and live["active_pid"] == proc.pid
        table = await run_cli("status", str(out), env=env)
        assert "a run is active now" in table.out
        kill(proc, signal.SIGKILL)
        await proc.wait()
        after = json.loads((await run_cli("status", str(out), "--json", env=env)).out)
        assert after["active"] is False
        assert after["counts"]["queued"] + after["counts"]["running"] == 4
