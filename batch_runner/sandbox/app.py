"""HTTP routes of the sandbox: the Wiro ``/v1`` API, the CDN, the socket and the stats.

Requests flow through one middleware that counts them, injects gateway faults (429/500/502
before anything is processed, so no task is ever created by a faulted request) and turns
routing misses into the service's ``Error parsing url.`` answer. An unknown model on
``/Run`` answers HTTP 404 with code 0 ``Model not found`` (the URL parsed, the model did not);
on ``/Tool/Detail`` it is code 1 (see :mod:`.toolapi`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from . import jsonio, media, outputs
from .auth import Authenticator
from .bodies import BadBody, Body, FileTooLarge, read_body
from .config import SandboxConfig
from .inputs import InputError, resolve, to_api_str
from .models import MODELS, find_model
from .sockets import SocketHub
from .state import Project
from .stats import Counters, endpoint_of
from .tasks import CANCELLABLE, OutputRecord, SandboxTask
from .toolapi import Catalogue
from .uploads import UploadStore

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTML = {
    500: "<html><head><title>500 Internal Server Error</title></head><body><center>"
    "<h1>500 Internal Server Error</h1></center><hr><center>nginx</center></body></html>",
    502: "<html><head><title>502 Bad Gateway</title></head><body><center>"
    "<h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>",
    429: "<html><head><title>429 Too Many Requests</title></head><body><center>"
    "<h1>429 Too Many Requests</h1></center><hr><center>nginx</center></body></html>",
}
#: HTTP status for each API error code in the "http" error style.
_STATUS_FOR_CODE = {0: 400, 1: 404, 96: 400, 97: 400}


class Dropped(Exception):
    """The connection was closed on purpose, without an answer."""


def json_response(data: Any, status: int = 200) -> web.Response:
    return json_bytes_response(jsonio.dumps(data), status)


def json_bytes_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


class Api:
    """The emulated service: handlers plus everything they share."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.counters = Counters()
        self.project = Project(config, self.counters)
        self.auth = Authenticator(config.api_key, config.api_secret, config.reject_reused_nonces)
        self.uploads = UploadStore(config.max_upload_bytes)
        self.catalogue = Catalogue(MODELS, config.dynamicprice_style)
        self._rng_http = random.Random(f"{config.seed}/http")
        self._rng_run = random.Random(f"{config.seed}/run")
        self._rng_cdn = random.Random(f"{config.seed}/cdn")
        self.hub = SocketHub(
            self.counters,
            random.Random(f"{config.seed}/ws"),
            lambda: self.project.faults,
            self.project.by_token.get,
            config.ws_replay,
            config.socket_mode,
            config.socket_refuse_status,
        )
        self.project.publish = self.hub.publish
        self.started = time.time()

    # -- plumbing --------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=4 * 1024 * 1024)
        router = app.router
        router.add_post("/v1/Run/{owner}/{model}", self.run)
        router.add_post("/v1/Task/Detail", self.detail)
        router.add_post("/v1/Task/List", self.task_list)
        router.add_post("/v1/Task/Cancel", self.cancel)
        router.add_post("/v1/Task/Kill", self.kill)
        router.add_post("/v1/File/Upload", self.upload)
        router.add_post("/v1/Tool/Detail", self.tool_detail)
        router.add_post("/v1/Tool/List", self.tool_list)
        router.add_get("/cdn/{uuid}/{name:.+}", self.cdn)
        router.add_get("/files/{id}/{name:.+}", self.files)
        router.add_get("/socket/v1", self.hub.handle)
        router.add_get("/__sandbox/stats", self.stats_route)
        router.add_get("/__sandbox/tasks", self.tasks_route)

        async def on_shutdown(_app: web.Application) -> None:
            await self.hub.close_all()

        app.on_shutdown.append(on_shutdown)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        endpoint = endpoint_of(request.path)
        self.counters.requests[endpoint] += 1
        response: web.StreamResponse | None = None
        try:
            if request.path.startswith("/v1/"):
                response = self._http_fault()
            if response is None:
                response = await handler(request)
        except Dropped:
            self.counters.answered(endpoint, "dropped")
            return web.Response()  # the transport is closed: nothing is sent
        except web.HTTPException as exc:
            if exc.status not in (404, 405):
                self.counters.answered(endpoint, exc.status)
                raise
            if endpoint in ("cdn", "files"):
                response = web.Response(status=404, text="Not Found")
            else:
                response = self.error(0, "Error parsing url.", 404)
        self.counters.answered(endpoint, response.status)
        return response

    def error(self, code: int, message: str, status: int | None = None) -> web.Response:
        """The service's error body; HTTP 200 in the "200" error style."""
        if self.config.error_style == "200":
            status = 200
        elif status is None:
            status = _STATUS_FOR_CODE.get(code, 400)
        body = {"result": False, "errors": [{"code": code, "message": message}]}
        return json_response(body, status)

    def _http_fault(self) -> web.Response | None:
        faults = self.project.faults
        draw = self._rng_http.random()
        header = self._rng_http.random() < 0.5
        for status, rate in (
            (429, faults.http_429),
            (500, faults.http_500),
            (502, faults.http_502),
        ):
            if draw < rate:
                self.counters.faults[f"http_{status}"] += 1
                response = web.Response(status=status, text=_HTML[status], content_type="text/html")
                if status == 429 and header:
                    response.headers["Retry-After"] = "1"
                return response
            draw -= rate
        return None

    def _maybe_drop(self, request: web.Request, kind: str) -> None:
        if self._rng_run.random() < getattr(self.project.faults, kind):
            self.counters.faults[kind] += 1
            if request.transport is not None:
                request.transport.close()
            raise Dropped

    def _denied(self, request: web.Request) -> web.Response | None:
        message = self.auth.check(request.headers)
        self.counters.nonces_reused = self.auth.reused
        self.counters.nonces_rejected = self.auth.rejected
        return None if message is None else self.error(0, message, 401)

    async def _authorized_body(self, request: web.Request) -> Body | web.Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        try:
            return await read_body(request, self.config.max_upload_bytes)
        except BadBody:
            return self.error(0, "Request body is not valid.")
        except FileTooLarge as exc:
            return self.error(0, f"File size exceeds the limit of {exc.limit // 2**20} MB.")

    async def _authorized_fields(self, request: web.Request) -> dict[str, Any] | web.Response:
        body = await self._authorized_body(request)
        return body if isinstance(body, web.Response) else body.fields

    def _find(self, fields: dict[str, Any], *token_keys: str) -> SandboxTask | web.Response:
        taskid = to_api_str(fields.get("taskid")).strip()
        token = next((to_api_str(fields[k]).strip() for k in token_keys if fields.get(k)), "")
        if not taskid and not token:
            return self.error(0, "Request parameter [taskid] required")
        task = self.project.find(taskid, token)
        return task if task is not None else self.error(1, "There is no task yet.")

    # -- /v1 -------------------------------------------------------------------------------

    async def run(self, request: web.Request) -> web.StreamResponse:
        self._maybe_drop(request, "drop_before_create")
        body = await self._authorized_body(request)
        if isinstance(body, web.Response):
            return body
        model = find_model(request.match_info["owner"], request.match_info["model"])
        if model is None:
            return self.error(0, "Model not found", 404)
        try:
            resolved = resolve(model, body, self._store_run_file)
        except InputError as exc:
            return self.error(0, exc.message)
        parameters, counts = resolved.parameters, resolved.file_counts
        quote = model.pricing.quote(parameters, counts, model.output.count(parameters))
        refusal = self.project.admission_error(quote)
        if refusal is not None:
            return self.error(*refusal)
        task = self.project.create(
            model,
            parameters,
            quote,
            file_sources=resolved.file_sources,
            request_form=body.form,
        )
        self._maybe_drop(request, "drop_after_create")
        return json_response(
            {"errors": [], "taskid": str(task.id), "socketaccesstoken": task.token, "result": True}
        )

    def _store_run_file(self, name: str, data: bytes) -> str:
        """Keep a file sent to ``/Run`` like an upload; the URL the task echoes."""
        return self.uploads.url_of(self.uploads.put(name, data), self.project.origin)

    async def _task_of(self, request: web.Request, *token_keys: str) -> SandboxTask | web.Response:
        """The task a Detail/Cancel/Kill request names, or the error answer to send."""
        fields = await self._authorized_fields(request)
        if isinstance(fields, web.Response):
            return fields
        return self._find(fields, *token_keys)

    async def detail(self, request: web.Request) -> web.StreamResponse:
        task = await self._task_of(request, "tasktoken", "socketaccesstoken")
        if isinstance(task, web.Response):
            return task
        self.project.note_detail(task)
        body = {"total": "1", "errors": [], "tasklist": [task.to_api()], "result": True}
        return json_response(body)

    async def task_list(self, request: web.Request) -> web.StreamResponse:
        fields = await self._authorized_fields(request)
        if isinstance(fields, web.Response):
            return fields
        numbers: dict[str, int] = {}
        for name, default in (("start", 0), ("limit", 20)):
            text = to_api_str(fields.get(name, default)).strip() or str(default)
            if not text.isdigit():
                return self.error(0, f"Request parameter [{name}] must be a number.")
            numbers[name] = int(text)
        limit = min(max(numbers["limit"], 1), self.config.max_tasks_list)
        descending = to_api_str(fields.get("order", "DESC")).strip().upper() != "ASC"
        model = to_api_str(fields.get("model") or fields.get("modelslug") or "").strip()
        total, page = self.project.page(numbers["start"], limit, descending, model)
        now = time.time()
        body = {
            "result": True,
            "errors": [],
            "total": str(total),
            "tasklist": [t.to_api(now) for t in page],
        }
        return json_response(body)

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        task = await self._task_of(request, "tasktoken", "socketaccesstoken")
        if isinstance(task, web.Response):
            return task
        if task.status not in CANCELLABLE:
            return self.error(0, "Task is not in a cancellable state.")
        self.project.cancel(task, "cancel")
        return json_response({"errors": [], "tasklist": [task.to_api()], "result": True})

    async def kill(self, request: web.Request) -> web.StreamResponse:
        task = await self._task_of(request, "socketaccesstoken", "tasktoken")
        if isinstance(task, web.Response):
            return task
        if task.terminal:
            return self.error(0, "Task is not in a killable state.")
        self.project.cancel(task, "kill")
        return json_response({"errors": [], "tasklist": [task.to_api()], "result": True})

    async def upload(self, request: web.Request) -> web.StreamResponse:
        denied = self._denied(request)
        if denied is not None:
            return denied
        result = await self.uploads.receive(request, self.project.origin)
        if isinstance(result, str):
            return self.error(0, result)
        self.counters.uploads += 1
        return json_response({"result": True, "errors": [], "list": [result]})

    async def tool_detail(self, request: web.Request) -> web.StreamResponse:
        fields = await self._authorized_fields(request)
        if isinstance(fields, web.Response):
            return fields
        answer = self.catalogue.detail(fields)
        return self.error(*answer) if isinstance(answer, tuple) else json_bytes_response(answer)

    async def tool_list(self, request: web.Request) -> web.StreamResponse:
        fields = await self._authorized_fields(request)
        if isinstance(fields, web.Response):
            return fields
        answer = self.catalogue.listing(fields)
        return self.error(*answer) if isinstance(answer, tuple) else json_bytes_response(answer)

    # -- downloads, socket, stats ----------------------------------------------------------

    async def cdn(self, request: web.Request) -> web.StreamResponse:
        task = self.project.by_uuid.get(request.match_info["uuid"])
        output = None if task is None else _output_for(task, request)
        if task is None or output is None:
            return web.Response(status=404, text="Not Found")
        fault = None
        if request.method == "GET":
            draw = self._rng_cdn.random()
            faults = self.project.faults
            if draw < faults.truncated_download:
                fault = "truncated_download"
            elif draw < faults.truncated_download + faults.slow_download:
                fault = "slow_download"
            if fault is not None:
                self.counters.faults[fault] += 1
        response = await media.serve_bytes(
            request,
            outputs.render(output.contenttype, output.shape, task.uuid, task.id, output.index),
            content_type=output.contenttype,
            etag=f'"{output.sha256[:32]}"',
            fault=fault,
            slow_seconds=self.project.faults.slow_download_seconds,
            count_bytes=self.counters.add_bytes,
        )
        if request.method == "GET" and fault != "truncated_download" and response.status < 300:
            self.counters.downloads_completed += 1
        return response

    async def files(self, request: web.Request) -> web.StreamResponse:
        stored = self.uploads.get(request.match_info["id"])
        if stored is None:
            return web.Response(status=404, text="Not Found")
        return await media.serve_bytes(
            request,
            stored.data,
            content_type=stored.contenttype,
            etag=f'"{stored.id}"',
            fault=None,
            slow_seconds=0.0,
            count_bytes=self.counters.add_bytes,
        )

    def stats(self, brief: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "uptime_seconds": round(time.time() - self.started, 3),
            "error_style": self.config.error_style,
            "socket_mode": self.hub.mode,
            "faults_enabled": self.project.faults.enabled(),
        }
        data.update(self.counters.snapshot())
        data.update(self.project.snapshot(brief))
        return data

    async def stats_route(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.stats(brief=request.query.get("brief") in ("1", "true")))

    async def tasks_route(self, request: web.Request) -> web.StreamResponse:
        return json_response([t.to_record() for t in self.project.tasks.values()])


def _output_for(task: SandboxTask, request: web.Request) -> OutputRecord | None:
    """The output a CDN URL names: the only one whatever the name (as before several
    outputs existed), else the one whose URL ends in the same (percent-encoded) segment."""
    if len(task.outputs) == 1:
        return task.outputs[0]
    segment = request.rel_url.raw_path.rsplit("/", 1)[-1]
    return next((o for o in task.outputs if o.url.rsplit("/", 1)[-1] == segment), None)
