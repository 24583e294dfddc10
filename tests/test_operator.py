"""Operator features through the real CLI: cost cap, deadline, webhook, log formats, cancel."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from clihelp import MakeBatch, kill

from batch_runner.sandbox import SandboxConfig

SLOW = SandboxConfig(queue_seconds=0.1, run_seconds=(20, 25))


async def test_max_cost_stops_before_passing_the_cap(batch: MakeBatch) -> None:
    b = await batch(jobs=6)  # 540p 5 s: $0.45 each
    done = await b.run("--max-cost", "1.0")
    assert done.code == 4, done.err
    assert "--max-cost" in done.out
    assert b.stats()["tasks_created"] == 2
    assert b.stats()["money_charged_usd"] <= 1.0
    dry = await b.run("--dry-run")
    assert "would submit:   4 jobs (estimated $1.80)" in dry.out


async def test_deadline_stops_and_keeps_task_ids(batch: MakeBatch) -> None:
    b = await batch(jobs=3, config=SLOW)
    started = time.monotonic()
    done = await b.run("--deadline", "2s")
    assert done.code == 4, done.err
    assert time.monotonic() - started < 15
    assert "deadline" in done.out
    ledger = b.ledger()
    assert len(ledger["jobs"]) == 3
    assert all(r["taskid"] for r in ledger["jobs"].values())
    # The next run tracks them by id; cancel stops them on the service instead.
    cancelled = await b.cli("cancel", str(b.out))
    assert cancelled.code == 0, cancelled.err
    assert "cancelled 3 tasks" in cancelled.out
    assert {t["status"] for t in b.sb.task_records()} == {"task_cancel"}
    statuses = {r["status"] for r in b.ledger()["jobs"].values()}
    assert statuses == {"cancelled"}
    assert b.stats()["tasks_created"] == 3


async def test_notify_url_receives_summary(batch: MakeBatch) -> None:
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
        b = await batch(jobs=2)
        done = await b.run("--notify-url", f"http://127.0.0.1:{port}/hook?token=abc")
        assert done.code == 0, done.err
    finally:
        await runner.cleanup()
    assert len(received) == 1
    body = received[0]
    assert body["exit_code"] == 0 and body["counts"] == {"succeeded": 2}
    assert b.sb.api_key not in json.dumps(body)


async def test_json_logs_and_quiet_mode(batch: MakeBatch, tmp_path: Path) -> None:
    b = await batch(jobs=3)
    done = await b.run("--log-format", "json")
    assert done.code == 0
    events = [json.loads(line) for line in done.err.splitlines() if line.strip()]
    assert {"run_started", "submitted", "succeeded"} <= {e["event"] for e in events}
    assert all("ts" in e and "level" in e for e in events)
    quiet = await b.run("-q", out=tmp_path / "quiet")
    assert quiet.code == 0
    assert quiet.err == ""
    assert "3 succeeded" in quiet.out


async def test_status_while_running_and_after_kill(batch: MakeBatch) -> None:
    b = await batch(jobs=4, config=SLOW)
    proc = await b.start()
    await b.wait_journal("submitted", 4)
    live = await b.status()
    assert live["active"] is True and live["active_pid"] == proc.pid
    table = await b.cli("status", str(b.out))
    assert "a run is active now" in table.out
    kill(proc, signal.SIGKILL)
    await proc.wait()
    after = await b.status()
    assert after["active"] is False
    assert after["counts"]["queued"] + after["counts"]["running"] == 4
