"""Headless Chromium for tests, driven over the DevTools protocol with aiohttp's WebSocket.

``async with chromium(profile) as cdp:`` starts ``/usr/bin/chromium`` in its own process
group (killed as a group on the way out) and yields a :class:`DevTools` on its first tab.
Tests call :func:`need_chromium` first: it skips them, with the reason, where Chromium is not
installed (CI installs the Debian package ``chromium``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

CHROMIUM = "/usr/bin/chromium"


def need_chromium() -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is not installed (Debian package 'chromium')")


#: What Chromium says when asked to evaluate in a page that is navigating.
_BETWEEN_DOCUMENTS = ("navigated or closed", "Cannot find context")


class DevTools:
    """A minimal Chrome DevTools Protocol client over aiohttp's WebSocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            future = self.waiting.pop(data.get("id", -1), None)
            if future is None:
                self.events.append(data)
            elif "error" in data:
                future.set_exception(RuntimeError(str(data["error"])))
            else:
                future.set_result(data.get("result", {}))

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        future = self.waiting[self.next_id] = asyncio.get_running_loop().create_future()
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        return await asyncio.wait_for(future, 15)

    async def js(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"JS failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 10) -> Any:
        """Until ``expression`` is truthy in the page. A page that reloads itself (the live
        gallery) may be between documents when asked: Chromium then answers "Inspected
        target navigated or closed" or "Cannot find context", and the question is asked
        again in the next document."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = await self.js(expression)
            except RuntimeError as exc:
                if not any(text in str(exc) for text in _BETWEEN_DOCUMENTS):
                    raise
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {expression}")
            await asyncio.sleep(0.1)

    async def open(self, url: str, timeout: float = 15) -> float:
        """Navigate to ``url`` and wait until it has loaded; returns the seconds it took."""
        started = time.perf_counter()
        await self.send("Page.navigate", url=url)
        await self.loaded(url, timeout)
        return time.perf_counter() - started

    async def loaded(self, url: str | None = None, timeout: float = 15) -> None:
        """Until the document (at ``url``, when given) is complete."""
        check = "document.readyState === 'complete'"
        if url is not None:
            check += f" && location.href === {json.dumps(url)}"
        await self.wait_for(check, timeout)

    def exceptions(self) -> list[dict[str, Any]]:
        """Uncaught exceptions in the page so far (needs ``Runtime.enable``)."""
        return [e for e in self.events if e.get("method") == "Runtime.exceptionThrown"]


@contextlib.asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[DevTools]:
    """Headless Chromium in its own process group, killed as a group on the way out."""
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-dev-shm-usage", "--mute-audio", "--hide-scrollbars",
        "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={profile}",
        "--remote-debugging-port=0", "--window-size=1280,900", "about:blank",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    assert proc.stderr is not None
    drain: asyncio.Task[bytes] | None = None
    try:
        port, seen = None, []
        async with asyncio.timeout(15):
            while port is None:
                line = (await proc.stderr.readline()).decode(errors="replace")
                if not line:
                    raise AssertionError(f"chromium exited: {''.join(seen)}")
                seen.append(line)
                if m := re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line):
                    port = int(m.group(1))
        drain = asyncio.create_task(proc.stderr.read())  # keep the pipe from filling up
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as resp:
                pages = [t for t in await resp.json() if t["type"] == "page"]
            async with http.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                tools = DevTools(ws)
                try:
                    yield tools
                finally:
                    tools.reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await tools.reader
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # helpers that outlived the browser
        if drain is not None:
            await drain
