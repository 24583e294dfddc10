"""``WiroClient``: the Wiro API over one ``aiohttp.ClientSession``.

Speaks both authentication modes (:mod:`.auth`), parses the string-typed replies into
:mod:`.records`, and turns every failure into one class of :mod:`batch_runner.errors` that
says what to do next (:mod:`.answers`). It does not retry: :mod:`.retry` decides that from
the error's class.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from ..errors import (
    NotFoundError,
    ProtocolError,
    TransportError,
    UsageError,
)
from .answers import parse_retry_after, success_body
from .auth import Credentials, NonceSource, sign
from .records import Submission, Task, TaskPage, UploadedFile, as_int

log = logging.getLogger("batch_runner.client")

#: The service's API and task socket.
DEFAULT_API_BASE = "https://api.wiro.ai/v1"
DEFAULT_SOCKET_URL = "wss://socket.wiro.ai/v1"

#: Largest JSON answer read into memory; anything longer is a hostile or broken reply.
MAX_JSON_BYTES = 16 * 1024 * 1024


def multipart_text_fields(fields: Mapping[str, str]) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body of text fields, and its Content-Type, as ``curl -F``
    sends them. Field names are escaped the way browsers do (``"`` and line breaks); the
    boundary is random and checked against every value, so no value can end a part early."""
    while True:
        boundary = secrets.token_hex(16)
        if not any(boundary in value for value in fields.values()):
            break
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="'
    parts = []
    for name, value in fields.items():
        safe = name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
        parts.append(f'{head}{safe}"\r\n\r\n{value}\r\n')
    parts.append(f"--{boundary}--\r\n")
    return "".join(parts).encode("utf-8"), f"multipart/form-data; boundary={boundary}"


