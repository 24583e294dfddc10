"""The gallery in a real headless Chromium, from ``file://`` as people open it: videos play,
images load, audio plays, the comparison shows three models' results for each prompt of
``manifests/compare.yaml``, pages reach the last of 10,001 jobs, and the live gallery of a
real run reloads itself, gains cards while the run goes and loses its banner at the end.

Skipped, with the reason, where ``/usr/bin/chromium`` is not installed (CI installs it).
Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from cdphelp import DevTools, chromium, need_chromium
from clihelp import REPO, run_cli, write_manifest
from galleryhelp import ARTIFACTS, DEAD_URL, OUT2_HREF, build_case, synthetic

import batch_runner
from batch_runner.ledger.store import read_ledger
from batch_runner.report.gallery import EAGER_CARDS, LiveGallery, write_gallery
from batch_runner.sandbox import SandboxConfig

FAST = SandboxConfig(queue_seconds=0.02, run_seconds=(0.05, 0.15))

#: Collects Content-Security-Policy violations of every page the tab opens.
CSP_WATCH = (
    "window.__csp=[];document.addEventListener('securitypolicyviolation',"
    "e=>__csp.push(e.violatedDirective+' '+e.blockedURI))"
)

PLAY_ALL = """(async (selector) => {
  const out = [];
  for (const v of document.querySelectorAll(selector)) {
    if (v.readyState < 1 && !v.error) await new Promise(r => {
      v.addEventListener('loadedmetadata', r, {once: true});
      v.addEventListener('error', r, {once: true});
      setTimeout(r, 8000);
    });
    const r = {src: v.getAttribute('src'), ready: v.readyState, duration: v.duration,
               width: v.videoWidth || 0, error: v.error && v.error.code, played: false};
    if (!v.error) {
      try {
        await v.play();
        r.played = true;
        const t0 = v.currentTime, t = Date.now();
        while (v.currentTime <= t0 && Date.now() - t < 5000)
          await new Promise(s => setTimeout(s, 50));
        r.advanced = v.currentTime > t0;
        v.pause();
      } catch (e) { r.playError = String(e); }
    }
    out.push(r);
  }
  return out;
})"""

IMAGES = """[...document.querySelectorAll(%s)].map(i => ({src: i.getAttribute('src'),
  done: i.complete, width: i.naturalWidth}))"""

FAILED_LINK = 'nav.f a[href$="failed-0001.html"]'
VISIBLE = """[...document.querySelectorAll('.card')]
  .filter(c => getComputedStyle(c).display !== 'none').map(c => c.dataset.g)"""


async def tab(cdp: DevTools) -> None:
    await cdp.send("Page.enable")
    await cdp.send("Runtime.enable")
    await cdp.send("Page.addScriptToEvaluateOnNewDocument", source=CSP_WATCH)


async def screenshot(cdp: DevTools, name: str, *, full: bool = True) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = await cdp.send("Page.captureScreenshot", format="png", captureBeyondViewport=full)
    (ARTIFACTS / name).write_bytes(base64.b64decode(shot["data"]))


async def phone(cdp: DevTools) -> None:
    await cdp.send("Emulation.setDeviceMetricsOverride", width=390, height=844,
                   deviceScaleFactor=2, mobile=True)  # fmt: skip
    await cdp.wait_for("innerWidth === 390")


async def play(cdp: DevTools, selector: str) -> list[dict[str, Any]]:
    media: list[dict[str, Any]] = await cdp.js(f"{PLAY_ALL}({json.dumps(selector)})")
    return media


async def clean(cdp: DevTools) -> None:
    """The page's own script ran under its CSP; nothing was blocked, nothing threw."""
    assert await cdp.js("window.__csp") == []
    assert cdp.exceptions() == []


