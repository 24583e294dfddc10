"""The sandbox, driven over real loopback sockets with raw aiohttp (no batch-runner client)."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import itertools
import json
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from batch_runner.sandbox import FAULT_NAMES, FaultConfig, Sandbox, SandboxConfig
from batch_runner.sandbox import cli as sandbox_cli
from batch_runner.sandbox.media import MEDIA_DIR, output_bytes

MODEL_PATH = "/Run/PixVerse/image-to-video-v5"
TERMINAL = {"task_postprocess_end", "task_cancel", "task_error"}
ALL_STATUSES = [
    "task_queue",
    "task_accept",
    "task_assign",
    "task_preprocess_start",
    "task_preprocess_end",
    "task_start",
    "task_output",
    "task_postprocess_start",
    "task_postprocess_end",
]
INPUTS = {"inputImageUrl": "https://example.com/a.png", "prompt": "a cat surfing"}
_nonces = itertools.count(int(time.time() * 1000))


def signed_headers(key: str, secret: str | None) -> dict[str, str]:
    """What a client sends: x-api-key, plus a fresh nonce and its HMAC in signature mode."""
    if secret is None:
        return {"x-api-key": key}
    nonce = str(next(_nonces))
    signature = hmac.new(key.encode(), (secret + nonce).encode(), hashlib.sha256).hexdigest()
    return {"x-api-key": key, "x-nonce": nonce, "x-signature": signature}


class Api:
    """A tiny raw client: POST with auth, answer as (status, parsed JSON or text)."""

    def __init__(self, session: aiohttp.ClientSession, sb: Sandbox) -> None:
        self.session, self.sb = session, sb

    async def post(
        self, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> tuple[int, Any]:
        if headers is None:
            headers = signed_headers(self.sb.api_key, self.sb.api_secret)
        async with self.session.post(self.sb.base_url + path, headers=headers, **kwargs) as r:
            text = await r.text()
            try:
                return r.status, json.loads(text)
            except ValueError:
                return r.status, text

    async def run(self, **inputs: Any) -> dict[str, Any]:
        status, body = await self.post(MODEL_PATH, data={**INPUTS, **inputs})
        assert status == 200 and body["result"] is True, body
        return dict(body)

    async def detail(self, taskid: str) -> dict[str, Any]:
        status, body = await self.post("/Task/Detail", json={"taskid": taskid})
        assert status == 200, body
        return dict(body["tasklist"][0])

    async def wait(self, taskid: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            task = await self.detail(taskid)
            if task["status"] in TERMINAL:
                return task
            assert time.monotonic() < deadline, f"task {taskid} still {task['status']}"
            await asyncio.sleep(0.03)


Factory = Callable[..., Awaitable[tuple[Sandbox, Api]]]


@pytest.fixture
async def make() -> AsyncIterator[Factory]:
    """Start sandboxes (fast tasks by default) and a raw client for each; stop them after."""
    running: list[tuple[Sandbox, aiohttp.ClientSession]] = []

    async def factory(**overrides: Any) -> tuple[Sandbox, Api]:
        settings: dict[str, Any] = {"queue_seconds": 0.05, "run_seconds": (0.1, 0.2)}
        settings.update(overrides)
        sb = Sandbox(SandboxConfig(**settings))
        await sb.start()
        session = aiohttp.ClientSession()
        running.append((sb, session))
        return sb, Api(session, sb)

    yield factory
    for sb, session in running:
        await session.close()
        await sb.stop()


def error_of(body: Any) -> tuple[int, str]:
    assert body["result"] is False, body
    return body["errors"][0]["code"], body["errors"][0]["message"]


# -- run, detail, statuses, money ----------------------------------------------------------


async def test_run_to_success_with_every_status_and_a_verified_output(make: Factory) -> None:
    sb, api = await make()
    answer = await api.run(quality="720p", duration="8")
    assert answer["errors"] == [] and answer["taskid"].isdigit()
    assert len(answer["socketaccesstoken"]) == 30 and answer["socketaccesstoken"].isalnum()
    task = await api.wait(answer["taskid"])
    assert task["status"] == "task_postprocess_end" and task["pexit"] == "0"
    assert task["socketaccesstoken"] == answer["socketaccesstoken"]
    for name in ("id", "uuid", "starttime", "endtime", "createtime", "elapsedseconds", "size"):
        assert isinstance(task[name], str), name
    assert task["totalcost"] == "1.200000000000" and task["canceltime"] == "0"
    parameters = task["parameters"]
    if isinstance(parameters, str):
        parameters = json.loads(parameters)
    assert parameters["quality"] == "720p" and parameters["style"] == ""
    [output] = task["outputs"]
    assert output["contenttype"] == "video/mp4" and output["size"] == task["size"]
    async with api.session.get(output["url"]) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "video/mp4"
        body = await r.read()
    [record] = sb.task_records()
    assert record["statuses"] == ALL_STATUSES
    assert record["outputs"][0]["sha256"] == hashlib.sha256(body).hexdigest()
    assert record["outputs"][0]["size"] == len(body) == int(output["size"])
    assert record["first_detail_after_end_ts"] >= record["end_ts"] > record["create_ts"]
    stats = sb.stats()
    assert stats["money_charged_usd"] == 1.2 and stats["balance_usd"] == 998.8


async def test_body_forms_json_urlencoded_and_json_labelled_multipart(make: Factory) -> None:
    sb, api = await make()
    bodies: list[tuple[dict[str, Any], str | None]] = [
        ({"json": {**INPUTS, "duration": 5, "Watermark": False, "seed": 7}}, None),
        ({"data": INPUTS}, None),  # urlencoded
        ({"data": json.dumps(INPUTS)}, "multipart/form-data"),  # as on the API page
    ]
    for kwargs, content_type in bodies:
        headers = signed_headers(sb.api_key, sb.api_secret)
        if content_type:
            headers["Content-Type"] = content_type
        status, body = await api.post(MODEL_PATH, headers=headers, **kwargs)
        assert status == 200 and body["result"] is True, body
    first = sb.tasks[0].parameters
    assert first["duration"] == "5" and first["Watermark"] == "false" and first["seed"] == "7"


async def test_detail_by_token_and_unknown_task(make: Factory) -> None:
    _sb, api = await make()
    answer = await api.run()
    status, body = await api.post("/Task/Detail", data={"tasktoken": answer["socketaccesstoken"]})
    assert status == 200 and body["total"] == "1"
    assert body["tasklist"][0]["id"] == answer["taskid"]
    status, body = await api.post("/Task/Detail", json={"taskid": "999"})
    assert status == 404 and error_of(body) == (1, "There is no task yet.")


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"prompt": ""}, "Request parameter [prompt] required"),
        ({"inputImageUrl": ""}, "Request parameter [inputImageUrl] required"),
        ({"duration": "6"}, "Request parameter [duration] must be one of"),
        ({"quality": "4k"}, "Request parameter [quality] must be one of"),
        ({"style": "noir"}, "Request parameter [style] must be one of"),
        ({"Watermark": "yes"}, "Request parameter [Watermark] must be one of"),
        ({"seed": "-1"}, "Request parameter [seed] must be an integer"),
        ({"seed": "2147483648"}, "Request parameter [seed] must be an integer"),
        ({"seed": "1.5"}, "Request parameter [seed] must be an integer"),
        ({"prompt": "x" * 2049}, "Request parameter [prompt] must be at most 2048"),
        ({"negativePrompt": "x" * 2049}, "Request parameter [negativePrompt] must be at most"),
    ],
)
async def test_validation_errors(make: Factory, inputs: dict[str, str], message: str) -> None:
    sb, api = await make()
    status, body = await api.post(MODEL_PATH, data={**INPUTS, **inputs})
    code, text = error_of(body)
    assert status == 400 and code == 0 and text.startswith(message)
    assert sb.stats()["tasks_created"] == 0


async def test_defaults_edge_values_unknown_model_and_path(make: Factory) -> None:
    sb, api = await make()
    await api.run(seed="", prompt="x" * 2048, style="clay")
    await api.run(seed="2147483647")
    assert sb.tasks[0].parameters == {
        **INPUTS,
        "prompt": "x" * 2048,
        "negativePrompt": "",
        "duration": "5",
        "quality": "540p",
        "style": "clay",
        "seed": "",
        "Watermark": "false",
        "callbackUrl": "",
    }
    status, body = await api.post("/Run/PixVerse/no-such-model", data=INPUTS)
    assert status == 404 and error_of(body) == (0, "Model not found")
    status, body = await api.post("/Task/Nothing", json={})
    assert status == 404 and error_of(body) == (0, "Error parsing url.")


async def test_error_style_200_answers_every_error_with_http_200(make: Factory) -> None:
    _sb, api = await make(error_style="200", concurrency_limit=1)
    assert (await api.post(MODEL_PATH, data={"prompt": "p"}))[0] == 200
    status, body = await api.post("/Task/Detail", headers={"x-api-key": "nope"}, json={})
    assert status == 200 and error_of(body)[1] == "Project authorization is not founded."
    await api.run()
    status, body = await api.post(MODEL_PATH, data=INPUTS)
    assert status == 200 and error_of(body)[0] == 96


# -- auth ----------------------------------------------------------------------------------


async def test_signature_mode_errors_and_nonce_reuse(make: Factory) -> None:
    sb, api = await make()
    key, secret = sb.api_key, sb.api_secret
    assert secret is not None
    cases = [
        ({}, "Project authorization is not founded."),
        ({"x-api-key": "someone-else"}, "Project authorization is not founded."),
        (
            {"x-api-key": key},
            "Project requires signature authentication. x-signature and "
            "x-nonce headers are required.",
        ),
        (
            {"x-api-key": key, "x-nonce": "1"},
            "Project requires signature authentication. "
            "x-signature and x-nonce headers are required.",
        ),
        (
            {"x-api-key": key, "x-nonce": "1", "x-signature": "00" * 32},
            "Project authorization is not valid.",
        ),
    ]
    for headers, message in cases:
        status, body = await api.post("/Task/List", headers=headers, json={})
        assert status == 401 and error_of(body) == (0, message), headers
    fixed = signed_headers(key, secret)
    for _ in range(3):
        assert (await api.post("/Task/List", headers=fixed, json={}))[0] == 200
    assert sb.stats()["nonces_reused"] == 2


async def test_reused_nonce_rejected_when_asked(make: Factory) -> None:
    _sb, api = await make(reject_reused_nonces=True)
    fixed = signed_headers(api.sb.api_key, api.sb.api_secret)
    assert (await api.post("/Task/List", headers=fixed, json={}))[0] == 200
    status, body = await api.post("/Task/List", headers=fixed, json={})
    assert status == 401 and error_of(body)[1] == "Project authorization is not valid."


async def test_api_key_only_project(make: Factory) -> None:
    sb, api = await make(api_secret=None)
    assert sb.api_secret is None
    status, _ = await api.post("/Task/List", headers={"x-api-key": sb.api_key}, json={})
    assert status == 200
    status, body = await api.post("/Task/List", headers={"x-api-key": "wrong"}, json={})
    assert status == 401 and error_of(body)[1] == "Project authorization is not founded."


# -- limits and money ----------------------------------------------------------------------


async def test_concurrency_limit_code_96_fixed_and_by_formula(make: Factory) -> None:
    sb, api = await make(concurrency_limit=2, queue_seconds=5)
    await api.run()
    await api.run()
    status, body = await api.post(MODEL_PATH, data=INPUTS)
    assert status == 400 and error_of(body) == (96, "Concurrency limit reached")
    sb.set_concurrency_limit(None)  # balance $1000: no limit
    await api.run()
    sb.set_balance(15.0)  # formula: max(1, floor(1.5)) = 1, and 3 are in flight
    assert error_of((await api.post(MODEL_PATH, data=INPUTS))[1])[0] == 96
    assert sb.stats()["concurrency_limit"] == 1 and sb.stats()["max_in_flight"] == 3


async def test_balance_code_97_counts_in_flight_prices(make: Factory) -> None:
    sb, api = await make(balance_usd=1.0, concurrency_limit=10, queue_seconds=5)
    status, body = await api.post(MODEL_PATH, data={**INPUTS, "quality": "1080p"})
    assert status == 400 and error_of(body) == (97, "Insufficient balance")
    await api.run()  # 0.45 reserved
    await api.run()  # 0.90 reserved; 0.10 left
    assert error_of((await api.post(MODEL_PATH, data=INPUTS))[1])[0] == 97
    assert sb.stats()["balance_usd"] == 1.0  # nothing charged yet


async def test_price_table_and_only_successes_are_charged(make: Factory) -> None:
    sb, api = await make(queue_seconds=0, run_seconds=(0, 0))
    expected = {
        ("360p", "5"): 0.45, ("540p", "8"): 0.90, ("720p", "5"): 0.60,
        ("720p", "8"): 1.20, ("1080p", "5"): 1.20, ("1080p", "8"): 2.40,
    }  # fmt: skip
    ids = [(await api.run(quality=q, duration=d))["taskid"] for q, d in expected]
    for taskid, price in zip(ids, expected.values(), strict=True):
        assert float((await api.wait(taskid))["totalcost"]) == pytest.approx(price)
    assert sb.stats()["money_charged_usd"] == pytest.approx(sum(expected.values()))
    sb.set_faults(FaultConfig(generation_failure=1.0))
    failed = await api.wait((await api.run(quality="1080p"))["taskid"])
    assert failed["pexit"] == "1" and failed["outputs"] == [] and failed["debugerror"]
    assert float(failed["totalcost"]) == 0
    assert sb.stats()["money_charged_usd"] == pytest.approx(sum(expected.values()))


# -- list, cancel, kill, upload ------------------------------------------------------------


async def test_task_list_newest_first_paging_and_limit(make: Factory) -> None:
    _sb, api = await make(max_tasks_list=2)
    ids = [(await api.run(prompt=f"p{i}"))["taskid"] for i in range(3)]
    query = {"type": "model", "sort": "id", "order": "DESC", "start": "0", "limit": "20"}
    status, body = await api.post("/Task/List", json=query)
    assert status == 200 and body["result"] is True and body["total"] == "3"
    assert [t["id"] for t in body["tasklist"]] == ids[::-1][:2]  # limit capped at 2
    assert all(t["createtime"] != "0" and "parameters" in t for t in body["tasklist"])
    _, body = await api.post("/Task/List", json={**query, "start": "2"})
    assert [t["id"] for t in body["tasklist"]] == ids[:1]
    _, body = await api.post("/Task/List", json={**query, "start": "3"})
    assert body["tasklist"] == [] and body["total"] == "3"
    _, body = await api.post("/Task/List", data={**query, "order": "ASC", "limit": "1"})
    assert [t["id"] for t in body["tasklist"]] == ids[:1]
    _, body = await api.post("/Task/List", json={**query, "model": "Other/model"})
    assert body["total"] == "0" and body["tasklist"] == []
    status, body = await api.post("/Task/List", json={**query, "limit": "many"})
    assert status == 400 and error_of(body)[0] == 0


async def test_cancel_only_while_queued(make: Factory) -> None:
    sb, api = await make(queue_seconds=5)
    answer = await api.run()
    status, body = await api.post("/Task/Cancel", data={"tasktoken": answer["socketaccesstoken"]})
    assert status == 200 and body["tasklist"][0]["status"] == "task_cancel"
    status, body = await api.post("/Task/Cancel", json={"taskid": answer["taskid"]})
    assert status == 400 and error_of(body) == (0, "Task is not in a cancellable state.")
    assert error_of((await api.post("/Task/Cancel", json={"taskid": "1"}))[1])[0] == 1
    assert sb.stats()["in_flight"] == 0 and sb.stats()["money_charged_usd"] == 0


async def test_kill_running_task(make: Factory) -> None:
    sb, api = await make(queue_seconds=0, run_seconds=(2, 2))
    answer = await api.run()
    while (await api.detail(answer["taskid"]))["status"] != "task_start":
        await asyncio.sleep(0.05)
    assert error_of((await api.post("/Task/Cancel", json={"taskid": answer["taskid"]}))[1])[0] == 0
    token = answer["socketaccesstoken"]
    status, body = await api.post("/Task/Kill", data={"socketaccesstoken": token})
    assert status == 200 and body["tasklist"][0]["status"] == "task_cancel"
    assert body["tasklist"][0]["canceltime"] != "0"
    status, body = await api.post("/Task/Kill", json={"taskid": answer["taskid"]})
    assert status == 400 and error_of(body)[0] == 0
    assert sb.task_records()[0]["cancelled_by"] == "kill"


async def test_file_upload(make: Factory) -> None:
    _sb, api = await make(max_upload_bytes=1000)
    form = aiohttp.FormData()
    form.add_field("file", b"\x89PNG fake", filename="frame 1.png", content_type="image/png")
    form.add_field("folderid", "42")
    status, body = await api.post("/File/Upload", data=form)
    assert status == 200 and body["result"] is True and body["errors"] == []
    [entry] = body["list"]
    assert entry["name"] == "frame 1.png" and entry["size"] == "9"
    async with api.session.get(entry["url"]) as r:
        assert r.status == 200 and await r.read() == b"\x89PNG fake"
    for filename, data, expected in (
        ("notes.txt", b"hello", "File type is not allowed."),
        ("big.jpg", b"x" * 1001, "File size exceeds the limit"),
    ):
        form = aiohttp.FormData()
        form.add_field("file", data, filename=filename)
        status, body = await api.post("/File/Upload", data=form)
        assert status == 400 and error_of(body)[1].startswith(expected)
    status, body = await api.post("/File/Upload", data={"folderid": "1"})
    assert error_of(body) == (0, "Request parameter [file] required")


# -- downloads -----------------------------------------------------------------------------


async def test_range_head_and_416(make: Factory) -> None:
    _sb, api = await make(queue_seconds=0, run_seconds=(0, 0))
    task = await api.wait((await api.run())["taskid"])
    url, size = task["outputs"][0]["url"], int(task["outputs"][0]["size"])
    async with api.session.get(url) as r:
        full = await r.read()
        assert r.headers["Accept-Ranges"] == "bytes" and int(r.headers["Content-Length"]) == size
    for header, first, last in (
        ("bytes=0-99", 0, 99),
        ("bytes=1000-", 1000, size - 1),
        ("bytes=-10", size - 10, size - 1),
        (f"bytes=100-{size + 500}", 100, size - 1),
    ):
        async with api.session.get(url, headers={"Range": header}) as r:
            assert r.status == 206, header
            assert r.headers["Content-Range"] == f"bytes {first}-{last}/{size}"
            assert await r.read() == full[first : last + 1]
    async with api.session.get(url, headers={"Range": f"bytes={size}-"}) as r:
        assert r.status == 416 and r.headers["Content-Range"] == f"bytes */{size}"
    async with api.session.head(url) as r:
        assert r.status == 200 and r.headers["Content-Length"] == str(size)
        assert await r.read() == b""
    async with api.session.get(url.rsplit("/", 2)[0] + "/no-such/0.mp4") as r:
        assert r.status == 404


def test_sample_and_outputs_are_distinct_playable_mp4s(tmp_path: Path) -> None:
    sample = (MEDIA_DIR / "sample.mp4").read_bytes()
    assert len(sample) < 60_000 and sample[4:8] == b"ftyp"
    assert sample.index(b"moov") < sample.index(b"mdat")  # faststart
    one, two = output_bytes("uuid-1", 1), output_bytes("uuid-2", 2)
    assert one.startswith(sample) and one != two
    box = one[len(sample) :]
    assert struct.unpack(">I", box[:4])[0] == len(box) and box[4:8] == b"free"
    assert b"uuid-1" in box
    ffprobe = Path("/usr/bin/ffprobe")
    if ffprobe.exists():
        path = tmp_path / "out.mp4"
        path.write_bytes(one)
        result = subprocess.run(
            [str(ffprobe), "-v", "error", "-show_entries", "stream=codec_name,pix_fmt",
             "-of", "csv=p=0", str(path)],
            capture_output=True, text=True, check=True, timeout=20,
        )  # fmt: skip
        assert result.stdout.strip() == "h264,yuv420p"


# -- faults --------------------------------------------------------------------------------


async def test_gateway_faults_429_500_502(make: Factory) -> None:
    sb, api = await make(faults=FaultConfig(http_429=1.0))
    answers = [await api.post("/Task/List", json={}) for _ in range(12)]
    assert {status for status, _ in answers} == {429}
    sb.set_faults(FaultConfig(http_500=1.0))
    status, body = await api.post(MODEL_PATH, data=INPUTS)
    assert status == 500 and "<html>" in body
    sb.set_faults(FaultConfig(http_502=1.0))
    assert (await api.post("/Task/Detail", json={"taskid": "1"}))[0] == 502
    stats = sb.stats()
    assert stats["faults_injected"] == {"http_429": 12, "http_500": 1, "http_502": 1}
    assert stats["tasks_created"] == 0 and stats["responses"]["Task/List"] == {"429": 12}
    sb.set_faults(FaultConfig(http_429=1.0))
    retry_after = set()
    for _ in range(12):
        async with api.session.post(sb.base_url + "/Task/List") as r:
            retry_after.add(r.headers.get("Retry-After"))
    assert retry_after == {"1", None}  # sometimes


async def test_dropped_connections_before_and_after_create(make: Factory) -> None:
    sb, api = await make(faults=FaultConfig(drop_before_create=1.0))
    with pytest.raises(aiohttp.ClientError):
        await api.post(MODEL_PATH, data=INPUTS)
    assert sb.stats()["tasks_created"] == 0
    sb.set_faults(FaultConfig(drop_after_create=1.0))
    with pytest.raises(aiohttp.ClientError):
        await api.post(MODEL_PATH, data=INPUTS)
    stats = sb.stats()
    assert stats["tasks_created"] == 1 and stats["responses"]["Run"] == {"dropped": 2}
    assert stats["faults_injected"] == {"drop_before_create": 1, "drop_after_create": 1}
    sb.set_faults(FaultConfig())
    _, body = await api.post("/Task/List", json={"limit": "10"})
    assert body["total"] == "1"  # the client can find the task it never heard of


@pytest.mark.parametrize(
    ("fault", "status", "statuses"),
    [
        ("task_error", "task_error", ["task_queue", "task_accept", "task_assign", "task_error"]),
        ("system_cancel", "task_cancel", [*ALL_STATUSES[:7], "task_cancel"]),
        (
            "unknown_status",
            "task_postprocess_end",
            [*ALL_STATUSES[:3], "task_waiting_gpu", *ALL_STATUSES[3:]],
        ),
    ],
)
async def test_task_faults(make: Factory, fault: str, status: str, statuses: list[str]) -> None:
    sb, api = await make(faults=FaultConfig(**{fault: 1.0}), queue_seconds=0)
    task = await api.wait((await api.run())["taskid"])
    assert task["status"] == status
    [record] = sb.task_records()
    assert record["statuses"] == statuses
    assert sb.stats()["faults_injected"] == {fault: 1}
    if fault != "unknown_status":
        assert task["debugerror"] and task["outputs"] == [] and float(task["totalcost"]) == 0


async def test_truncated_and_slow_downloads(make: Factory) -> None:
    sb, api = await make(queue_seconds=0, run_seconds=(0, 0))
    url = (await api.wait((await api.run())["taskid"]))["outputs"][0]["url"]
    sb.set_faults(FaultConfig(truncated_download=1.0))
    async with api.session.get(url) as r:
        assert r.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await r.read()
    sb.set_faults(FaultConfig(slow_download=1.0, slow_download_seconds=0.3))
    started = time.monotonic()
    async with api.session.get(url) as r:
        body = await r.read()
    assert time.monotonic() - started >= 0.25
    assert hashlib.sha256(body).hexdigest() == sb.task_records()[0]["outputs"][0]["sha256"]
    faults = sb.stats()["faults_injected"]
    assert faults == {"truncated_download": 1, "slow_download": 1}


async def test_ws_drop_closes_the_socket(make: Factory) -> None:
    sb, api = await make(faults=FaultConfig(ws_drop=1.0))
    answer = await api.run()
    async with api.session.ws_connect(sb.socket_url) as ws:
        await ws.send_json({"type": "task_info", "tasktoken": answer["socketaccesstoken"]})
        message = await ws.receive(timeout=5)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert sb.stats()["faults_injected"] == {"ws_drop": 1}


def test_fault_config_parse() -> None:
    config = FaultConfig.parse(["http_429=0.1", "task_error=0.05", "slow_download_seconds=2"])
    assert config.http_429 == 0.1 and config.task_error == 0.05
    assert config.slow_download_seconds == 2
    assert set(FaultConfig.parse(["all=0.2"]).enabled()) == set(FAULT_NAMES)
    for bad, text in (
        (["bogus=0.1"], "unknown fault 'bogus'"),
        (["http_429=2"], "from 0 to 1"),
        (["http_429=lots"], "not a number"),
        (["http_429"], "NAME=RATE"),
    ):
        with pytest.raises(ValueError, match=text):
            FaultConfig.parse(bad)
    with pytest.raises(ValueError):
        FaultConfig(http_500=-0.1)


async def test_same_seed_same_fate(make: Factory) -> None:
    fates = []
    for _ in range(2):
        sb, api = await make(
            seed=7,
            queue_seconds=0,
            run_seconds=(0, 0),
            faults=FaultConfig.uniform(0.0, task_error=0.5),
        )
        for _ in range(8):
            await api.run()
        fates.append([(t.fault, t.run_seconds, t.uuid, t.token) for t in sb.tasks])
    assert fates[0] == fates[1] and {f[0] for f in fates[0]} == {"", "task_error"}


# -- websocket -----------------------------------------------------------------------------


async def test_websocket_pushes_every_status_for_several_tasks(make: Factory) -> None:
    sb, api = await make(queue_seconds=0.5)
    answers = [await api.run(), await api.run(prompt="another")]
    frames: dict[str, list[dict[str, Any]]] = {a["socketaccesstoken"]: [] for a in answers}
    async with api.session.ws_connect(sb.socket_url) as ws:
        for answer in answers:
            await ws.send_json({"type": "task_info", "tasktoken": answer["socketaccesstoken"]})
        done = 0
        while done < 2:
            frame = json.loads((await ws.receive(timeout=5)).data)
            frames[frame["tasktoken"]].append(frame)
            done += frame["type"] in TERMINAL
    for answer in answers:
        got = frames[answer["socketaccesstoken"]]
        types = list(dict.fromkeys(f["type"] for f in got))
        assert types == ALL_STATUSES[1:]  # queue happened before subscribing
        assert all(f["id"] == answer["taskid"] and f["result"] is True for f in got)
        assert all("pexit" not in f for f in got)
        progress = [f["message"] for f in got if f["type"] == "task_output"]
        assert len(progress) == 4
        parsed = [json.loads(p) if isinstance(p, str) else p for p in progress]
        assert [p["percentage"] for p in parsed] == ["25", "50", "75", "100"]
        assert parsed[0]["type"] == "progressGenerate"
        [output] = got[-1]["message"]
        assert output["url"].startswith(sb.origin + "/cdn/")


async def test_websocket_replay_for_late_subscriber(make: Factory) -> None:
    sb, api = await make(ws_replay=True, queue_seconds=0, run_seconds=(0, 0))
    answer = await api.run()
    await api.wait(answer["taskid"])
    async with api.session.ws_connect(sb.socket_url) as ws:
        await ws.send_json({"type": "task_info", "tasktoken": "unknown"})
        await ws.send_json({"type": "task_info", "tasktoken": answer["socketaccesstoken"]})
        frame = json.loads((await ws.receive(timeout=5)).data)
    assert frame["type"] == "task_postprocess_end" and len(frame["message"]) == 1
    assert sb.stats()["ws_unknown_tokens"] == 1


# -- stats, concurrency, CLI ---------------------------------------------------------------


async def test_stats_figures_and_http_views(make: Factory) -> None:
    sb, api = await make(queue_seconds=0, run_seconds=(0, 0))
    first = await api.run()
    await api.run()  # same inputs again: a duplicate input set
    await api.run(prompt="different")
    await api.post(MODEL_PATH, data={"prompt": "no image"})
    task = await api.wait(first["taskid"])
    async with api.session.get(task["outputs"][0]["url"]) as r:
        size = len(await r.read())
    async with api.session.get(sb.origin + "/__sandbox/stats") as r:
        stats = await r.json()
    assert stats["requests"]["Run"] == 4 and stats["responses"]["Run"] == {"200": 3, "400": 1}
    assert stats["tasks_created"] == 3 and stats["distinct_input_sets"] == 2
    assert stats["duplicate_input_sets"] == 1 and stats["duplicate_tasks"] == 1
    assert max(stats["tasks_per_input_set"].values()) == 2
    assert stats["bytes_served"] == size and stats["downloads_completed"] == 1
    assert stats["max_in_flight"] >= 1 and stats["nonces_reused"] == 0
    assert stats["tasks_by_status"].get("task_postprocess_end", 0) >= 1
    async with api.session.get(sb.origin + "/__sandbox/tasks") as r:
        records = await r.json()
    assert [rec["id"] for rec in records] == [t.to_record()["id"] for t in sb.tasks]
    done = next(rec for rec in records if rec["id"] == first["taskid"])
    assert isinstance(done["end_ts"], float) and done["end_ts"] > done["create_ts"]
    assert done["first_detail_after_end_ts"] >= done["end_ts"]
    assert done["charged_usd"] == 0.45 and len(done["outputs"][0]["sha256"]) == 64
    async with api.session.get(sb.origin + "/__sandbox/stats?brief=1") as r:
        assert "tasks_per_input_set" not in await r.json()


async def test_many_tasks_run_concurrently(make: Factory) -> None:
    sb, api = await make(queue_seconds=0.1, run_seconds=(0.5, 1.0))
    started = time.monotonic()
    answers = await asyncio.gather(*(api.run(seed=str(i)) for i in range(150)))
    assert sb.stats()["max_in_flight"] >= 50
    while sb.stats()["in_flight"]:
        assert time.monotonic() - started < 15
        await asyncio.sleep(0.05)
    assert time.monotonic() - started < 15  # not 150 x 1 s
    assert sb.stats()["tasks_by_status"] == {"task_postprocess_end": 150}
    assert len({a["taskid"] for a in answers}) == 150


def test_cli_flags_build_the_config() -> None:
    parser = argparse.ArgumentParser()
    sandbox_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["sandbox", "--no-secret", "--balance", "12.5", "--run-seconds", "0.5-1",
         "--fault", "http_429=0.1", "--fault", "ws_drop=0.2", "--error-style", "200"]
    )  # fmt: skip
    config = sandbox_cli.config_from_args(args)
    assert config.api_secret is None and config.balance_usd == 12.5
    assert config.run_seconds == (0.5, 1.0) and config.error_style == "200"
    assert config.faults.enabled() == {"http_429": 0.1, "ws_drop": 0.2}
    assert args.func is sandbox_cli.run
    with pytest.raises(SystemExit):
        parser.parse_args(["sandbox", "--fault", "nope=1"])


def test_cli_serves_until_sigterm() -> None:
    code = (
        "import argparse, sys\n"
        "from batch_runner.sandbox import cli\n"
        "p = argparse.ArgumentParser(); cli.register(p.add_subparsers())\n"
        "a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    with subprocess.Popen(
        [sys.executable, "-c", code, "sandbox", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    ) as proc:  # fmt: skip
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "base_url=http://127.0.0.1:" in line and "socket_url=ws://127.0.0.1:" in line
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
