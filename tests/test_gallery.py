"""The results gallery: escaping, no secrets, scale, and the page in a real headless Chromium.

The ledger is built through the real :class:`Ledger` from the events a run records, the
videos are the sandbox's sample MP4, the manifest is loaded from YAML: the page sees what it
sees after a real run.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import signal
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from batch_runner.ledger.events import (
    JobCancelled,
    JobFailed,
    JobRegistered,
    JobSucceeded,
    OutputSaved,
    RemoteOutput,
    SavedOutput,
    SubmitIntent,
    Submitted,
    TaskDone,
    TaskStatusSeen,
)
from batch_runner.ledger.state import JobRecord, JobStatus, LedgerState
from batch_runner.ledger.store import Ledger, read_ledger
from batch_runner.manifest.job import Job
from batch_runner.manifest.loader import Manifest, load_manifest
from batch_runner.report import gallery
from batch_runner.report.gallery import EAGER_CARDS, GALLERY_NAME, render_gallery, write_gallery

SAMPLE = Path(__file__).resolve().parents[1] / "batch_runner" / "sandbox" / "media" / "sample.mp4"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
HOSTILE = "<script>alert(1)</script>"
BAD_ERROR = '<img src=x onerror="alert(2)"> the model refused'
# an http(s) URL that fails at once offline (nothing listens on port 9)
DEAD_URL = "https://127.0.0.1:9/castle.jpg"
OUT2 = "ok-local #1 <&>.mp4"
OUT2_HREF = "ok-local%20%231%20%3C%26%3E.mp4"

MANIFEST = f"""\
model: PixVerse/image-to-video-v5
defaults:
  quality: 540p
  duration: 5
jobs:
  - id: ok-url
    inputImageUrl: {DEAD_URL}
    prompt: A castle at dawn, a slow drone orbit around the towers.
    quality: 720p
  - id: ok-local
    image: images/cat.png
    prompt: "A cat & a \\"quoted\\" ball"
    duration: 8
  - id: hostile
    inputImageUrl: {DEAD_URL}
    prompt: "{HOSTILE}"
  - id: cancelled-one
    inputImageUrl: {DEAD_URL}
    prompt: Waves on a beach.
  - id: running-one
    image: images/cat.png
    prompt: Still rendering.
  - id: pending-one
    image: images/cat.png
    prompt: Not submitted yet.