@pytest.mark.timeout(60)
async def test_gallery_in_headless_chromium(tmp_path: Path) -> None:
    need_chromium()
    out, manifest, _ = await build_case(tmp_path)
    page = write_gallery(out, manifest)
    jobs = len(read_ledger(out).jobs)
    async with chromium(tmp_path / "profile") as cdp:
        await tab(cdp)
        await cdp.open(page.as_uri())
        assert await cdp.js("document.querySelectorAll('.card').length") == jobs == 6
        videos = await play(cdp, ".card[data-g=succeeded] video")
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
        await clean(cdp)
        await screenshot(cdp, "gallery.png")

        # the status filters are pages of their own
        await cdp.js("document.querySelector('nav.f a[href$=\"failed-0001.html\"]').click()")
        await cdp.loaded((out / "gallery" / "failed-0001.html").as_uri())
        assert await cdp.js(VISIBLE) == ["failed"]
        await cdp.js("document.querySelector('nav.f a[href$=\"progress-0001.html\"]').click()")
        await cdp.loaded((out / "gallery" / "progress-0001.html").as_uri())
        assert await cdp.js(VISIBLE) == ["progress", "progress"]
        assert await cdp.wait_for("[...document.querySelectorAll('img.t')].length === 2")
        assert await cdp.wait_for(loaded)  # ../../images/cat.png from gallery/
        await cdp.js("document.querySelector('nav.f a').click()")  # "all"
        await cdp.loaded(page.as_uri())
        assert len(await cdp.js(VISIBLE)) == 6
        await clean(cdp)

        await phone(cdp)
        assert await cdp.js("document.documentElement.scrollWidth <= innerWidth")  # no sideways
        await screenshot(cdp, "gallery-phone.png", full=False)


@pytest.mark.timeout(60)
async def test_lazy_cards_get_their_media_when_scrolled_to(tmp_path: Path) -> None:
    need_chromium()
    _, manifest, _ = await build_case(tmp_path)
    state, big = synthetic(200, manifest)
    page = write_gallery(tmp_path / "out", big, state=state)
    async with chromium(tmp_path / "profile") as cdp:
        await tab(cdp)
        await cdp.open(page.as_uri())
        assert await cdp.js("document.querySelectorAll('.card').length") == 200
        assert await cdp.js("document.querySelectorAll('video').length") == 45
        assert await cdp.js("document.querySelectorAll('img, span.u').length") == EAGER_CARDS
        scroll = "document.querySelector('.card:last-child').scrollIntoView(), "
        await cdp.wait_for(scroll + "document.querySelector('.card:last-child video') !== null")
        # its image came too (and, offline, fell back to showing its URL)
        last = "document.querySelector('.card:last-child .r').firstChild"
        assert await cdp.wait_for(f"{last}.tagName === 'IMG' || {last}.tagName === 'SPAN'")
        assert await cdp.js("document.querySelectorAll('.card.lz').length") < 200 - EAGER_CARDS
        await clean(cdp)


MIX = """
jobs:
  - id: pics
    model: wiro/text-to-image-sdxl
    prompt: a red fox in the snow
    samples: 3
  - id: voice
    model: wiro/kokoro_tts
    prompt: Hello from the batch.
    voice: af_bella
  - id: music
    model: wiro/music_gen
    prompt: calm piano
  - id: clip
    model: klingai/kling-v3
    prompt: from the castle to the lighthouse
    image: images/castle.png
"""


@pytest.mark.timeout(90)
async def test_images_load_and_audio_plays_after_a_real_run(tmp_path: Path) -> None:
    """A real run on the sandbox (pictures, speech, music, a video), its gallery live and
    then final; in Chromium every picture decodes and every player plays."""
    need_chromium()
    (tmp_path / "images").mkdir()
    for name in ("castle.png", "lighthouse.png"):
        source = REPO / "manifests" / "images" / name
        (tmp_path / "images" / name).write_bytes(source.read_bytes())
    (tmp_path / "mix.yaml").write_text(MIX, "utf-8")
    out = tmp_path / "out"
    gallery = LiveGallery(interval=0.5)
    result = await batch_runner.run(tmp_path / "mix.yaml", out_dir=out, sandbox=FAST,
                                    reporter=gallery)  # fmt: skip
    assert result.exit_code == 0 and gallery.error is None
    async with chromium(tmp_path / "profile") as cdp:
        await tab(cdp)
        await cdp.open((out / "index.html").as_uri())
        pictures = IMAGES % json.dumps(".strip img")
        await cdp.wait_for(f"{pictures}.every(i => i.done)")
        found = await cdp.js(pictures)
        print("\nimages in chromium:", json.dumps(found))
        assert [i["src"] for i in found] == ["pics/0.png", "pics/1.png", "pics/2.png"]
        assert all(i["width"] > 0 for i in found), found
        sounds = await play(cdp, "audio")
        print("audio in chromium:", json.dumps(sounds))
        assert [s["src"] for s in sounds] == ["voice.wav", "music.wav"]
        for s in sounds:
            assert s["error"] is None and s["ready"] >= 1 and s["duration"] > 0, s
            assert s["played"] and s["advanced"], s
        (video,) = await play(cdp, "video")
        assert video["src"] == "clip.mp4" and video["error"] is None and video["advanced"]
        assert await cdp.wait_for("document.querySelector('img.t').naturalWidth > 0")
        await clean(cdp)
        await screenshot(cdp, "gallery-media.png")


