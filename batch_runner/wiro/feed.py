"""Completion by push: one shared WebSocket subscription feed for every task in flight.

The service pushes a frame per status change of each subscribed task. A frame only wakes
the task's waiter; the canonical result always comes from ``/Task/Detail`` (frames carry
no ``pexit``). The feed reconnects with backoff and resubscribes; while it is down, or
when it never comes up, waiters fall back to polling, so a lost frame costs latency, never
a result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass, field

import aiohttp
import orjson

log = logging.getLogger("batch_runner.feed")

#: Frame types after which the task may be terminal: worth one ``/Task/Detail``.
WAKING_TYPES = frozenset(
    {
        "task_postprocess_end",
        "task_cancel",
        "task_error",
        "task_error_full",
        "task_end",
    }
)


@dataclass
class Watch:
    """One subscribed task: ``event`` is set when a frame suggests it may be done."""

    tasktoken: str
    event: asyncio.Event = field(default_factory=asyncio.Event)
    last_type: str = ""
    frames: int = 0


class TaskFeed:
    """A shared WebSocket connection carrying ``task_info`` subscriptions."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        max_backoff: float = 30.0,
        give_up_after: int = 5,
    ) -> None:
        self._session = session
        self.url = url
        self._watches: dict[str, Watch] = {}
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None
        self._max_backoff = max_backoff
        self._give_up_after = give_up_after
        self.connected = asyncio.Event()
        #: False once the socket could not be reached ``give_up_after`` times in a row.
        self.available = True
        self.reconnects = 0
        self.frames = 0
        #: Bumped on every (re)connection, so waiters can re-check tasks after a gap.
        self.generation = 0

    @property
    def healthy(self) -> bool:
        return self.connected.is_set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="task-feed")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()

    async def watch(self, tasktoken: str) -> Watch:
        """Subscribe to a task's frames (idempotent)."""
        watch = self._watches.get(tasktoken)
        if watch is None:
            watch = self._watches[tasktoken] = Watch(tasktoken)
            await self._subscribe(tasktoken)
        return watch

    def unwatch(self, tasktoken: str) -> None:
        self._watches.pop(tasktoken, None)

    async def _subscribe(self, tasktoken: str) -> None:
        ws = self._ws
        if ws is None or ws.closed or not tasktoken:
            return
        try:
            await ws.send_str(orjson.dumps({"type": "task_info", "tasktoken": tasktoken}).decode())
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            log.debug("subscribe failed: %s", type(exc).__name__)

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                async with self._session.ws_connect(
                    self.url, heartbeat=20.0, max_msg_size=4 * 1024 * 1024
                ) as ws:
                    self._ws = ws
                    failures = 0
                    self.available = True
                    self.generation += 1
                    for token in list(self._watches):
                        await self._subscribe(token)
                    self.connected.set()
                    # Frames may have been missed while disconnected: let every waiter re-check.
                    if self.generation > 1:
                        for watch in self._watches.values():
                            watch.event.set()
                    await self._read(ws)
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                log.debug("socket error: %s", type(exc).__name__)
            self.connected.clear()
            self._ws = None
            failures += 1
            self.reconnects += 1
            if failures >= self._give_up_after:
                self.available = False
            delay = random.uniform(0, min(self._max_backoff, 0.5 * 2**failures))
            await asyncio.sleep(delay)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                self._on_frame(msg.data)
            elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                break

    def _on_frame(self, data: str | bytes) -> None:
        try:
            frame = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(frame, dict):
            return
        token = frame.get("tasktoken")
        kind = frame.get("type")
        if not isinstance(token, str) or not isinstance(kind, str):
            return
        self.frames += 1
        watch = self._watches.get(token)
        if watch is None:
            return
        watch.last_type = kind
        watch.frames += 1
        if kind in WAKING_TYPES:
            watch.event.set()
