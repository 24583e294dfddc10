"""A misbehaving push channel (``ws_final_withheld``, ``socket_mode``) and the counters that
let a test check how a client coped, driven over loopback with raw aiohttp."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import aiohttp
import pytest
import test_sandbox
from test_sandbox import TERMINAL, Api, Factory

from batch_runner.sandbox import FaultConfig, SandboxConfig
from batch_runner.sandbox import cli as sandbox_cli

make = test_sandbox.make  # the fixture: sandboxes with fast tasks and a raw client


async def frames_until_done(
    api: Api, ws: aiohttp.ClientWebSocketResponse, taskid: str, linger: float = 0.3
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every frame received until Detail shows the task ended, and ``linger`` s after."""
    frames: list[dict[str, Any]] = []
    deadline: float | None = None
    task: dict[str, Any] = {}
    while deadline is None or time.monotonic() < deadline:
        try:
            message = await ws.receive(timeout=0.05)
        except TimeoutError:
            message = None
        if message is not None:
            assert message.type == aiohttp.WSMsgType.TEXT, message
            frames.append(json.loads(message.data))
        if deadline is None:
            task = await api.detail(taskid)
            if task["status"] in TERMINAL:
                deadline = time.monotonic() + linger
    return frames, task


async def test_final_frames_withheld_while_detail_ends_normally(make: Factory) -> None:
    sb, api = await make(faults=FaultConfig(ws_final_withheld=1.0), queue_seconds=0.3)
    answer = await api.run()
    async with api.session.ws_connect(sb.socket_url) as ws:
        await ws.send_json({"type": "task_info", "tasktoken": answer["socketaccesstoken"]})
        frames, task = await frames_until_done(api, ws, answer["taskid"])
    types = [f["type"] for f in frames]
    assert "task_start" in types and "task_output" in types and "task_postprocess_start" in types
    assert not TERMINAL & set(types)
    assert task["status"] == "task_postprocess_end" and task["pexit"] == "0" and task["outputs"]
    stats = sb.stats()
    assert stats["faults_injected"] == {"ws_final_withheld": 1}
    assert stats["ws_frames_withheld"] == 1 and stats["ws_frames_sent"] == len(frames)
    assert sb.task_records()[0]["ws_final_withheld"] is True


async def test_withheld_cancel_and_no_replay_of_a_withheld_end(make: Factory) -> None:
    faults = FaultConfig(ws_final_withheld=1.0)
    sb, api = await make(faults=faults, ws_replay=True, queue_seconds=5)
    answer = await api.run()
    token = answer["socketaccesstoken"]
    async with api.session.ws_connect(sb.socket_url) as ws:
        await ws.send_json({"type": "task_info", "tasktoken": token})
        replayed = json.loads((await ws.receive(timeout=5)).data)
        assert replayed["type"] == "task_queue"  # a running task's status is replayed
        status, _body = await api.post("/Task/Cancel", json={"taskid": answer["taskid"]})
        assert status == 200
        with pytest.raises(TimeoutError):
            await ws.receive(timeout=0.3)  # no task_cancel frame
        await ws.send_json({"type": "task_info", "tasktoken": token})
        with pytest.raises(TimeoutError):
            await ws.receive(timeout=0.3)  # and no replay of it to a late subscriber
    assert (await api.detail(answer["taskid"]))["status"] == "task_cancel"
    assert sb.stats()["ws_frames_withheld"] == 2


async def test_withheld_is_drawn_once_per_task_from_the_seed(make: Factory) -> None:
    patterns = []
    for _ in range(2):
        sb, api = await make(seed=3, faults=FaultConfig(ws_final_withheld=0.5), queue_seconds=5)
        for i in range(16):
            await api.run(prompt=f"p{i}")
        patterns.append([t["ws_final_withheld"] for t in sb.task_records()])
    assert patterns[0] == patterns[1] and set(patterns[0]) == {True, False}


