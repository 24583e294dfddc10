"""A small Wiro-like API on loopback whose replies a test can bend, for replies the sandbox
never produces (hostile URLs, lying sizes, wrong shapes, endless bodies...).

Tasks run ``run_seconds`` (``task_start``), then finish (``task_postprocess_end``, ``pexit``
"0", one output served from ``/cdn``); Kill and Cancel refuse a finished task, as the service
does. Each endpoint has a hook: ``async hook(request, standin) -> Response | None``;
``None`` means "answer normally". ``outputs`` decides what a finished task lists.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

Hook = Callable[[web.Request, "StandIn"], Awaitable[web.StreamResponse | None]]

VIDEO = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 80  # ~20 KB, not a real video


def json_response(data: Any, status: int = 200) -> web.Response:
    import json

    return web.json_response(data, status=status, dumps=lambda o: json.dumps(o))


class StandIn:
    """The stand-in service. ``hits`` counts requests per endpoint."""

    def __init__(
        self, *, body: bytes = VIDEO, tls: tuple[Path, Path] | None = None, run_seconds: float = 0
    ) -> None:
        self.body = body
        self.run_seconds = run_seconds
        self.tls = tls
        self.tasks: dict[str, dict[str, Any]] = {}
        self.hits: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()  # bytes written per endpoint by the big-body hooks
        self.run_hook: Hook | None = None
        self.detail_hook: Hook | None = None
        self.list_hook: Hook | None = None
        self.cdn_hook: Hook | None = None
        self.stop_hook: Hook | None = None  # /Task/Kill and /Task/Cancel
        self.outputs: Callable[[StandIn, dict[str, Any]], list[dict[str, Any]]] = default_outputs
        self._runner: web.AppRunner | None = None
        self.origin = ""

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()

    async def __aenter__(self) -> StandIn:
        app = web.Application()
        app.router.add_post("/v1/Run/{owner}/{model}", self._run)
        app.router.add_post("/v1/Task/Detail", self._detail)
        app.router.add_post("/v1/Task/List", self._list)
        app.router.add_post("/v1/Task/Kill", self._stop_task)
        app.router.add_post("/v1/Task/Cancel", self._stop_task)
        app.router.add_get("/cdn/{id}/{name:.*}", self._cdn)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        ctx = None
        if self.tls is not None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(*self.tls)
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=ctx)
        await site.start()
        port = self._runner.addresses[0][1]
        self.origin = f"{'https' if ctx else 'http'}://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # --- the API -------------------------------------------------------------------------

    def refresh(self, task: dict[str, Any]) -> dict[str, Any]:
        """Move a running task to its end once its time has come."""
        if task["status"] == "task_start" and time.time() >= task["created"] + self.run_seconds:
            task["status"] = "task_postprocess_end"
        return task

    def task_api(self, task: dict[str, Any]) -> dict[str, Any]:
        """The task as the service lists it: every scalar a string."""
        done = self.refresh(task)["status"] == "task_postprocess_end"
        return {
            "id": task["id"],
            "uuid": f"uuid-{task['id']}",
            "socketaccesstoken": task["token"],
            "parameters": task["parameters"],
            "status": task["status"],
            "pexit": "0" if done else "",
            "debugerror": task.get("debugerror", ""),
            "debugoutput": "",
            "createtime": str(int(task["created"])),
            "starttime": str(int(task["created"])),
            "endtime": str(int(task["created"])),
            "totalcost": "0.45" if done else "0",
            "elapsedseconds": "1.0000",
            "outputs": self.outputs(self, task) if done else [],
        }

    def envelope(self, tasks: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "result": True,
            "errors": [],
            "total": str(len(tasks)),
            "tasklist": [self.task_api(t) for t in tasks],
        }

    async def _fields(self, request: web.Request) -> dict[str, str]:
        if request.content_type == "multipart/form-data":
            form = await request.post()
            return {k: v for k, v in form.items() if isinstance(v, str)}
        data = await request.json()
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    async def _run(self, request: web.Request) -> web.StreamResponse:
        self.hits["Run"] += 1
        params = await self._fields(request)
        task_id = str(len(self.tasks) + 1)
        task = {
            "id": task_id,
            "token": f"token-{task_id}-{os.urandom(4).hex()}",
            "parameters": params,
            "created": time.time(),
            "status": "task_start",
        }
        self.tasks[task_id] = task
        if self.run_hook is not None and (answer := await self.run_hook(request, self)):
            return answer
        return json_response(
            {"result": True, "errors": [], "taskid": task_id, "socketaccesstoken": task["token"]}
        )

    async def _detail(self, request: web.Request) -> web.StreamResponse:
        self.hits["Detail"] += 1
        if self.detail_hook is not None and (answer := await self.detail_hook(request, self)):
            return answer
        fields = await request.json()
        task = self.tasks.get(str(fields.get("taskid", "")))
        if task is None:
            return json_response(
                {"result": False, "errors": [{"code": 1, "message": "There is no task yet."}]}, 404
            )
        return json_response(self.envelope([task]))

    async def _list(self, request: web.Request) -> web.StreamResponse:
        self.hits["List"] += 1
        if self.list_hook is not None and (answer := await self.list_hook(request, self)):
            return answer
        return json_response(
            self.envelope(sorted(self.tasks.values(), key=lambda t: -int(t["id"])))
        )

    async def _stop_task(self, request: web.Request) -> web.StreamResponse:
        self.hits["Kill"] += 1
        if self.stop_hook is not None and (answer := await self.stop_hook(request, self)):
            return answer
        fields = await request.json()
        task = self.tasks.get(str(fields.get("taskid", "")))
        if task is None:
            return json_response(
                {"result": False, "errors": [{"code": 1, "message": "There is no task yet."}]}, 404
            )
        if self.refresh(task)["status"] != "task_start":
            return json_response(
                {"result": False, "errors": [{"code": 0, "message": "Task is not killable."}]}, 400
            )
        task["status"] = "task_cancel"
        task["debugerror"] = "Task killed by user."
        return json_response(self.envelope([task]))

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        self.hits["cdn"] += 1
        if self.cdn_hook is not None and (answer := await self.cdn_hook(request, self)):
            return answer
        return await serve(request, self.body)


def default_outputs(standin: StandIn, task: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "id": f"file-{task['id']}",
            "name": "0.mp4",
            "contenttype": "video/mp4",
            "size": str(len(standin.body)),
            "url": f"{standin.origin}/cdn/{task['id']}/0.mp4",
        }
    ]


async def serve(request: web.Request, body: bytes) -> web.StreamResponse:
    """``body`` with ``Content-Length``, honouring a ``bytes=N-`` range."""
    start = 0
    wanted = request.headers.get("Range", "")
    if wanted.startswith("bytes=") and wanted.endswith("-"):
        start = int(wanted[6:-1])
        if start >= len(body):
            return web.Response(status=416, headers={"Content-Range": f"bytes */{len(body)}"})
        return web.Response(
            status=206,
            body=body[start:],
            headers={"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"},
            content_type="video/mp4",
        )
    return web.Response(body=body, content_type="video/mp4")


async def endless(
    request: web.Request, standin: StandIn, *, declared: int | None, key: str
) -> web.StreamResponse:
    """A huge JSON-labelled answer: ``declared`` bytes promised (None: chunked), streamed
    until the client stops reading; ``standin.sent[key]`` counts what was written."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    if declared is not None:
        response.content_length = declared
    await response.prepare(request)
    block = b'{"result": true, "tasklist": [' + b" " * (256 * 1024 - 30)
    try:
        while standin.sent[key] < (declared or 8 * 1024**3):
            await response.write(block)
            standin.sent[key] += len(block)
    except (ConnectionError, RuntimeError):
        pass
    return response
