"""Notifications through apprise (``--notify``), to a real HTTP server in the test through
apprise's ``json://``: the message, a failing service that changes nothing, tokens never
printed, and the older ``--notify-url`` beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp import web
from clihelp import cli_env, run_cli, write_manifest

from batch_runner.sandbox import FaultConfig, Sandbox, SandboxConfig

FAST = SandboxConfig(queue_seconds=0.05, run_seconds=(0.1, 0.3))
TOKEN = "T0KEN-9f8e7d6c5b4a"


async def hooks() -> tuple[web.AppRunner, int, list[dict[str, Any]]]:
    received: list[dict[str, Any]] = []

    async def ok(request: web.Request) -> web.Response:
        received.append({"path": request.path, "body": await request.json()})
        return web.Response(text="ok")

    async def broken(request: web.Request) -> web.Response:
        received.append({"path": request.path, "body": await request.json()})
        return web.Response(status=500, text="down")

    app = web.Application()
    app.router.add_post("/ok/{token}", ok)
    app.router.add_post("/broken/{token}", broken)
    app.router.add_post("/webhook", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1], received


async def test_notify_sends_a_message_and_a_failure_changes_nothing(tmp_path: Path) -> None:
    runner, port, received = await hooks()
    manifest = write_manifest(tmp_path / "m.yaml", 4)
    out = tmp_path / "out"
    try:
        async with Sandbox(FAST.but(faults=FaultConfig(generation_failure=0.5), seed=2)) as sb:
            done = await run_cli(
                "run", str(manifest), "--out", str(out),
                "--notify", f"json://127.0.0.1:{port}/ok/{TOKEN}",
                "--notify", f"json://127.0.0.1:{port}/broken/{TOKEN}",
                "--notify-url", f"http://127.0.0.1:{port}/webhook?token={TOKEN}",
                env=cli_env(sb),
            )  # fmt: skip
    finally:
        await runner.cleanup()
    assert done.code == 1, done.err  # some generations failed: the run's own outcome
    paths = [r["path"] for r in received]
    assert paths.count(f"/ok/{TOKEN}") == 1 and paths.count("/webhook") == 1
    assert paths.count(f"/broken/{TOKEN}") >= 1
    message = next(r["body"] for r in received if r["path"].startswith("/ok/"))
    assert message["type"] == "failure"
    assert "batch-runner" in message["title"] and "some failed" in message["title"]
    assert "4 jobs:" in message["message"] and "failed or cancelled:" in message["message"]
    assert f"outputs: {out}" in message["message"]
    assert "spent $" in message["message"]
    assert "warning: notification #2 json failed" in done.err
    assert TOKEN not in done.out + done.err
    webhook = next(r["body"] for r in received if r["path"] == "/webhook")
    assert webhook["exit_code"] == 1  # --notify-url keeps its JSON body


async def test_notify_outcomes_are_in_the_json_summary(tmp_path: Path) -> None:
    runner, port, received = await hooks()
    manifest = write_manifest(tmp_path / "m.yaml", 2)
    try:
        async with Sandbox(FAST) as sb:
            done = await run_cli(
                "run", str(manifest), "--out", str(tmp_path / "o"), "--log-format", "json",
                "--notify", f"json://127.0.0.1:{port}/ok/{TOKEN}",
                "--notify", f"json://127.0.0.1:{port}/broken/{TOKEN}",
                env=cli_env(sb),
            )  # fmt: skip
    finally:
        await runner.cleanup()
    assert done.code == 0
    summary = json.loads(done.out)
    assert summary["notifications"] == [
        {"service": "#1 json", "ok": True},
        {"service": "#2 json", "ok": False},
    ]
    for line in done.err.splitlines():
        json.loads(line)  # apprise's own log lines never reach stderr
    assert TOKEN not in done.out + done.err
    ok = next(r["body"] for r in received if r["path"].startswith("/ok/"))
    assert ok["type"] == "success" and "succeeded" in ok["title"]


async def test_a_url_apprise_cannot_use_exits_2_before_anything(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 1)
    async with Sandbox(FAST) as sb:
        done = await run_cli(
            "run", str(manifest), "--out", str(tmp_path / "o"),
            "--notify", f"nosuchservice://{TOKEN}@host/", env=cli_env(sb),
        )  # fmt: skip
        assert sb.stats()["tasks_created"] == 0
    assert done.code == 2
    assert "--notify #1 (nosuchservice://...)" in done.err
    assert TOKEN not in done.out + done.err


async def test_library_callers_notify_with_the_same_message(tmp_path: Path) -> None:
    import batch_runner

    runner, port, received = await hooks()
    try:
        manifest = write_manifest(tmp_path / "m.yaml", 1)
        result = await batch_runner.run(manifest, out_dir=tmp_path / "o", sandbox=FAST)
        outcomes = await batch_runner.notify(
            [f"json://127.0.0.1:{port}/ok/{TOKEN}"], result, manifest=str(manifest)
        )
    finally:
        await runner.cleanup()
    assert outcomes == [{"service": "#1 json", "ok": True}]
    assert received[0]["body"]["type"] == "success"
    assert batch_runner.summary(result, manifest=manifest)["counts"]["succeeded"] == 1


async def test_a_run_ended_by_an_error_is_notified(tmp_path: Path) -> None:
    runner, port, received = await hooks()
    manifest = write_manifest(tmp_path / "m.yaml", 1)
    try:
        async with Sandbox(FAST) as sb:
            done = await run_cli(
                "run", str(manifest), "--out", str(tmp_path / "o"),
                "--notify", f"json://127.0.0.1:{port}/ok/{TOKEN}",
                env=cli_env(sb, WIRO_API_SECRET="not-the-secret"),
            )  # fmt: skip
    finally:
        await runner.cleanup()
    assert done.code == 2
    (sent,) = received
    assert sent["body"]["type"] == "failure" and "fix needed" in sent["body"]["title"]
    assert "error: " in sent["body"]["message"]