@pytest.mark.timeout(120)
async def test_comparison_of_compare_yaml_shows_three_models_per_prompt(tmp_path: Path) -> None:
    """``batch-runner run manifests/compare.yaml --sandbox``, as the README says, then the
    side-by-side view: three prompts, three models each, every video playable."""
    need_chromium()
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIRO_")}
    env.update(PYTHONPATH=str(REPO), NO_COLOR="1")
    done = await run_cli("run", "manifests/compare.yaml", "--sandbox", "--out", str(out), "-q",
                         env=env, timeout=100)  # fmt: skip
    assert done.code == 0, done.err
    assert "9 jobs: 9 succeeded" in done.out
    async with chromium(tmp_path / "profile") as cdp:
        await tab(cdp)
        await cdp.open((out / "index.html").as_uri())
        assert await cdp.js("document.querySelectorAll('.card').length") == 9
        await cdp.js("document.querySelector('nav.v a[href$=\"compare-0001.html\"]').click()")
        await cdp.loaded((out / "gallery" / "compare-0001.html").as_uri())
        rows = await cdp.js("""[...document.querySelectorAll('.row')].map(r => ({
            key: r.querySelector('.h b').textContent,
            prompt: r.querySelector('.p').textContent,
            models: [...r.querySelectorAll('.cell .h b')].map(b => b.textContent),
            statuses: [...r.querySelectorAll('.cell')].map(c => c.dataset.g),
            videos: r.querySelectorAll('.cell video').length}))""")
        print("\ncomparison in chromium:", json.dumps(rows))
        assert [r["key"] for r in rows] == ["castle", "castle-storm", "lighthouse"]
        for r in rows:
            assert r["models"] == ["PixVerse Image to Video v5", "Kling V3", "Veo 3.1"]
            assert r["statuses"] == ["succeeded"] * 3 and r["videos"] == 3
        assert rows[0]["prompt"].startswith("A slow drone orbit around the castle")
        videos = await play(cdp, ".cell video")
        assert len(videos) == 9
        for v in videos:
            assert v["error"] is None and v["width"] > 0 and v["advanced"], v
            assert v["src"].startswith("../") and v["src"].endswith(".mp4")
        assert await cdp.wait_for(
            "[...document.querySelectorAll('img.t')].every(i => i.naturalWidth > 0)"
        )
        await clean(cdp)
        await screenshot(cdp, "gallery-compare.png")
        # on a phone the cells of a row stack, each as wide as the row, nothing sideways
        await phone(cdp)
        assert await cdp.js("document.documentElement.scrollWidth <= innerWidth")
        widths = await cdp.js("""[...document.querySelector('.row').querySelectorAll('.cell')]
            .map(c => c.getBoundingClientRect())
            .map(b => [Math.round(b.left), Math.round(b.width)])""")
        assert len({left for left, _ in widths}) == 1 and min(w for _, w in widths) > 300
        await screenshot(cdp, "gallery-compare-phone.png", full=False)


@pytest.mark.timeout(120)
async def test_pages_reach_the_last_of_10001_jobs(tmp_path: Path) -> None:
    """Following "next" from the index reaches the last job, in the view of all jobs and in
    the failed view; each page opens quickly."""
    need_chromium()
    _, manifest, _ = await build_case(tmp_path)
    state, big = synthetic(10_001, manifest)
    index = write_gallery(tmp_path / "out", big, state=state)
    ids = "[...document.querySelectorAll('.card .h b')].map(b => b.textContent)"
    async with chromium(tmp_path / "profile") as cdp:
        await tab(cdp)
        opened = await cdp.open(index.as_uri())
        print(f"\nindex of 10,001 jobs opened in {opened:.2f} s")
        assert opened < 5
        for view, expected in (("all", big.jobs), ("failed", big.jobs[::10])):
            if view == "failed":
                await cdp.js(f"document.querySelector('{FAILED_LINK}').click()")
                await cdp.loaded()
            seen: list[str] = []
            slowest = 0.0
            while True:
                await cdp.wait_for("document.readyState === 'complete'")
                seen += await cdp.js(ids)
                url = await cdp.js("(document.querySelector('a[rel=next]') || {}).href || ''")
                if not url:
                    break
                slowest = max(slowest, await cdp.open(url))
            print(f"{view}: {len(seen)} cards, slowest page {slowest:.2f} s")
            assert seen == [job.id for job in expected]
            assert slowest < 5
        await clean(cdp)


