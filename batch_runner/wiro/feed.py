"""Completion by push: one shared WebSocket connection carrying every task's subscription.

What the protocol documents (and nothing more is assumed): connect, send
``{"type": "task_info", "tasktoken": ...}`` per task, receive frames
``{"type", "id", "tasktoken", "message", "result"}`` whose ``type`` is a status. Whether a
late subscriber gets a replay, the order of the frames and whether the final frame always
comes are not documented, so a frame is only ever a hint: it wakes the task's waiter, and
the canonical result always comes from ``/Task/Detail`` (frames carry no ``pexit``).

The feed keeps, per subscribed task (:class:`Watch`), the facts a watchdog needs: when the
last frame came, the recent gaps between frames, whether a final frame arrived, and whether
the task's status may have changed unseen (a new subscription after a connection came up).
It judges nothing: what the run does with a silent task is decided by the engine.

The connection's own health is :class:`FeedState` with a short reason ("HTTP 404 from the
socket URL"); every change is passed to ``on_state``. A refused or failing connection is
retried after :func:`reconnect_delay` (exponential, with jitter, up to a cap), for as long
as the run lasts; a connection that dropped after working is retried at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import aiohttp
import orjson

log = logging.getLogger("batch_runner.feed")

#: Frame types that say the task has ended: worth one ``/Task/Detail`` at once. Other
#: frames (``task_end``, ``task_output_full``, progress, unknown types) only show that the
#: task is alive.
FINAL_TYPES = frozenset({"task_postprocess_end", "task_cancel", "task_error", "task_error_full"})

#: How many recent gaps between a task's frames are kept (the watchdog's sense of normal).
RECENT_GAPS = 4
#: A connection counts as having worked (its drop is retried at once, not after a backoff)
#: once it delivered a frame or stayed up this long.
STABLE_AFTER = 10.0


class FeedState(StrEnum):
    """The socket connection, as the feed sees it."""

    #: not started (the feed starts with the first subscription)
    IDLE = "idle"
    #: the first attempt, or a new one right after a working connection dropped
    CONNECTING = "connecting"
    #: up: subscriptions are live
    CONNECTED = "connected"
    #: the last attempt failed (``reason`` says how); the next comes after a backoff
    UNAVAILABLE = "unavailable"


def reconnect_delay(
    failures: int, *, base: float = 1.0, cap: float = 60.0, rng: random.Random | None = None
) -> float:
    """Seconds to wait after ``failures`` failed attempts in a row before the next one.

    ``d = min(cap, base * 2 ** (failures - 1))``, drawn uniformly from ``[d / 2, d]`` so that
    many runners do not retry in step: with the defaults 0.5-1 s, 1-2, 2-4, ... then 30-60 s
    for as long as the socket stays unreachable. ``failures <= 0`` waits nothing.
    """
    if failures <= 0:
        return 0.0
    ceiling = min(cap, base * 2.0 ** min(failures - 1, 62))
    draw = (rng or random).uniform(0.5, 1.0)
    return ceiling * draw


def describe_failure(exc: BaseException) -> str:
    """A short operator-facing reason for a failed connection attempt (no URL, no secrets)."""
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        if exc.status and exc.status >= 400:
            return f"HTTP {exc.status} from the socket URL"
        return f"the socket URL answered HTTP {exc.status} without upgrading"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to the socket URL ({_os_reason(exc.os_error)})"
    if isinstance(exc, TimeoutError):
        return "the socket URL did not answer in time"
    if isinstance(exc, aiohttp.InvalidURL | ValueError):
        return "the socket URL is not valid"
    return f"socket error ({type(exc).__name__})"


def _os_reason(err: OSError | None) -> str:
    """``Connection refused``, ``Name or service not known``: the words, not the address."""
    if err is None:
        return "unknown error"
    if err.errno and err.errno > 0 and not isinstance(err, socket.gaierror):
        return os.strerror(err.errno)
    return err.strerror or type(err).__name__


@dataclass(eq=False)
class Watch:
    """One subscribed task. Times are ``time.monotonic()`` seconds.

    ``event`` is set when the waiter should look again: a final frame, a (re)subscription
    on a new connection, a lost connection, or a change of tracking mode (:meth:`poke`).
    """

    tasktoken: str
    event: asyncio.Event = field(default_factory=asyncio.Event)
    created_at: float = field(default_factory=time.monotonic)
    #: when the current subscription was sent on a live connection (None: not subscribed)
    subscribed_at: float | None = None
    #: the connection (``TaskFeed.generation``) the subscription was sent on; 0: none
    generation: int = 0
    #: a status request is due: the task was (re)subscribed and may have changed unseen
    needs_check: bool = False
    #: a status request after the current subscription saw the task still running, so its
    #: end happened while subscribed (set by the tracker; cleared on a new subscription)
    confirmed: bool = False
    frames: int = 0
    last_type: str = ""
    last_frame_at: float | None = None
    #: the last RECENT_GAPS gaps between this task's frames, seconds
    gaps: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_GAPS))
    #: a final frame (FINAL_TYPES) arrived
    final: bool = False
    #: the gap before the final frame, seconds (None if it was the first frame)
    final_gap: float | None = None

    @property
    def last_activity(self) -> float:
        """When this task last showed a sign of life: its last frame, or its subscription."""
        return max(self.last_frame_at or 0.0, self.subscribed_at or self.created_at)

    def poke(self) -> None:
        self.event.set()


class TaskFeed:
    """A shared WebSocket connection carrying ``task_info`` subscriptions.

    ``backoff_base``/``backoff_cap`` shape :func:`reconnect_delay`; ``on_state(state,
    reason)`` is called on every change of :attr:`state`. Counters (``attempts``,
    ``connections``, ``frames``, ``drops``) are for tests, benchmarks and the summary.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        connect_timeout: float = 20.0,
        heartbeat: float = 20.0,
        on_state: Callable[[FeedState, str], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._session = session
        self.url = url
        self._watches: dict[str, Watch] = {}
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.connect_timeout = connect_timeout
        self.heartbeat = heartbeat
        self.on_state = on_state
        self._rng = rng or random.Random()
        self.state = FeedState.IDLE
        self.reason = ""
        #: connection attempts made, of which ``connections`` succeeded
        self.attempts = 0
        self.connections = 0
        #: working connections that dropped
        self.drops = 0
        #: failed attempts in a row (the backoff's exponent)
        self.failures = 0
        self.frames = 0
        #: bumped on every connection; a watch subscribed on an older one is not live
        self.generation = 0

    @property
    def connected(self) -> bool:
        return self.state is FeedState.CONNECTED

    def is_live(self, watch: Watch) -> bool:
        """True while ``watch`` is subscribed on the connection that is up now."""
        return self.connected and watch.generation == self.generation

    def start(self) -> None:
        if self._task is None and not self._closing:
            self._task = asyncio.create_task(self._run(), name="task-feed")

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(Exception):
                await self._ws.close()

    async def watch(self, tasktoken: str) -> Watch:
        """Subscribe to a task's frames (idempotent); starts the connection if need be."""
        watch = self._watches.get(tasktoken)
        if watch is None:
            watch = self._watches[tasktoken] = Watch(tasktoken)
            self.start()
            if self.connected:
                await self._subscribe(watch)
        return watch

    def unwatch(self, tasktoken: str) -> None:
        self._watches.pop(tasktoken, None)

    def poke_all(self) -> None:
        """Wake every waiter so it reconsiders how to wait (the tracking mode changed)."""
        for watch in self._watches.values():
            watch.poke()

    async def _subscribe(self, watch: Watch) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            return
        try:
            await ws.send_str(
                orjson.dumps({"type": "task_info", "tasktoken": watch.tasktoken}).decode()
            )
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            log.debug("subscribe failed: %s", type(exc).__name__)
            return
        watch.subscribed_at = time.monotonic()
        watch.generation = self.generation
        watch.needs_check = True
        watch.confirmed = False
        watch.poke()

    def _set_state(self, state: FeedState, reason: str = "") -> None:
        if (state, reason) == (self.state, self.reason):
            return
        self.state, self.reason = state, reason
        log.debug("socket %s %s", state.value, reason)
        if self.on_state is not None:
            self.on_state(state, reason)

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        self.attempts += 1
        async with asyncio.timeout(self.connect_timeout):
            return await self._session.ws_connect(
                self.url, heartbeat=self.heartbeat, max_msg_size=4 * 1024 * 1024
            )

    async def _run(self) -> None:
        if self.state is FeedState.IDLE:
            self._set_state(FeedState.CONNECTING)
        while True:
            try:
                ws = await self._connect()
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                self.failures += 1
                self._set_state(FeedState.UNAVAILABLE, describe_failure(exc))
                await asyncio.sleep(
                    reconnect_delay(
                        self.failures, base=self.backoff_base, cap=self.backoff_cap, rng=self._rng
                    )
                )
                continue
            worked = await self._serve(ws)
            if self._closing:
                return
            if worked:
                # A working connection dropped: reconnect at once (a moment's jitter).
                self.failures = 0
                self.drops += 1
                self._set_state(FeedState.CONNECTING, "the connection dropped")
                delay = self._rng.uniform(0.0, min(0.5, self.backoff_base))
            else:
                # Accepted, then closed before any frame: a failed attempt for the backoff;
                # called unavailable once it keeps happening.
                self.failures += 1
                state = FeedState.UNAVAILABLE if self.failures >= 3 else FeedState.CONNECTING
                self._set_state(state, "the socket keeps closing right after connecting")
                delay = reconnect_delay(
                    self.failures, base=self.backoff_base, cap=self.backoff_cap, rng=self._rng
                )
            await asyncio.sleep(delay)

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> bool:
        """Subscribe everything on a new connection and read it until it ends; True if it
        worked (delivered a frame or stayed up STABLE_AFTER seconds)."""
        self._ws = ws
        self.connections += 1
        self.generation += 1
        opened = time.monotonic()
        frames_before = self.frames
        try:
            self._set_state(FeedState.CONNECTED)
            for watch in list(self._watches.values()):
                await self._subscribe(watch)
            await self._read(ws)
        except asyncio.CancelledError:
            raise
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            log.debug("socket error: %s", type(exc).__name__)
        finally:
            self._ws = None
            with contextlib.suppress(Exception):
                await asyncio.shield(ws.close())
            if not self._closing:
                # Frames may be lost from now on: every waiter reconsiders (polls meanwhile).
                for watch in self._watches.values():
                    watch.confirmed = False
                    watch.poke()
        return self.frames > frames_before or time.monotonic() - opened >= STABLE_AFTER

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                self._on_frame(msg.data)
            elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                break

    def _on_frame(self, data: str | bytes) -> None:
        """Note a frame for its task; garbage, foreign tokens and duplicates change nothing
        that matters (a duplicate final frame does not wake the waiter twice)."""
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
        now = time.monotonic()
        if watch.last_frame_at is not None:
            watch.gaps.append(now - watch.last_frame_at)
        watch.last_frame_at = now
        watch.last_type = kind
        watch.frames += 1
        if kind in FINAL_TYPES and not watch.final:
            watch.final = True
            watch.final_gap = watch.gaps[-1] if watch.frames > 1 and watch.gaps else None
            watch.poke()