@pytest.mark.parametrize("status", [404, 503])
async def test_refuse_mode_answers_the_upgrade_with_an_http_error(
    make: Factory, status: int
) -> None:
    sb, api = await make(socket_mode="refuse", socket_refuse_status=status)
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await api.session.ws_connect(sb.socket_url)
    assert caught.value.status == status
    stats = sb.stats()
    assert (stats["ws_upgrades"], stats["ws_refused"], stats["ws_connections"]) == (1, 1, 0)
    assert stats["socket_mode"] == "refuse" and stats["responses"]["socket"] == {str(status): 1}
    sb.set_socket_mode("normal")
    async with api.session.ws_connect(sb.socket_url):
        pass
    assert sb.stats()["ws_connections"] == 1 and sb.stats()["ws_upgrades"] == 2


async def test_refuse_status_can_change_while_running(make: Factory) -> None:
    sb, api = await make()
    sb.set_socket_mode("refuse", 503)
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await api.session.ws_connect(sb.socket_url)
    assert caught.value.status == 503 and sb.socket_mode == "refuse"
    with pytest.raises(ValueError, match="socket_mode"):
        sb.set_socket_mode("sulky")
    with pytest.raises(ValueError, match="400 to 599"):
        sb.set_socket_mode("refuse", 200)
    with pytest.raises(ValueError, match="socket_mode"):
        SandboxConfig(socket_mode="closed")


async def test_silent_mode_accepts_subscriptions_and_sends_nothing(make: Factory) -> None:
    sb, api = await make(socket_mode="silent", ws_replay=True)
    answer = await api.run()
    async with api.session.ws_connect(sb.socket_url) as ws:
        await ws.send_json({"type": "task_info", "tasktoken": answer["socketaccesstoken"]})
        frames, task = await frames_until_done(api, ws, answer["taskid"])
    assert frames == [] and task["status"] == "task_postprocess_end"
    stats = sb.stats()
    assert stats["ws_connections"] == 1 and stats["ws_subscriptions"] == 1
    assert stats["ws_frames_sent"] == 0 and stats["ws_frames_silenced"] >= 9


async def test_socket_and_detail_counters(make: Factory) -> None:
    sb, api = await make(queue_seconds=0.3)
    answers = [await api.run(), await api.run(prompt="two")]
    async with api.session.ws_connect(sb.socket_url) as ws:
        for answer in answers:
            await ws.send_json({"type": "task_info", "tasktoken": answer["socketaccesstoken"]})
        received, ended = 0, 0
        while ended < 2:
            frame = json.loads((await ws.receive(timeout=5)).data)
            received += 1
            ended += frame["type"] in TERMINAL
    for _ in range(3):
        await api.detail(answers[0]["taskid"])
    await api.post("/Task/Detail", json={"tasktoken": answers[1]["socketaccesstoken"]})
    stats = sb.stats()
    assert (stats["ws_upgrades"], stats["ws_connections"], stats["ws_refused"]) == (1, 1, 0)
    assert stats["ws_subscriptions"] == 2 and stats["ws_frames_sent"] == received
    first, second = answers[0]["taskid"], answers[1]["taskid"]
    assert stats["detail_requests_per_task"] == {first: 3, second: 1}
    assert stats["detail_requests_max"] == 3
    assert sb.detail_requests(first) == 3 and sb.detail_requests(999) == 0
    assert "detail_requests_per_task" not in sb.stats(brief=True)


def test_cli_flags_for_the_socket_and_the_catalogue() -> None:
    parser = argparse.ArgumentParser()
    sandbox_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["sandbox", "--socket-mode", "refuse", "--socket-refuse-status", "503",
         "--dynamicprice-style", "list", "--fault", "ws_final_withheld=0.25"]
    )  # fmt: skip
    config = sandbox_cli.config_from_args(args)
    assert (config.socket_mode, config.socket_refuse_status) == ("refuse", 503)
    assert config.dynamicprice_style == "list"
    assert config.faults.enabled() == {"ws_final_withheld": 0.25}
    defaults = sandbox_cli.config_from_args(parser.parse_args(["sandbox"]))
    assert (defaults.socket_mode, defaults.socket_refuse_status) == ("normal", 404)
    for bad in (["--socket-refuse-status", "200"], ["--socket-mode", "closed"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["sandbox", *bad])
