"""The task WebSocket (``/socket/v1``): push every status change to its subscribers.

Status changes happen in timer callbacks, which cannot await, so each connection owns a
queue and a writer task: publishing is a non-blocking ``put_nowait`` and frames of one
connection always leave in order. The ``ws_drop`` fault closes a connection instead of
sending a frame, so a client must resubscribe or fall back to polling.

The channel can also misbehave as a whole (``socket_mode``): ``refuse`` answers the upgrade
with an HTTP error, ``silent`` accepts connections and subscriptions but sends nothing. The
``ws_final_withheld`` fault keeps back one task's final frames only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from aiohttp import WSMsgType, web

from . import jsonio
from .config import FaultConfig, check_socket_mode
from .stats import Counters
from .tasks import CANCEL, ERROR, FINAL_FRAMES, OUTPUT, POSTPROCESS_END, SandboxTask

_TEXTS = {
    "task_queue": "Task is in the queue.",
    "task_accept": "Task accepted.",
    "task_assign": "Task assigned to a worker.",
    "task_preprocess_start": "Preprocessing started.",
    "task_preprocess_end": "Preprocessing finished.",
    "task_start": "Task started.",
    "task_postprocess_start": "Postprocessing started.",
}


def message_for(task: SandboxTask, status: str) -> Any:
    """The ``message`` of a frame: outputs when finished, progress while generating."""
    if status == POSTPROCESS_END:
        return task.output_messages()
    if status in (CANCEL, ERROR):
        return task.debugerror or "Task cancelled."
    if status == OUTPUT:
        total = max(task.run_seconds, 0.0)
        done = total * (0.2 + 0.6 * task.progress / 100)
        progress = {
            "type": "progressGenerate",
            "percentage": str(task.progress),
            "stepCurrent": str(task.progress // 25),
            "stepTotal": "4",
            "elapsedTime": f"{done:.1f}",
            "remainingTime": f"{max(total - done, 0.0):.1f}",
        }
        return jsonio.dumps_text(progress) if task.progress_as_string else progress
    return _TEXTS.get(status, f"Task status: {status}")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def frame_for(task: SandboxTask, status: str) -> str:
    """A push frame; like the service's, it carries no ``pexit``."""
    return jsonio.dumps_text(
        {
            "type": status,
            "id": str(task.id),
            "tasktoken": task.token,
            "message": message_for(task, status),
            "result": True,
        }
    )


@dataclass(eq=False)
class _Connection:
    ws: web.WebSocketResponse
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    tokens: set[str] = field(default_factory=set)


class SocketHub:
    """Subscriptions by task token, and the WebSocket handler."""

    def __init__(
        self,
        counters: Counters,
        rng: random.Random,
        faults: Callable[[], FaultConfig],
        lookup: Callable[[str], SandboxTask | None],
        replay: bool,
        mode: str = "normal",
        refuse_status: int = 404,
    ) -> None:
        self._counters = counters
        self._rng = rng
        self._faults = faults
        self._lookup = lookup
        self._replay = replay
        self._subscribers: dict[str, set[_Connection]] = {}
        self._connections: set[_Connection] = set()
        self.mode = mode
        self.refuse_status = refuse_status

    def set_mode(self, mode: str, refuse_status: int | None = None) -> None:
        """Switch the channel's behaviour (ValueError for an unknown mode or status)."""
        status = self.refuse_status if refuse_status is None else refuse_status
        check_socket_mode(mode, status)
        self.mode, self.refuse_status = mode, status

    def _held_back(self, task: SandboxTask, status: str, subscribers: int) -> bool:
        """Whether a frame is not sent at all (counted per subscriber)."""
        if task.ws_final_withheld and status in FINAL_FRAMES:
            self._counters.ws_frames_withheld += subscribers
            return True
        if self.mode == "silent":
            self._counters.ws_frames_silenced += subscribers
            return True
        return False

    def publish(self, task: SandboxTask, status: str) -> None:
        """Queue a frame for every subscriber of ``task`` (cheap when there are none)."""
        subscribers = self._subscribers.get(task.token)
        if not subscribers or self._held_back(task, status, len(subscribers)):
            return
        frame = frame_for(task, status)
        for connection in subscribers:
            connection.queue.put_nowait(frame)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self._counters.ws_upgrades += 1
        if self.mode == "refuse":
            self._counters.ws_refused += 1
            status = self.refuse_status
            phrase = _phrase(status)
            return web.Response(status=status, reason=phrase, text=f"{status} {phrase}")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        connection = _Connection(ws)
        self._connections.add(connection)
        self._counters.ws_connections += 1
        writer = asyncio.create_task(self._write(connection))
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._on_text(connection, message.data)
        finally:
            for token in connection.tokens:
                subscribers = self._subscribers.get(token)
                if subscribers is not None:
                    subscribers.discard(connection)
                    if not subscribers:
                        del self._subscribers[token]
            self._connections.discard(connection)
            connection.queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await writer
        return ws

    def _on_text(self, connection: _Connection, text: str) -> None:
        try:
            data = json.loads(text)
        except ValueError:
            return
        if not isinstance(data, dict) or data.get("type") != "task_info":
            return
        token = str(data.get("tasktoken") or "")
        task = self._lookup(token) if token else None
        if task is None:
            self._counters.ws_unknown_tokens += 1
            return
        self._counters.ws_subscriptions += 1
        connection.tokens.add(token)
        self._subscribers.setdefault(token, set()).add(connection)
        if self._replay and not self._held_back(task, task.status, 1):
            connection.queue.put_nowait(frame_for(task, task.status))

    async def _write(self, connection: _Connection) -> None:
        ws = connection.ws
        while True:
            frame = await connection.queue.get()
            if frame is None or ws.closed:
                return
            rate = self._faults().ws_drop
            if rate and self._rng.random() < rate:
                self._counters.faults["ws_drop"] += 1
                await ws.close(code=1011, message=b"server going away")
                return
            try:
                await ws.send_str(frame)
            except (ConnectionError, RuntimeError):
                return
            self._counters.ws_frames_sent += 1

    async def close_all(self, timeout: float = 0.5) -> None:
        """Close every connection (server shutdown), not waiting long for slow peers."""

        async def close(connection: _Connection) -> None:
            with contextlib.suppress(Exception):
                await connection.ws.close(code=1001, message=b"server shutdown")

        closing = [asyncio.create_task(close(c)) for c in list(self._connections)]
        if closing:
            _done, pending = await asyncio.wait(closing, timeout=timeout)
            for task in pending:
                task.cancel()
