"""WiroClient against the real sandbox (and a few hostile servers) over loopback sockets.

No aiohttp mocks: every test speaks HTTP to a server on 127.0.0.1. The sandbox covers every
endpoint, both auth modes, every error code and the injected faults; tiny ``aiohttp.web``
servers written here play the reply shapes the sandbox never produces.

Secrets are distinctive strings, and every error a test provokes goes through ``expect``,
which checks that neither its ``str`` nor its ``repr`` shows them; an autouse fixture checks
every log record captured at DEBUG the same way.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from batch_runner.engine.download import download_verified
from batch_runner.errors import (
    ApiError,
    AuthError,
    BatchRunnerError,
    ConcurrencyLimitError,
    InsufficientBalanceError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
    ProtocolError,
    RateLimitedError,
    ServerError,
    TransportError,
    UsageError,
)
from batch_runner.sandbox import FaultConfig, Sandbox, SandboxConfig
from batch_runner.wiro.client import Credentials, WiroClient
from batch_runner.wiro.records import Task

KEY = "KEY-abc123-SECRETLIKE"
SECRET = "SECRET-xyz789-SECRETLIKE"
WRONG_KEY = "WRONGKEY-def456-SECRETLIKE"
WRONG_SECRET = "WRONGSECRET-uvw000-SECRETLIKE"
SECRETS = (KEY, SECRET, WRONG_KEY, WRONG_SECRET)
MODEL = "PixVerse/image-to-video-v5"
INPUTS = {"inputImageUrl": "https://example.com/a.png", "prompt": "a cat surfing"}
TERMINAL = {"task_postprocess_end", "task_cancel", "task_error"}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


# -- helpers ---------------------------------------------------------------------------------


def assert_no_secret(text: str, what: str = "text") -> None:
    for secret in SECRETS:
        assert secret not in text, f"{what} shows a secret: {text!r}"
        assert "SECRETLIKE" not in text, f"{what} shows part of a secret: {text!r}"


async def expect(cls: type[BatchRunnerError], awaitable: Awaitable[Any]) -> Any:
    """Await, require an error of exactly ``cls``, check it leaks nothing, return it."""
    with pytest.raises(BatchRunnerError) as info:
        await awaitable
    exc = info.value
    assert type(exc) is cls, f"expected {cls.__name__}, got {exc!r}"
    assert_no_secret(str(exc), "str(error)")
    assert_no_secret(repr(exc), "repr(error)")
    return exc


@pytest.fixture(autouse=True)
def _logs_never_show_secrets(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.DEBUG)
    yield
    for record in caplog.records:
        assert_no_secret(record.getMessage(), f"log record from {record.name}")
        if record.exc_text:
            assert_no_secret(record.exc_text, f"log traceback from {record.name}")


Make = Callable[..., Awaitable[tuple[Sandbox, WiroClient]]]


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    """Start a sandbox (fast tasks, distinctive credentials) and a client for it."""
    sandboxes: list[Sandbox] = []
    clients: list[WiroClient] = []

    async def factory(**overrides: Any) -> tuple[Sandbox, WiroClient]:
        client_kwargs = {
            k: overrides.pop(k) for k in ("body_format", "max_json_bytes") if k in overrides
        }
        settings: dict[str, Any] = {
            "api_key": KEY,
            "api_secret": SECRET,
            "queue_seconds": 0.05,
            "run_seconds": (0.1, 0.2),
        }
        settings.update(overrides)
        sb = Sandbox(SandboxConfig(**settings))
        await sb.start()
        sandboxes.append(sb)
        client = WiroClient(sb.api_key, sb.api_secret, base_url=sb.base_url, **client_kwargs)
        clients.append(client)
        return sb, client

    yield factory
    for client in clients:
        await client.close()
    for sb in sandboxes:
        await sb.stop()


def another_client(sb: Sandbox, key: str, secret: str | None) -> WiroClient:
    return WiroClient(key, secret, base_url=sb.base_url)


async def wait_terminal(client: WiroClient, taskid: str, timeout: float = 10.0) -> Task:
    deadline = time.monotonic() + timeout
    while True:
        task = await client.detail(taskid=taskid)
        if task.status in TERMINAL:
            return task
        assert time.monotonic() < deadline, f"task {taskid} still {task.status}"
        await asyncio.sleep(0.02)


async def wait_running(client: WiroClient, taskid: str) -> Task:
    """Until the task has left the queue (``/Task/Cancel`` no longer applies)."""
    deadline = time.monotonic() + 5
    while True:
        task = await client.detail(taskid=taskid)
        if task.status not in ("task_queue", "task_accept"):
            return task
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


def free_port() -> int:
    """A loopback port with nothing listening on it (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- a hostile server ------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Hostile = Callable[..., Awaitable[WiroClient]]


@pytest.fixture
async def hostile() -> AsyncIterator[Hostile]:
    """``await hostile({"/Task/Detail": handler, ...}, **client_kwargs)``: a client pointed
    at a tiny server answering each API path with its handler (404 otherwise)."""
    runners: list[web.AppRunner] = []
    clients: list[WiroClient] = []

    async def factory(routes: dict[str, Handler], **client_kwargs: Any) -> WiroClient:
        async def dispatch(request: web.Request) -> web.StreamResponse:
            handler = routes.get(request.path.removeprefix("/v1"))
            if handler is None:
                return web.json_response({"result": False, "errors": []}, status=404)
            return await handler(request)

        app = web.Application()
        app.router.add_post("/v1/{tail:.+}", dispatch)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        port = runner.addresses[0][1]
        client = WiroClient(KEY, SECRET, base_url=f"http://127.0.0.1:{port}/v1", **client_kwargs)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()
    for runner in runners:
        await runner.cleanup()


def raw(body: bytes | str, status: int = 200, content_type: str = "application/json") -> Handler:
    data = body.encode() if isinstance(body, str) else body

    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.Response(body=data, status=status, content_type=content_type)

    return handler


def answer(obj: Any, status: int = 200) -> Handler:
    return raw(json.dumps(obj), status)


def api_task(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "2221",
        "uuid": "u-1",
        "socketaccesstoken": "tok-2221",
        "status": "task_postprocess_end",
        "pexit": "0",
        "parameters": {"prompt": "p"},
        "outputs": [
            {"name": "0.mp4", "url": "https://cdn.example/0.mp4", "size": "10",
             "contenttype": "video/mp4"}
        ],
    }  # fmt: skip
    base.update(fields)
    return base


def detail_body(*tasks: dict[str, Any]) -> dict[str, Any]:
    return {"total": str(len(tasks)), "errors": [], "tasklist": list(tasks), "result": True}


# -- every endpoint --------------------------------------------------------------------------


async def test_run_multipart_and_json_both_create_tasks(make: Make) -> None:
    sb, client = await make()
    first = await client.run(MODEL, {**INPUTS, "quality": "720p", "duration": "8"})
    assert first.taskid.isdigit() and len(first.tasktoken) == 30
    assert first.tasktoken not in repr(first)
    async with WiroClient(KEY, SECRET, base_url=sb.base_url, body_format="json") as json_client:
        second = await json_client.run(MODEL, {**INPUTS, "seed": "7", "style": "clay"})
    assert second.taskid != first.taskid
    one, two = sb.tasks
    assert one.parameters["quality"] == "720p" and one.parameters["duration"] == "8"
    assert two.parameters["seed"] == "7" and two.parameters["style"] == "clay"
    assert sb.stats()["responses"]["Run"] == {"200": 2}


async def test_run_body_formats_on_the_wire(hostile: Hostile) -> None:
    """multipart really is multipart/form-data (a text-only FormData would go urlencoded)."""
    seen: list[tuple[str, dict[str, Any]]] = []

    async def run(request: web.Request) -> web.StreamResponse:
        if request.content_type == "multipart/form-data":
            fields: dict[str, Any] = dict(await request.post())
        else:
            fields = await request.json()
        seen.append((request.content_type, fields))
        return web.json_response(
            {"errors": [], "taskid": "7", "socketaccesstoken": "abc", "result": True}
        )

    routes = {f"/Run/{MODEL}": run}
    inputs = {**INPUTS, "prompt": 'ünïcode & = ; "quoted"', "seed": "3"}
    assert (await (await hostile(routes)).run(MODEL, inputs)).taskid == "7"
    assert (await (await hostile(routes, body_format="json")).run(MODEL, inputs)).taskid == "7"
    assert seen == [("multipart/form-data", inputs), ("application/json", inputs)]


async def test_detail_by_taskid_and_by_tasktoken(make: Make) -> None:
    sb, client = await make(queue_seconds=0, run_seconds=(0, 0))
    started = await client.run(MODEL, {**INPUTS, "quality": "720p"})
    task = await wait_terminal(client, started.taskid)
    assert task.id == started.taskid and task.tasktoken == started.tasktoken
    assert task.status == "task_postprocess_end" and task.succeeded and task.is_terminal
    assert task.parameters["quality"] == "720p" and task.parameters["style"] == ""
    assert task.totalcost == pytest.approx(0.6) and task.createtime and task.endtime
    [output] = task.outputs
    [record] = sb.task_records()
    assert output.size == record["outputs"][0]["size"] and output.url == record["outputs"][0]["url"]
    by_token = await client.detail(tasktoken=started.tasktoken)
    assert by_token == task
    with pytest.raises(UsageError):
        await client.detail()
    with pytest.raises(UsageError):
        await client.detail(taskid="1", tasktoken="x")


async def test_list_tasks_pages_newest_first(make: Make) -> None:
    _sb, client = await make(max_tasks_list=2, queue_seconds=5)
    ids = [(await client.run(MODEL, {**INPUTS, "prompt": f"p{i}"})).taskid for i in range(3)]
    page = await client.list_tasks(limit=20)
    assert page.total == 3 and [t.id for t in page.tasks] == ids[::-1][:2]
    assert [t.parameters["prompt"] for t in page.tasks] == ["p2", "p1"]
    assert all(t.createtime for t in page.tasks)
    page = await client.list_tasks(start=2, limit=2)
    assert page.total == 3 and [t.id for t in page.tasks] == ids[:1]
    page = await client.list_tasks(start=3)
    assert page.total == 3 and page.tasks == ()
    assert (await client.list_tasks(model=MODEL)).total == 3
    assert (await client.list_tasks(model="Other/model")).total == 0


async def test_list_tasks_reads_a_large_page(make: Make) -> None:
    """100 tasks with long prompts: the answer spans many network chunks."""
    _sb, client = await make(queue_seconds=5)
    await asyncio.gather(
        *(client.run(MODEL, {**INPUTS, "prompt": f"{i} " + "x" * 2000}) for i in range(100))
    )
    page = await client.list_tasks(limit=100)
    assert page.total == 100 and len(page.tasks) == 100
    assert len({t.id for t in page.tasks}) == 100


async def test_cancel_a_queued_task_but_not_a_running_one(make: Make) -> None:
    sb, client = await make(queue_seconds=5)
    queued = await client.run(MODEL, INPUTS)
    task = await client.cancel(queued.taskid)
    assert task.id == queued.taskid and task.status == "task_cancel" and task.is_terminal
    assert not task.succeeded and task.failure_reason().startswith("cancelled")
    assert sb.stats()["in_flight"] == 0
    exc = await expect(InvalidInputError, client.cancel(queued.taskid))
    assert exc.code == 0 and "cancellable" in exc.message
    await expect(NotFoundError, client.cancel("424242"))

    sb, client = await make(queue_seconds=0, run_seconds=(5, 5))
    running = await client.run(MODEL, INPUTS)
    await wait_running(client, running.taskid)
    exc = await expect(InvalidInputError, client.cancel(running.taskid))
    assert exc.code == 0 and exc.status == 400 and "not in a cancellable state" in exc.message
    assert not exc.may_have_created and exc.endpoint == "/Task/Cancel"
    assert (await client.detail(taskid=running.taskid)).status not in TERMINAL


async def test_kill_by_taskid_and_by_tasktoken(make: Make) -> None:
    sb, client = await make(queue_seconds=0, run_seconds=(5, 5))
    one = await client.run(MODEL, {**INPUTS, "prompt": "one"})
    two = await client.run(MODEL, {**INPUTS, "prompt": "two"})
    await wait_running(client, one.taskid)
    await wait_running(client, two.taskid)
    killed = await client.kill(taskid=one.taskid)
    assert killed.id == one.taskid and killed.status == "task_cancel"
    killed = await client.kill(tasktoken=two.tasktoken)
    assert killed.id == two.taskid and killed.status == "task_cancel"
    assert [r["cancelled_by"] for r in sb.task_records()] == ["kill", "kill"]
    exc = await expect(InvalidInputError, client.kill(taskid=one.taskid))
    assert "killable" in exc.message
    await expect(NotFoundError, client.kill(tasktoken="no-such-token"))
    with pytest.raises(UsageError):
        await client.kill()


async def test_upload_a_png_and_refuse_a_bad_extension(make: Make, tmp_path: Path) -> None:
    sb, client = await make()
    image = tmp_path / "frame 1.png"
    image.write_bytes(PNG)
    uploaded = await client.upload(image)
    assert uploaded.url.startswith(sb.origin + "/files/")
    assert uploaded.name == "frame 1.png" and uploaded.size == len(PNG)
    async with client.session.get(uploaded.url) as r:
        assert r.status == 200 and r.content_type == "image/png"
        assert await r.read() == PNG
    started = await client.run(MODEL, {**INPUTS, "inputImageUrl": uploaded.url})
    assert sb.tasks[0].parameters["inputImageUrl"] == uploaded.url and started.taskid
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    exc = await expect(InvalidInputError, client.upload(notes))
    assert exc.code == 0 and "File type is not allowed" in exc.message
    assert exc.endpoint == "/File/Upload" and not exc.may_have_created
    assert sb.stats()["uploads"] == 1


def fetch(client: WiroClient, url: str, out: Path, size: int | None) -> Any:
    """An output into ``out/job.mp4`` the way the engine fetches one."""
    return download_verified(
        client.session, url, out, "job.mp4", expected_size=size,
        allow_http=client.allow_http_downloads,
    )  # fmt: skip


async def test_download_full_file_matches_the_served_sha256(make: Make, tmp_path: Path) -> None:
    sb, client = await make(queue_seconds=0, run_seconds=(0, 0))
    task = await wait_terminal(client, (await client.run(MODEL, INPUTS)).taskid)
    [output] = task.outputs
    result = await fetch(client, output.url, tmp_path, output.size)
    [served] = sb.task_records()[0]["outputs"]
    data = (tmp_path / "job.mp4").read_bytes()
    assert result.size == len(data) == served["size"] == output.size
    assert result.sha256 == hashlib.sha256(data).hexdigest() == served["sha256"]
    assert data[4:8] == b"ftyp"
    assert sb.stats()["downloads_completed"] == 1


async def test_download_resumes_with_range_after_truncation(make: Make, tmp_path: Path) -> None:
    sb, client = await make(queue_seconds=0, run_seconds=(0, 0))
    task = await wait_terminal(client, (await client.run(MODEL, INPUTS)).taskid)
    [output] = task.outputs
    assert output.size is not None
    sb.set_faults(FaultConfig(truncated_download=1.0))
    exc = await expect(IntegrityError, fetch(client, output.url, tmp_path, output.size))
    assert "cut short" in exc.message
    assert not (tmp_path / "job.mp4").exists()
    [part] = (tmp_path / ".partial").iterdir()
    have = part.stat().st_size
    assert 0 < have < output.size
    sb.set_faults(FaultConfig())
    served_before = sb.stats()["bytes_served"]
    result = await fetch(client, output.url, tmp_path, output.size)
    # only the missing tail travelled: the second request asked for a Range
    assert sb.stats()["bytes_served"] - served_before == output.size - have
    assert result.sha256 == sb.task_records()[0]["outputs"][0]["sha256"]
    assert hashlib.sha256((tmp_path / "job.mp4").read_bytes()).hexdigest() == result.sha256
    assert not part.exists()
    assert sb.stats()["faults_injected"] == {"truncated_download": 1}


# -- authentication --------------------------------------------------------------------------


async def test_api_key_only_project(make: Make) -> None:
    sb, client = await make(api_secret=None)
    assert sb.api_secret is None and client.credentials.api_secret is None
    assert set(client.auth_headers()) == {"x-api-key"}
    started = await client.run(MODEL, INPUTS)
    assert (await client.detail(taskid=started.taskid)).id == started.taskid
    assert (await client.list_tasks()).total == 1
    async with another_client(sb, WRONG_KEY, None) as wrong:
        exc = await expect(AuthError, wrong.list_tasks())
        assert exc.status == 401 and "not founded" in exc.message
        exc = await expect(AuthError, wrong.run(MODEL, INPUTS))
        assert not exc.may_have_created
    assert sb.stats()["tasks_created"] == 1


@pytest.mark.parametrize("style", ["http", "200"])
async def test_signature_project_auth_errors(make: Make, style: str) -> None:
    sb, client = await make(error_style=style)
    assert set(client.auth_headers()) == {"x-api-key", "x-nonce", "x-signature"}
    await client.list_tasks()
    status = 401 if style == "http" else 200
    cases = [
        (WRONG_KEY, SECRET, "Project authorization is not founded."),
        (KEY, None, "Project requires signature authentication."),
        (KEY, WRONG_SECRET, "Project authorization is not valid."),
    ]
    for key, secret, text in cases:
        async with another_client(sb, key, secret) as other:
            for call in (other.list_tasks(), other.run(MODEL, INPUTS)):
                exc = await expect(AuthError, call)
                assert exc.status == status and text in exc.message, exc
                assert not exc.may_have_created and exc.exit_code == 2
                if secret is None:
                    assert "signature" in exc.message.lower()
    assert sb.stats()["tasks_created"] == 0


# -- every error class -----------------------------------------------------------------------


@pytest.mark.parametrize("style", ["http", "200"])
async def test_error_codes_map_to_classes_in_both_styles(make: Make, style: str) -> None:
    sb, client = await make(error_style=style, queue_seconds=5)
    http = style == "http"

    exc = await expect(InvalidInputError, client.run(MODEL, {**INPUTS, "prompt": ""}))
    assert exc.code == 0 and "Request parameter [prompt] required" in exc.message
    assert exc.status == (400 if http else 200) and not exc.may_have_created
    exc = await expect(InvalidInputError, client.run(MODEL, {**INPUTS, "quality": "4k"}))
    assert exc.code == 0 and "[quality]" in exc.message and not exc.may_have_created
    exc = await expect(InvalidInputError, client.run("PixVerse/no-such-model", INPUTS))
    assert "Model not found" in exc.message and not exc.may_have_created

    exc = await expect(NotFoundError, client.detail(taskid="999999"))
    assert exc.code == 1 and exc.status == (404 if http else 200)
    assert "There is no task yet." in exc.message and not exc.retryable

    sb.set_concurrency_limit(1)
    await client.run(MODEL, INPUTS)
    exc = await expect(ConcurrencyLimitError, client.run(MODEL, INPUTS))
    assert exc.code == 96 and not exc.may_have_created and exc.retryable

    sb.set_concurrency_limit(10)  # (the balance formula would answer 96 first)
    sb.set_balance(0.01)
    exc = await expect(InsufficientBalanceError, client.run(MODEL, INPUTS))
    assert exc.code == 97 and not exc.may_have_created and exc.exit_code == 4
    assert sb.stats()["tasks_created"] == 1


async def test_rate_limited_carries_retry_after_when_given(make: Make) -> None:
    sb, client = await make(faults=FaultConfig(http_429=1.0))
    seen: set[float | None] = set()
    for _ in range(20):
        exc = await expect(RateLimitedError, client.detail(taskid="1"))
        assert exc.status == 429 and exc.retryable and not exc.may_have_created
        seen.add(exc.retry_after)
    assert seen == {1.0, None}  # the sandbox sends Retry-After on about half of them
    exc = await expect(RateLimitedError, client.run(MODEL, INPUTS))
    assert not exc.may_have_created  # a 429 is answered before anything is processed
    assert sb.stats()["tasks_created"] == 0


@pytest.mark.parametrize("fault", ["http_500", "http_502"])
async def test_server_errors_with_html_bodies(make: Make, fault: str) -> None:
    sb, client = await make(faults=FaultConfig(**{fault: 1.0}))
    status = int(fault[-3:])
    exc = await expect(ServerError, client.detail(taskid="1"))
    assert exc.status == status and exc.retryable and not exc.may_have_created
    assert "<html" not in exc.message and str(status) in exc.message
    exc = await expect(ServerError, client.run(MODEL, INPUTS))
    assert exc.status == status and exc.may_have_created  # conservative: a gateway failure
    assert sb.stats()["faults_injected"] == {fault: 2}


async def test_refused_connection_certainly_created_nothing() -> None:
    port = free_port()
    async with WiroClient(KEY, SECRET, base_url=f"http://127.0.0.1:{port}/v1") as client:
        exc = await expect(TransportError, client.run(MODEL, INPUTS))
        assert not exc.may_have_created and exc.retryable and exc.status is None
        exc = await expect(TransportError, client.detail(taskid="1"))
        assert not exc.may_have_created and f"127.0.0.1:{port}" in exc.message


@pytest.mark.parametrize("fault", ["drop_before_create", "drop_after_create"])
async def test_dropped_run_may_have_created(make: Make, fault: str) -> None:
    """The client cannot tell the two apart: both answer may_have_created=True."""
    sb, client = await make(faults=FaultConfig(**{fault: 1.0}))
    exc = await expect(TransportError, client.run(MODEL, {**INPUTS, "prompt": "dropped"}))
    assert exc.may_have_created and exc.retryable and exc.endpoint == f"/Run/{MODEL}"
    created = 1 if fault == "drop_after_create" else 0
    assert sb.stats()["tasks_created"] == created
    assert sb.stats()["responses"]["Run"] == {"dropped": 1}
    sb.set_faults(FaultConfig())
    page = await client.list_tasks()
    assert page.total == created
    assert [t.parameters["prompt"] for t in page.tasks] == ["dropped"] * created


async def test_no_other_endpoint_claims_it_may_have_created(
    make: Make, hostile: Hostile, tmp_path: Path
) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(PNG)
    sb, client = await make(queue_seconds=5)
    started = await client.run(MODEL, INPUTS)
    sb.set_faults(FaultConfig(http_500=1.0))
    calls: list[Awaitable[Any]] = [
        client.detail(taskid=started.taskid),
        client.detail(tasktoken=started.tasktoken),
        client.list_tasks(),
        client.cancel(started.taskid),
        client.kill(taskid=started.taskid),
        client.upload(image),
    ]
    for call in calls:
        exc = await expect(ServerError, call)
        assert not exc.may_have_created

    async def drop(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        return web.Response()

    paths = ("/Task/Detail", "/Task/List", "/Task/Cancel", "/Task/Kill", "/File/Upload")
    dropping = await hostile(dict.fromkeys(paths, drop))
    for call in (
        dropping.detail(taskid="1"),
        dropping.list_tasks(),
        dropping.cancel("1"),
        dropping.kill(tasktoken="t"),
        dropping.upload(image),
    ):
        exc = await expect(TransportError, call)
        assert not exc.may_have_created and "can be retried" in exc.message


async def test_a_timeout_may_have_created_only_on_run(hostile: Hostile) -> None:
    """No answer within the read timeout: the request was sent, so /Run may have created."""

    async def stall(_request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(2)
        return web.json_response({"result": True, "errors": []})

    client = await hostile({f"/Run/{MODEL}": stall, "/Task/Detail": stall}, read_timeout=0.2)
    started = time.monotonic()
    exc = await expect(TransportError, client.run(MODEL, INPUTS))
    assert exc.may_have_created and "may have been created" in exc.message
    exc = await expect(TransportError, client.detail(taskid="1"))
    assert not exc.may_have_created
    assert time.monotonic() - started < 1.5


# -- hostile replies -------------------------------------------------------------------------


async def test_replies_that_are_not_json_objects(hostile: Hostile, tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(PNG)
    client = await hostile(
        {
            "/Task/Detail": raw("{not json"),
            "/Task/List": answer([1, 2, 3]),
            "/Task/Cancel": raw("<html>ok</html>", content_type="text/html"),
            "/Task/Kill": answer({"errors": []}),  # neither a result nor an error
            "/File/Upload": raw(b"", status=200),
            f"/Run/{MODEL}": raw("{not json"),
        }
    )
    exc = await expect(ProtocolError, client.detail(taskid="1"))
    assert "not JSON" in exc.message and not exc.may_have_created
    exc = await expect(ProtocolError, client.list_tasks())
    assert "not an object" in exc.message
    await expect(ProtocolError, client.cancel("1"))
    exc = await expect(ProtocolError, client.kill(taskid="1"))
    assert "without a result" in exc.message
    await expect(ProtocolError, client.upload(image))
    exc = await expect(ProtocolError, client.run(MODEL, INPUTS))
    assert exc.may_have_created  # a 200 answered: the task may well exist


async def test_error_statuses_with_non_json_bodies(hostile: Hostile) -> None:
    client = await hostile(
        {
            "/Task/Detail": raw("<html>503</html>", 503, "text/html"),
            "/Task/List": raw("Request Timeout", 408, "text/plain"),
            "/Task/Kill": raw("Forbidden", 403, "text/plain"),
        }
    )
    exc = await expect(ServerError, client.detail(taskid="1"))
    assert exc.status == 503
    exc = await expect(ServerError, client.list_tasks())
    assert exc.status == 408
    exc = await expect(AuthError, client.kill(taskid="1"))
    assert exc.status == 403


async def test_huge_json_answers_are_refused_without_reading_them(hostile: Hostile) -> None:
    size = 20 * 1024 * 1024
    streamed: dict[str, Any] = {"bytes": 0, "finished": False}

    async def declared(_request: web.Request) -> web.StreamResponse:
        # a Content-Length far over the cap: refused before a byte of the body is read
        body = b'{"result": true, "tasklist": [' + b" " * size + b"]}"
        return web.Response(body=body, content_type="application/json")

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        response.content_type = "application/json"
        await response.prepare(request)
        piece = b" " * (64 * 1024)
        try:
            await response.write(b'{"result": true, "tasklist": [')
            while streamed["bytes"] < size:
                await response.write(piece)
                streamed["bytes"] += len(piece)
            await response.write(b"]}")
            streamed["finished"] = True
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            pass
        return response

    client = await hostile({"/Task/Detail": declared, "/Task/List": chunked}, max_json_bytes=1024)
    started = time.monotonic()
    exc = await expect(ProtocolError, client.detail(taskid="1"))
    assert "more than 1024 bytes" in exc.message
    exc = await expect(ProtocolError, client.list_tasks())
    assert "more than 1024 bytes" in exc.message
    assert time.monotonic() - started < 5
    await asyncio.sleep(0.2)
    assert not streamed["finished"]  # the client hung up instead of draining 20 MB


async def test_a_json_answer_longer_than_one_network_chunk(hostile: Hostile) -> None:
    tasks = [api_task(id=str(i), debugoutput="x" * 4000) for i in range(1, 600)]
    client = await hostile({"/Task/List": answer({"result": True, "errors": [], "total": "599",
                                                  "tasklist": tasks})})  # fmt: skip
    page = await client.list_tasks()
    assert page.total == 599 and len(page.tasks) == 599
    assert page.tasks[-1].debugoutput == "x" * 4000


async def test_tasklist_empty_or_about_another_task(hostile: Hostile) -> None:
    other = api_task(id="9999", socketaccesstoken="tok-9999")
    client = await hostile(
        {
            "/Task/Detail": answer(detail_body(other)),
            "/Task/Cancel": answer(detail_body()),
            "/Task/Kill": answer(detail_body(other)),
            "/Task/List": answer({"result": True, "errors": [], "tasklist": "nope"}),
        }
    )
    exc = await expect(ProtocolError, client.detail(taskid="2221"))
    assert "'9999'" in exc.message and "'2221'" in exc.message
    exc = await expect(ProtocolError, client.detail(tasktoken="tok-2221"))
    assert "'9999'" in exc.message and "token" in exc.message
    exc = await expect(ProtocolError, client.cancel("2221"))
    assert "empty task list" in exc.message
    await expect(ProtocolError, client.kill(taskid="2221"))
    await expect(ProtocolError, client.kill(tasktoken="tok-2221"))
    await expect(ProtocolError, client.list_tasks())
    # the task asked about is found among several, and a token-less record is accepted
    client = await hostile(
        {
            "/Task/Detail": answer(detail_body(other, api_task())),
            "/Task/Kill": answer(detail_body(api_task(socketaccesstoken=None))),
        }
    )
    assert (await client.detail(taskid="2221")).id == "2221"
    assert (await client.detail(tasktoken="tok-2221")).id == "2221"
    assert (await client.kill(tasktoken="tok-2221")).id == "2221"


async def test_numbers_strings_and_json_text_parameters(hostile: Hostile) -> None:
    as_numbers = api_task(
        id=2221,
        pexit=0,
        totalcost=1.2,
        elapsedseconds=12,
        createtime=1734513807,
        endtime="2026-07-24 09:10:11",
        parameters=json.dumps({"prompt": "p", "seed": 7, "Watermark": False}),
        outputs=[{"name": "0.mp4", "url": "https://cdn.example/0.mp4", "size": 123, "id": 5}],
    )
    as_strings = api_task(
        pexit="0",
        totalcost="1.200000000000",
        createtime="1734513807",
        parameters={"prompt": "p", "seed": "7", "Watermark": "false"},
        outputs=[{"name": "0.mp4", "url": "https://cdn.example/0.mp4", "size": "123"}],
    )
    for record in (as_numbers, as_strings):
        client = await hostile({"/Task/Detail": answer({**detail_body(record), "total": 1})})
        task = await client.detail(taskid="2221")
        assert task.id == "2221" and task.pexit == "0" and task.succeeded
        assert task.totalcost == pytest.approx(1.2) and task.createtime == 1734513807
        assert task.parameters == {"prompt": "p", "seed": "7", "Watermark": "false"}
        assert task.outputs[0].size == 123
    assert task.endtime is None  # the strings variant has no endtime
    client = await hostile(
        {
            f"/Run/{MODEL}": answer({"errors": [], "taskid": 2222, "result": "true"}),
            "/Task/List": answer({"result": 1, "errors": [], "total": 3, "tasklist": None}),
        }
    )
    assert (await client.run(MODEL, INPUTS)).taskid == "2222"
    page = await client.list_tasks()
    assert page.total == 3 and page.tasks == ()


async def test_success_without_the_fields_that_matter(hostile: Hostile, tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(PNG)
    client = await hostile(
        {
            f"/Run/{MODEL}": answer({"errors": [], "socketaccesstoken": "t", "result": True}),
            "/File/Upload": answer({"result": True, "errors": [], "list": [{"url": "file:///x"}]}),
            "/Task/Detail": answer(detail_body({"id": "2221"})),  # no status
        }
    )
    exc = await expect(ProtocolError, client.run(MODEL, INPUTS))
    assert exc.may_have_created and "without a task id" in exc.message
    await expect(ProtocolError, client.upload(image))
    await expect(ProtocolError, client.detail(taskid="2221"))


# -- nonces ----------------------------------------------------------------------------------


async def test_500_concurrent_signed_requests_use_500_nonces(make: Make) -> None:
    sb, client = await make(reject_reused_nonces=True)
    started = await client.run(MODEL, INPUTS)
    tasks = await asyncio.gather(*(client.detail(taskid=started.taskid) for _ in range(500)))
    assert {t.id for t in tasks} == {started.taskid}
    stats = sb.stats()
    assert stats["requests"]["Task/Detail"] == 500
    assert stats["responses"]["Task/Detail"] == {"200": 500}
    assert stats["nonces_reused"] == 0 and stats["nonces_rejected"] == 0


# -- secrets and usage -----------------------------------------------------------------------


async def test_reprs_and_logs_hide_the_credentials(
    make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    sb, client = await make()
    for text in (repr(client), str(client), repr(client.credentials), str(client.credentials)):
        assert_no_secret(text, "client repr")
    assert "signature" in repr(client.credentials)
    env = {"WIRO_API_KEY": KEY, "WIRO_API_SECRET": SECRET, "WIRO_API_BASE": sb.base_url}
    async with WiroClient.from_env(env) as from_env:
        assert_no_secret(repr(from_env), "client repr")
        assert from_env.base_url == sb.base_url
        await from_env.list_tasks()
    creds = Credentials.from_env({"WIRO_API_KEY": KEY})
    assert creds.api_secret is None and "api-key-only" in repr(creds)
    await client.run(MODEL, INPUTS)
    await expect(InvalidInputError, client.run(MODEL, {"prompt": "no image"}))
    # the autouse fixture checks every record; make sure there were some to check
    assert any(r.name == "batch_runner.client" for r in caplog.records)


async def test_usage_errors_before_any_request() -> None:
    with pytest.raises(UsageError, match="No API key"):
        WiroClient("")
    with pytest.raises(UsageError, match="ftp://x"):
        WiroClient(KEY, base_url="ftp://x")
    with pytest.raises(UsageError, match="'xml'"):
        WiroClient(KEY, body_format="xml")
    port = free_port()
    async with WiroClient(KEY, base_url=f"http://127.0.0.1:{port}/v1") as client:
        for model in ("", "PixVerse", "a/b/c", "a/b?x", "a /b"):
            exc = await expect(UsageError, client.run(model, INPUTS))
            assert not isinstance(exc, ApiError)


def test_socket_url_defaults_only_for_wiros_own_api() -> None:
    assert WiroClient("k").socket_url == "wss://socket.wiro.ai/v1"
    custom = WiroClient("k", base_url="http://127.0.0.1:9/v1")
    assert custom.socket_url == ""  # polling: never send a stand-in's tokens to Wiro
    explicit = WiroClient("k", base_url="http://127.0.0.1:9/v1", socket_url="ws://127.0.0.1:9/s")
    assert explicit.socket_url == "ws://127.0.0.1:9/s"


async def test_multipart_body_survives_values_that_look_like_framing(hostile: Hostile) -> None:
    """Values with line breaks, dashes and a would-be boundary arrive intact, in one part
    each; the whole body leaves in one piece."""
    from batch_runner.wiro.client import multipart_text_fields

    seen: list[dict[str, Any]] = []

    async def run(request: web.Request) -> web.StreamResponse:
        seen.append(dict(await request.post()))
        return web.json_response(
            {"errors": [], "taskid": "9", "socketaccesstoken": "t", "result": True}
        )

    tricky = {**INPUTS, "prompt": "line one\r\n--\r\n--boundary--\r\n\r\nContent-Disposition: x"}
    assert (await (await hostile({f"/Run/{MODEL}": run})).run(MODEL, tricky)).taskid == "9"
    assert seen == [tricky]
    body, ctype = multipart_text_fields({"a": "x", 'we"ird\nname': "y"})
    boundary = ctype.split("boundary=", 1)[1]
    assert body.count(boundary.encode()) == 3 and b'name="we%22ird%0Aname"' in body