class WiroClient:
    """An async client for the Wiro API. Use it as ``async with WiroClient(...) as client``.

    ``api_secret=None`` selects API-key-only mode; otherwise every request is signed with a
    distinct nonce. ``body_format`` chooses how ``/Run`` sends inputs: ``"multipart"`` (as
    the API page documents) or ``"json"`` (also accepted by the service).
    """

    def __init__(
        self,
        api_key: str,
        api_secret: str | None = None,
        *,
        base_url: str | None = None,
        socket_url: str | None = None,
        session: aiohttp.ClientSession | None = None,
        connect_timeout: float = 15.0,
        read_timeout: float = 60.0,
        connection_limit: int = 256,
        body_format: str = "multipart",
        max_json_bytes: int = MAX_JSON_BYTES,
    ) -> None:
        self.credentials = Credentials(api_key, api_secret or None)
        self.base_url = (base_url or DEFAULT_API_BASE).rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise UsageError(
                f"The API base URL must start with http:// or https://, not {self.base_url!r}."
            )
        # Wiro's own socket only for Wiro's own API: a custom API base without a socket URL
        # means polling, never sending that service's task tokens to socket.wiro.ai.
        default_api = self.base_url == DEFAULT_API_BASE.rstrip("/")
        self.socket_url = socket_url or (DEFAULT_SOCKET_URL if default_api else "")
        if body_format not in ("multipart", "json"):
            raise UsageError(f"body_format must be 'multipart' or 'json', not {body_format!r}.")
        self.body_format = body_format
        self.max_json_bytes = max_json_bytes
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_read=read_timeout
        )
        self._limit = connection_limit
        self._session = session
        self._owns_session = session is None
        self._nonces = NonceSource()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> WiroClient:
        """A client configured from ``WIRO_API_KEY``, ``WIRO_API_SECRET``, ``WIRO_API_BASE``
        and ``WIRO_SOCKET_URL``."""
        env = os.environ if environ is None else environ
        creds = Credentials.from_env(env)
        kwargs.setdefault("base_url", env.get("WIRO_API_BASE") or None)
        kwargs.setdefault("socket_url", env.get("WIRO_SOCKET_URL") or None)
        return cls(creds.api_key, creds.api_secret, **kwargs)

    def __repr__(self) -> str:
        return f"WiroClient(base_url={self.base_url!r}, credentials={self.credentials!r})"

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=self._limit)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
            self._owns_session = True
        return self._session

    async def __aenter__(self) -> WiroClient:
        _ = self.session
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()

    @property
    def allow_http_downloads(self) -> bool:
        """Plain-http output URLs are accepted only when the API itself is plain http."""
        return self.base_url.startswith("http://")

    def auth_headers(self) -> dict[str, str]:
        """Fresh authentication headers for one request."""
        headers = {"x-api-key": self.credentials.api_key}
        if self.credentials.api_secret:
            nonce = self._nonces.next()
            headers["x-nonce"] = nonce
            headers["x-signature"] = sign(
                self.credentials.api_key, self.credentials.api_secret, nonce
            )
        return headers

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> bytes | None:
        """The body, or None when it is longer than ``max_json_bytes``.

        ``StreamReader.read(n)`` answers whatever is buffered (one network chunk), not ``n``
        bytes, so a legitimate answer longer than a chunk needs a loop. A declared
        ``Content-Length`` over the cap is refused without reading anything.
        """
        limit = self.max_json_bytes + 1
        declared = resp.content_length
        if declared is not None and declared >= limit:
            return None
        chunks: list[bytes] = []
        size = 0
        while size < limit:
            chunk = await resp.content.read(limit - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return None if size >= limit else b"".join(chunks)

    async def _post(
        self,
        endpoint: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        form: aiohttp.FormData | aiohttp.MultipartWriter | None = None,
        body: tuple[bytes, str] | None = None,
        creates_task: bool = False,
    ) -> dict[str, Any]:
        """POST to ``endpoint`` and return the JSON object of a successful answer."""
        url = self.base_url + endpoint
        kwargs: dict[str, Any] = {"headers": self.auth_headers()}
        if body is not None:
            kwargs["data"], kwargs["headers"]["Content-Type"] = body
        elif form is not None:
            kwargs["data"] = form
        else:
            kwargs["data"] = orjson.dumps(dict(json_body or {}))
            kwargs["headers"]["Content-Type"] = "application/json"
        try:
            async with self.session.post(url, allow_redirects=False, **kwargs) as resp:
                status = resp.status
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                raw = await self._read_capped(resp)
        except aiohttp.ClientConnectorError as exc:
            raise TransportError(
                f"Could not connect to {self.base_url} for {endpoint} ({type(exc).__name__}); "
                "check the network and WIRO_API_BASE.",
                endpoint=endpoint,
                may_have_created=False,
            ) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise TransportError(
                f"The connection failed during {endpoint} ({type(exc).__name__}); "
                + ("the task may have been created." if creates_task else "it can be retried."),
                endpoint=endpoint,
                may_have_created=creates_task,
            ) from None
        log.debug(
            "POST %s -> %s (%s bytes)", endpoint, status, "over cap" if raw is None else len(raw)
        )
        return success_body(
            endpoint,
            status,
            raw,
            retry_after=retry_after,
            creates_task=creates_task,
            max_bytes=self.max_json_bytes,
        )

    async def run(self, model: str, inputs: Mapping[str, str | list[str]]) -> Submission:
        """Start a task. On error, ``may_have_created`` says whether it may exist anyway.

        A list value (the URLs of a ``combinefileinput``) is sent as a JSON list, so inputs
        holding one go as a JSON body whatever ``body_format`` says."""
        if not model or model.count("/") != 1 or any(c in model for c in "?#% "):
            raise UsageError(f"A model is named 'owner/name', not {model!r}.")
        endpoint = f"/Run/{model}"
        has_list = any(isinstance(v, list) for v in inputs.values())
        if self.body_format == "multipart" and not has_list:
            # The multipart/form-data body the API page documents, encoded at once: one
            # write on the socket instead of one per part (aiohttp's MultipartWriter).
            encoded = multipart_text_fields({k: str(v) for k, v in inputs.items()})
            body = await self._post(endpoint, body=encoded, creates_task=True)
        else:
            body = await self._post(endpoint, json_body=dict(inputs), creates_task=True)
        taskid = str(body.get("taskid") or "").strip()
        token = str(body.get("socketaccesstoken") or "").strip()
        if not taskid:
            raise ProtocolError(
                f"{endpoint} reported success without a task id; the task may have been created.",
                endpoint=endpoint,
                may_have_created=True,
            )
        return Submission(taskid=taskid, tasktoken=token)

    async def _task_list(self, endpoint: str, payload: Mapping[str, str]) -> tuple[Task, ...]:
        body = await self._post(endpoint, json_body=payload)
        raw = body.get("tasklist")
        if not isinstance(raw, list):
            raise ProtocolError(f"{endpoint} answered without a task list.", endpoint=endpoint)
        return tuple(Task.from_api(t, endpoint) for t in raw)

    async def _one_task(
        self,
        endpoint: str,
        payload: Mapping[str, str],
        taskid: str | None,
        tasktoken: str | None = None,
    ) -> Task:
        tasks = await self._task_list(endpoint, payload)
        if not tasks:
            raise ProtocolError(f"{endpoint} answered an empty task list.", endpoint=endpoint)
        if taskid is not None:
            for task in tasks:
                if task.id == taskid:
                    return task
            raise ProtocolError(
                f"{endpoint} answered about task {tasks[0].id!r}, "
                f"not the task asked for ({taskid!r}).",
                endpoint=endpoint,
            )
        if tasktoken is not None:
            # A record without a token cannot be checked; one with another token is not ours.
            for task in tasks:
                if task.tasktoken in ("", tasktoken):
                    return task
            raise ProtocolError(
                f"{endpoint} answered about task {tasks[0].id!r}, "
                "not the task whose token was given.",
                endpoint=endpoint,
            )
        return tasks[0]

    @staticmethod
    def _task_key(taskid: str | None, tasktoken: str | None, token_field: str) -> dict[str, str]:
        if bool(taskid) == bool(tasktoken):
            raise UsageError("Give exactly one of taskid or tasktoken.")
        return {"taskid": str(taskid)} if taskid else {token_field: str(tasktoken)}

    async def detail(self, *, taskid: str | None = None, tasktoken: str | None = None) -> Task:
        """The task's current record from ``/Task/Detail``."""
        payload = self._task_key(taskid, tasktoken, "tasktoken")
        return await self._one_task("/Task/Detail", payload, taskid or None, tasktoken or None)

    async def list_tasks(
        self, *, start: int = 0, limit: int = 100, model: str | None = None
    ) -> TaskPage:
        """One page of the project's tasks, newest first (``/Task/List``, limit at most 100)."""
        payload = {
            "type": "model",
            "sort": "id",
            "order": "DESC",
            "start": str(start),
            "limit": str(min(limit, 100)),
        }
        if model:
            payload["model"] = model
        body = await self._post("/Task/List", json_body=payload)
        raw = body.get("tasklist")
        if raw is None:
            raw = []
        if not isinstance(raw, list):
            raise ProtocolError(
                "/Task/List answered a task list that is not a list.", endpoint="/Task/List"
            )
        tasks = tuple(Task.from_api(t, "/Task/List") for t in raw)
        total = as_int(body.get("total"))
        return TaskPage(total=total if total is not None else len(tasks), tasks=tasks)

    async def cancel(self, taskid: str) -> Task:
        """Cancel a task that is still queued (``/Task/Cancel``)."""
        return await self._one_task("/Task/Cancel", {"taskid": str(taskid)}, str(taskid))

    async def kill(self, *, taskid: str | None = None, tasktoken: str | None = None) -> Task:
        """Stop a running task (``/Task/Kill``)."""
        payload = self._task_key(taskid, tasktoken, "socketaccesstoken")
        return await self._one_task("/Task/Kill", payload, taskid or None, tasktoken or None)

    async def tool_detail(self, model: str) -> dict[str, Any]:
        """The tool record of ``owner/name`` from ``/Tool/Detail``, unchecked (the caller
        validates its shape); NotFoundError when the service has no such model."""
        owner, _, project = model.partition("/")
        endpoint = "/Tool/Detail"
        body = await self._post(endpoint, json_body={"slugowner": owner, "slugproject": project})
        tools = body.get("tool")
        if isinstance(tools, dict):
            tools = [tools]
        if tools in (None, []):
            raise NotFoundError(f"{endpoint} knows no model {model!r}.", endpoint=endpoint)
        if not isinstance(tools, list) or not isinstance(tools[0], dict):
            raise ProtocolError(f"{endpoint} answered a tool that is not an object.",
                                endpoint=endpoint)  # fmt: skip
        first: dict[str, Any] = tools[0]
        return first

    async def tool_list(
        self,
        *,
        search: str = "",
        start: int = 0,
        limit: int = 20,
        categories: list[str] | None = None,
    ) -> tuple[int, list[dict[str, Any]]]:
        """One page of the model catalogue (``/Tool/List``, summary records): the total
        count and the records, unchecked."""
        payload: dict[str, Any] = {
            "start": str(start), "limit": str(max(1, min(limit, 100))), "search": search,
            "categories": list(categories or []), "sort": "", "order": "DESC", "summary": True,
        }  # fmt: skip
        body = await self._post("/Tool/List", json_body=payload)
        tools = body.get("tool")
        if tools is None:
            tools = []
        if not isinstance(tools, list):
            raise ProtocolError("/Tool/List answered a tool list that is not a list.",
                                endpoint="/Tool/List")  # fmt: skip
        records = [t for t in tools if isinstance(t, dict)]
        total = as_int(body.get("total"))
        return (total if total is not None else len(records)), records

    async def upload(self, path: Path) -> UploadedFile:
        """Upload a local file through ``/File/Upload``; its URL is what a file input (or
        ``inputImageUrl``) takes."""
        path = Path(path)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        data = path.read_bytes()
        form = aiohttp.FormData()
        form.add_field("file", data, filename=path.name, content_type=content_type)
        body = await self._post("/File/Upload", form=form)
        items = body.get("list")
        first = (
            items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else None
        )
        url = first.get("url") if first else None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ProtocolError(
                "/File/Upload answered without a usable file URL.", endpoint="/File/Upload"
            )
        return UploadedFile(
            url=url,
            name=str(first.get("name") or path.name) if first else path.name,
            size=as_int(first.get("size")) if first else None,
        )