"""


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A valid one-colour PNG, so the test needs no image library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


async def build_case(root: Path) -> tuple[Path, Manifest, list[str]]:
    """A folder as a run leaves it: 2 succeeded, 1 failed, 1 cancelled, 1 running, 1 pending.

    Returns the folder, the manifest and the task tokens the ledger holds.
    """
    (root / "images").mkdir()
    (root / "images" / "cat.png").write_bytes(png(64, 48, (230, 140, 40)))
    (root / "batch.yaml").write_text(MANIFEST, encoding="utf-8")
    manifest = load_manifest(root / "batch.yaml")
    out = root / "out"
    jobs = {job.id: job for job in manifest.jobs}
    tokens = [f"tok-{i}-{os.urandom(8).hex()}" for i in range(len(jobs))]
    ledger = Ledger.open(out)
    try:
        for job in manifest.jobs:
            await ledger.record(JobRegistered(job=job.id, fingerprint=job.fingerprint))
        started = ["ok-url", "ok-local", "hostile", "cancelled-one", "running-one"]
        for i, job_id in enumerate(started):
            fingerprint = jobs[job_id].fingerprint
            await ledger.record(SubmitIntent(job=job_id, attempt=1, fingerprint=fingerprint))
            await ledger.record(Submitted(job=job_id, taskid=f"T{i}", tasktoken=tokens[i]))
        # the service names outputs "0.mp4"; the second file name needs URL quoting
        for i, (job_id, file) in enumerate([("ok-url", "ok-url.mp4"), ("ok-local", OUT2)]):
            remote = RemoteOutput(name="0.mp4", url=f"https://cdn.example/{i}/0.mp4")
            await ledger.record(TaskDone(job=job_id, outputs=(remote,), cost=0.3, taskid=f"T{i}"))
            shutil.copyfile(SAMPLE, out / file)
            data = SAMPLE.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            saved = OutputSaved(job=job_id, name=remote.name, path=file, size=len(data),
                                sha256=digest)  # fmt: skip
            await ledger.record(saved)
            await ledger.record(JobSucceeded(job=job_id))
        await ledger.record(JobFailed(job="hostile", error=BAD_ERROR, cost=0.05))
        await ledger.record(JobCancelled(job="cancelled-one", error="cancelled: --task-timeout"))
        await ledger.record(TaskStatusSeen(job="running-one", status="task_start", taskid="T4"))
    finally:
        await ledger.close()
    assert any(t in (out / "ledger.json").read_text() for t in tokens)  # the page must drop them
    return out, manifest, tokens


# --- the page as text ----------------------------------------------------------------------


async def test_page_escapes_user_text_and_holds_no_tokens(tmp_path: Path) -> None:
    out, manifest, tokens = await build_case(tmp_path)
    path = write_gallery(out, manifest)
    assert path == out / GALLERY_NAME
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no temp left
    html = path.read_text(encoding="utf-8")

    assert html.count('<article class="card"') == 6
    assert HOSTILE not in html and "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in html
    assert "A cat &amp; a &quot;quoted&quot; ball" in html
    assert "tasktoken" not in html and not any(t in html for t in tokens)
    # manifest order, statuses, media paths relative to the page
    ids = re.findall(r'<article class="card" data-g="(\w+)"><div class="h"><b>([^<]+)</b>', html)
    assert ids == [
        ("succeeded", "ok-url"), ("succeeded", "ok-local"), ("failed", "hostile"),
        ("cancelled", "cancelled-one"), ("progress", "running-one"), ("progress", "pending-one"),
    ]  # fmt: skip
    assert html.count('<video controls muted loop playsinline preload="metadata"') == 2
    assert 'src="ok-url.mp4"' in html and 'src="../images/cat.png"' in html
    assert f'src="{OUT2_HREF}"' in html and ">ok-local #1 &lt;&amp;&gt;.mp4</a>" in html
    assert f'src="{DEAD_URL}"' in html
    assert "720p · 5 s · $0.30" in html and "540p · 8 s · $0.30" in html
    assert "service: task_start" in html
    assert "<b>6</b> jobs · <b>2</b> succeeded · <b>1</b> failed · <b>1</b> cancelled" in html
    assert "spend <b>$0.65</b>" in html
    # self-contained: the only network address in the page is the job's own input image
    assert set(re.findall(r"https?://[^\s\"'<>)]+", html)) == {DEAD_URL}


async def test_page_without_manifest_shows_the_ledger(tmp_path: Path) -> None:
    out, _, tokens = await build_case(tmp_path)
    html = write_gallery(out).read_text(encoding="utf-8")
    assert html.count('<article class="card"') == 6
    assert "&lt;img src=x" in html and f'src="{OUT2_HREF}"' in html
    assert '<p class="p">' not in html  # no prompts: the ledger does not hold them
    assert not any(t in html for t in tokens)


def _synthetic(n: int, manifest: Manifest) -> tuple[LedgerState, Manifest]:
    """n jobs (90% succeeded) with realistic prompts and URLs, without 10,000 ledger writes."""
    state, jobs = LedgerState(), []
    prompt = "Animate the castle with a slow drone orbit, birds, drifting clouds and light. " * 3
    for i in range(n):
        job_id = f"castle__seed-{i}__duration-5"
        url = f"https://127.0.0.1:9/cdn.example.com/uploads/inputs/{i:06d}-castle.jpg"
        inputs = {"prompt": prompt, "inputImageUrl": url, "quality": "720p", "duration": "5"}
        jobs.append(Job(job_id, i, inputs, None, "f" * 64, f"batch.yaml:{i}"))
        ok = i % 10 != 0
        state.jobs[job_id] = JobRecord(
            job_id=job_id, status=JobStatus.SUCCEEDED if ok else JobStatus.FAILED,
            fingerprint="f" * 64, taskid=str(i), tasktoken="secret-token", cost=0.3,
            outputs=(SavedOutput(f"{job_id}.mp4", f"{job_id}.mp4", 1, "0" * 64),) if ok else (),
            error=None if ok else "The service reported an error: content policy",
        )  # fmt: skip
    state.recount()
    return state, dataclasses.replace(manifest, jobs=tuple(jobs))


async def test_page_size_at_10000_jobs(tmp_path: Path) -> None:
    _, manifest, _ = await build_case(tmp_path)
    state, big = _synthetic(10_000, manifest)
    started = time.perf_counter()
    path = write_gallery(tmp_path / "out", big, state=state)
    elapsed = time.perf_counter() - started
    html = path.read_text(encoding="utf-8")
    size = path.stat().st_size
    print(f"\n10,000 jobs: {size:,} bytes ({size / 10_000:.0f} B/card) in {elapsed:.2f} s")
    assert html.count('<article class="card') == 10_000
    # only the first cards hold media elements, the rest get them when scrolled to
    assert html.count("<video ") == 45 and html.count("<img ") == EAGER_CARDS
    assert html.count('class="o lv"') == 9_000 - 45
    assert html.count("<template>") == 9  # 1,000 live cards, the rest inert until scrolled to
    assert "secret-token" not in html
    assert size < 10 * 1024 * 1024 and elapsed < 5


def test_long_prompt_is_cut(tmp_path: Path) -> None:
    job = Job("long", 0, {"prompt": "x" * 3000}, None, "f" * 64, "m:1")
    state = LedgerState(jobs={"long": JobRecord("long", JobStatus.PENDING, "f" * 64)})
    state.recount()
    manifest = Manifest(tmp_path / "m.yaml", "PixVerse/image-to-video-v5", (job,), None, None, {})
    html = render_gallery(tmp_path, state, manifest)
    assert "x" * 400 not in html and "x" * 399 + "…" in html


# --- the page in a real browser ----------------------------------------------------------


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
        deadline = time.monotonic() + timeout
        while not (value := await self.js(expression)):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {expression}")
            await asyncio.sleep(0.1)
        return value


@contextlib.asynccontextmanager
async def chromium(profile: Path) -> Any:
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
        if "drain" in locals():
            await drain


PLAY_ALL = """(async () => {
  const out = [];
  for (const v of document.querySelectorAll('.card[data-g=succeeded] video')) {
    if (v.readyState < 1 && !v.error) await new Promise(r => {
      v.addEventListener('loadedmetadata', r, {once: true});
      v.addEventListener('error', r, {once: true});
      setTimeout(r, 8000);
    });
    const r = {src: v.getAttribute('src'), ready: v.readyState, duration: v.duration,
               width: v.videoWidth, error: v.error && v.error.code, played: false};
    if (!v.error) {
      try {
        await v.play();
        r.played = true;
        const t0 = v.currentTime;
        const t = Date.now();
        while (v.currentTime <= t0 && Date.now() - t < 5000)
          await new Promise(s => setTimeout(s, 50));
        r.advanced = v.currentTime > t0;
      } catch (e) { r.playError = String(e); }
    }
    out.push(r);
  }
  return out;
})()"""

VISIBLE = """[...document.querySelectorAll('.card')]
  .filter(c => getComputedStyle(c).display !== 'none').map(c => c.dataset.g)"""


@pytest.mark.timeout(30)
async def test_gallery_in_headless_chromium(tmp_path: Path) -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is not installed (Debian package 'chromium')")
    out, manifest, _ = await build_case(tmp_path)
    page = write_gallery(out, manifest)
    jobs = len(read_ledger(out).jobs)
    async with chromium(tmp_path / "profile") as cdp:
        await cdp.send("Page.enable")
        await cdp.send("Runtime.enable")
        watch = "window.__csp=[];document.addEventListener('securitypolicyviolation',"
        watch += "e=>__csp.push(e.violatedDirective+' '+e.blockedURI))"
        await cdp.send("Page.addScriptToEvaluateOnNewDocument", source=watch)
        await cdp.send("Emulation.setDeviceMetricsOverride", width=1280, height=900,
                       deviceScaleFactor=1, mobile=False)  # fmt: skip
        await cdp.send("Page.navigate", url=page.as_uri())
        await cdp.wait_for("document.readyState === 'complete'")

        assert await cdp.js("document.querySelectorAll('.card').length") == jobs == 6
        videos = await cdp.js(PLAY_ALL)
        print("\nvideos in chromium:", json.dumps(videos))
        assert [v["src"] for v in videos] == ["ok-url.mp4", OUT2_HREF]
        for v in videos:
            assert v["error"] is None, f"chromium cannot play {v['src']} (MediaError {v['error']})"
            assert v["ready"] >= 1 and v["width"] == 320 and abs(v["duration"] - 2) < 0.1
            assert v["played"] and v["advanced"], v
        # the offline input image falls back to its URL; the local one loads
        await cdp.wait_for("document.querySelectorAll('span.u').length === 3")
        assert await cdp.js("document.querySelector('span.u').textContent") == DEAD_URL
        loaded = "[...document.querySelectorAll('img.t')].every(i => i.naturalWidth === 64)"
        assert await cdp.wait_for(loaded)
        # the page's own script ran under its CSP; nothing was blocked, nothing threw
        assert await cdp.js("window.__csp") == []
        assert not [e for e in cdp.events if e.get("method") == "Runtime.exceptionThrown"]

        await cdp.js("document.querySelector('nav [data-f=failed]').click()")
        assert await cdp.js(VISIBLE) == ["failed"]
        await cdp.js("document.querySelector('nav [data-f=progress]').click()")
        assert await cdp.js(VISIBLE) == ["progress", "progress"]
        await cdp.js("document.querySelector('nav [data-f=all]').click()")
        assert len(await cdp.js(VISIBLE)) == 6

        await cdp.js("document.querySelectorAll('video').forEach(v => v.pause())")
        ARTIFACTS.mkdir(exist_ok=True)
        shot = await cdp.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        (ARTIFACTS / "gallery.png").write_bytes(base64.b64decode(shot["data"]))
        await cdp.send("Emulation.setDeviceMetricsOverride", width=390, height=844,
                       deviceScaleFactor=2, mobile=True)  # fmt: skip
        await cdp.wait_for("innerWidth === 390")
        assert await cdp.js("document.documentElement.scrollWidth <= innerWidth")  # no sideways
        shot = await cdp.send("Page.captureScreenshot", format="png")
        (ARTIFACTS / "gallery-phone.png").write_bytes(base64.b64decode(shot["data"]))


@pytest.mark.timeout(30)
async def test_lazy_cards_and_videos_appear_when_scrolled_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Template chunks join the page and lazy cards get their media as the reader scrolls."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is not installed (Debian package 'chromium')")
    monkeypatch.setattr(gallery, "CHUNK_CARDS", 60)  # 60 live cards, then chunks of 60
    _, manifest, _ = await build_case(tmp_path)
    state, big = _synthetic(200, manifest)
    page = write_gallery(tmp_path / "out", big, state=state)
    async with chromium(tmp_path / "profile") as cdp:
        await cdp.send("Page.enable")
        await cdp.send("Page.navigate", url=page.as_uri())
        await cdp.wait_for("document.readyState === 'complete'")
        assert await cdp.js("document.querySelectorAll('template').length") >= 1
        assert await cdp.js("document.querySelectorAll('video').length") == 45
        assert await cdp.js("document.querySelectorAll('img, span.u').length") == EAGER_CARDS
        scroll = "document.querySelector('.card:last-child').scrollIntoView(), "
        await cdp.wait_for(scroll + "document.querySelectorAll('main .card').length === 200")
        assert await cdp.js("document.getElementById('more')") is None
        await cdp.wait_for(scroll + "document.querySelector('.card:last-child video') !== null")
        # its image came too (and, offline, fell back to showing its URL)
        last = "document.querySelector('.card:last-child .r').firstChild"
        assert await cdp.wait_for(f"{last}.tagName === 'IMG' || {last}.tagName === 'SPAN'")
        assert await cdp.js("document.querySelectorAll('.card.lz').length") < 200 - EAGER_CARDS