ACTIVE = """({origin: performance.timeOrigin, refresh: document.body.dataset.refresh || null,
  banner: (document.querySelector('.live') || {}).textContent || null,
  cards: document.querySelectorAll('.card').length})"""


async def sample(cdp: DevTools) -> dict[str, Any] | None:
    """The page's state, or None while it is reloading."""
    try:
        found: dict[str, Any] = await cdp.js(f"document.readyState === 'complete' && {ACTIVE}")
    except (AssertionError, RuntimeError):
        return None
    return found or None


@pytest.mark.timeout(120)
async def test_live_gallery_reloads_gains_cards_and_ends_static(tmp_path: Path) -> None:
    """A real run on the sandbox with ``LiveGallery``: the open succeeded page reloads
    itself and gains cards while the run goes, the index's banner counts up, and once the
    run has ended the pages are static: no banner, no more reloading."""
    need_chromium()
    manifest = write_manifest(tmp_path / "m.yaml", 10)
    out = tmp_path / "out"
    config = SandboxConfig(queue_seconds=0.1, run_seconds=(1.2, 2.0))
    gallery = LiveGallery(interval=0.5)
    run = asyncio.create_task(
        batch_runner.run(manifest, out_dir=out, concurrency=2, sandbox=config, reporter=gallery)
    )
    try:
        async with chromium(tmp_path / "profile") as cdp:
            await tab(cdp)
            deadline = time.monotonic() + 20
            while not (out / "gallery" / "succeeded-0001.html").exists():
                assert time.monotonic() < deadline and not run.done()
                await asyncio.sleep(0.05)
            await cdp.open((out / "index.html").as_uri())
            first = await sample(cdp)
            assert first is not None and first["refresh"] == "0.5", first
            assert "Run in progress" in first["banner"] and "of 10 finished" in first["banner"]
            assert "ETA" in first["banner"] and "spend $" in first["banner"]
            banners = {first["banner"].split(" finished")[0]}
            origins = {first["origin"]}
            while len(origins) < 3 or len(banners) < 2:  # the index reloads, its counts move
                assert not run.done(), (origins, banners)
                if (s := await sample(cdp)) is not None:
                    origins.add(s["origin"])
                    banners.add(s["banner"].split(" finished")[0])
                await asyncio.sleep(0.1)
            await cdp.open((out / "gallery" / "succeeded-0001.html").as_uri())
            counts: list[int] = []
            reloads = set()
            while not run.done():
                if (s := await sample(cdp)) is not None and s["refresh"] == "0.5":
                    assert "Run in progress" in s["banner"]
                    counts.append(s["cards"])
                    reloads.add(s["origin"])
                await asyncio.sleep(0.1)
            result = await run
            assert result.exit_code == 0 and gallery.error is None
            print(f"\nlive: index banners {sorted(banners)}; succeeded cards seen {counts}")
            assert len(banners) >= 2 and len(reloads) >= 3
            assert counts == sorted(counts) and counts[-1] > counts[0], counts  # cards came
            # the run has ended: the page reloads once more into its static self...
            await cdp.wait_for(
                "document.readyState === 'complete' && !document.body.dataset.refresh"
                " && document.querySelectorAll('.card').length === 10",
                timeout=10,
            )
            final = await sample(cdp)
            assert final is not None and final["banner"] is None and final["refresh"] is None
            # ...and stays: no reload in three times the interval
            await asyncio.sleep(1.6)
            still = await sample(cdp)
            assert still is not None and still["origin"] == final["origin"]
            await cdp.open((out / "index.html").as_uri())
            assert await cdp.js("document.querySelector('.live')") is None
            assert "<b>10</b> succeeded" in (out / "index.html").read_text()
            await clean(cdp)
    finally:
        if not run.done():
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run
