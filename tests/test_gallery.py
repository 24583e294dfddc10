"""The results gallery as files: escaping, no secrets, every kind of output, the comparison,
pages at 10,000 jobs, rewriting only what changed, published links, the live gallery of real
runs (library and CLI). The pages in a real browser: ``test_gallery_browser.py``."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import time
from pathlib import Path

import pytest
from clihelp import MakeBatch, write_manifest
from galleryhelp import (
    BAD_ERROR,
    DEAD_URL,
    HOSTILE,
    OUT2_HREF,
    build_case,
    card_ids,
    pages,
    png,
    synthetic,
)

import batch_runner
from batch_runner.errors import ManifestError, UnsafeDownloadError
from batch_runner.ledger.events import PublishedOutput, SavedOutput
from batch_runner.ledger.state import JobRecord, JobStatus, LedgerState, RunInfo
from batch_runner.manifest.job import Job
from batch_runner.manifest.loader import Manifest, load_manifest
from batch_runner.report.gallery import (
    EAGER_CARDS,
    GALLERY_NAME,
    Book,
    LiveGallery,
    render_gallery,
    write_gallery,
)
from batch_runner.report.gallery.page import Live
from batch_runner.sandbox import SandboxConfig

# --- the page as text ----------------------------------------------------------------------


async def test_page_escapes_user_text_and_holds_no_tokens(tmp_path: Path) -> None:
    out, manifest, tokens = await build_case(tmp_path)
    path = write_gallery(out, manifest)
    assert path == out / GALLERY_NAME
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no temp left
    assert [p.name for p in (out / "gallery").iterdir() if p.name.startswith(".")] == []
    every = pages(out)
    assert set(every) == {"index.html"} | {
        f"gallery/{v}-0001.html" for v in ("succeeded", "failed", "cancelled", "progress")
    }
    for html in every.values():
        assert HOSTILE not in html and "<script>alert" not in html and BAD_ERROR not in html
        assert "tasktoken" not in html and not any(t in html for t in tokens)
        # self-contained: the only network address in a page is the job's own input image
        assert set(re.findall(r"https?://[^\s\"'<>)]+", html)) <= {DEAD_URL}
    html = every["index.html"]
    assert html.count('<article class="card"') == 6
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in html
    assert "A cat &amp; a &quot;quoted&quot; ball" in html
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
    # the status views: the same cards, one page each, paths one folder further up
    failed = every["gallery/failed-0001.html"]
    assert card_ids(failed) == ["hostile"] and "&lt;img src=x" in failed
    progress = every["gallery/progress-0001.html"]
    assert card_ids(progress) == ["running-one", "pending-one"]
    assert 'src="../../images/cat.png"' in progress
    assert 'src="../ok-url.mp4"' in every["gallery/succeeded-0001.html"]
    assert '<a href="../index.html">all</a>' in failed and "data-refresh" not in failed


async def test_page_without_manifest_shows_the_ledger(tmp_path: Path) -> None:
    out, _, tokens = await build_case(tmp_path)
    html = write_gallery(out).read_text(encoding="utf-8")
    assert html.count('<article class="card"') == 6
    assert "&lt;img src=x" in html and f'src="{OUT2_HREF}"' in html
    assert '<p class="p">' not in html  # no prompts: the ledger does not hold them
    assert not any(t in html for t in tokens)


def _saved(path: str, kind: str | None, content_type: str | None = None) -> SavedOutput:
    return SavedOutput(path.rpartition("/")[2], path, 10, "0" * 64, content_type, kind)


def _succeeded(job_id: str, *outputs: SavedOutput, **fields: object) -> JobRecord:
    return JobRecord(job_id, JobStatus.SUCCEEDED, "f" * 64, outputs=outputs, cost=0.01,
                     **fields)  # type: ignore[arg-type]  # fmt: skip


def _state(*records: JobRecord) -> LedgerState:
    state = LedgerState(jobs={r.job_id: r for r in records})
    state.recount()
    return state


def test_every_kind_of_output_is_shown_as_what_it_is(tmp_path: Path) -> None:
    (tmp_path / "story.txt").write_text(
        f"Once upon a time {HOSTILE}\x07 there was a castle.\n" * 20
    )
    (tmp_path / "pics").mkdir()
    for i in range(3):
        (tmp_path / "pics" / f"{i}.png").write_bytes(png(8, 8, (i * 80, 10, 10)))
    pics = tuple(_saved(f"pics/{i}.png", "image", "image/png") for i in range(3))
    state = _state(
        _succeeded("clip", _saved("clip.mp4", "video", "video/mp4")),
        _succeeded("legacy", _saved("legacy.mp4", None)),  # a ledger from before kinds
        _succeeded("pics", *pics),
        _succeeded("voice", _saved("voice.wav", "audio", "audio/wav")),
        _succeeded("typed", _saved("typed.bin", None, "audio/mpeg")),
        _succeeded("story", _saved("story.txt", "text", "text/plain")),
        _succeeded("data", _saved("data.bin", "other", "application/octet-stream")),
    )
    html = render_gallery(tmp_path, state)
    cards = dict(zip(card_ids(html), html.split("<article")[1:], strict=True))
    player = '<video controls muted loop playsinline preload="metadata" src="{}"></video>'
    assert player.format("clip.mp4") in cards["clip"]
    assert player.format("legacy.mp4") in cards["legacy"]
    strip = re.findall(r'<a class="im" href="(pics/\d.png)"><img src="\1" alt="\1"', cards["pics"])
    assert strip == ["pics/0.png", "pics/1.png", "pics/2.png"]
    assert cards["pics"].count('<div class="strip">') == 1 and "<video" not in cards["pics"]
    assert '<audio controls preload="metadata" src="voice.wav"></audio>' in cards["voice"]
    assert '<audio controls preload="metadata" src="typed.bin"></audio>' in cards["typed"]
    excerpt = re.search(r'<pre class="tx">([^<]*)</pre>', cards["story"])
    assert excerpt is not None and excerpt.group(1).startswith("Once upon a time &lt;script&gt;")
    assert "\x07" not in excerpt.group(1) and excerpt.group(1).endswith("…")
    assert len(excerpt.group(1)) < 400
    assert '<a class="o" href="story.txt">story.txt</a>' in cards["story"]
    assert '<a class="o" href="data.bin">data.bin</a>' in cards["data"]
    assert "<video" not in cards["data"] and "<img" not in cards["data"]


def test_lazy_cards_hold_links_the_script_turns_into_media(tmp_path: Path) -> None:
    records = [_succeeded(f"clip-{i:03d}", _saved(f"clip-{i:03d}.mp4", "video")) for i in range(60)]
    records.append(_succeeded("pics", *(_saved(f"pics/{i}.png", "image") for i in range(2))))
    records.append(_succeeded("voice", _saved("voice.wav", "audio")))
    html = render_gallery(tmp_path, _state(*records))
    assert html.count("<video ") == EAGER_CARDS and html.count('<article class="card lz"') == 12
    assert '<a class="o lm" data-k="video" href="clip-059.mp4">' in html
    assert '<a class="im lm" data-k="image" href="pics/1.png">pics/1.png</a>' in html
    assert '<a class="o lm" data-k="audio" href="voice.wav">' in html and "<audio" not in html


def _matrix_manifest(tmp_path: Path) -> tuple[Manifest, LedgerState]:
    """Two prompts on three models (the third model missing one of them), as a model matrix
    leaves them: ids ``<prompt>__model-<name>``, the group the prompt's id."""
    models = ("PixVerse/image-to-video-v5", "klingai/kling-v3", "google/veo3.1")
    settings = {models[0]: {"quality": "540p"}, models[1]: {"mode": "std"}, models[2]: {}}
    jobs, records = [], []
    for p, prompt in enumerate(("castle", "lighthouse")):
        for model in models:
            if prompt == "lighthouse" and model == models[2]:
                continue
            job_id = f"{prompt}__model-{model.rpartition('/')[2]}"
            inputs = {"prompt": f"{prompt} at dusk", "duration": "5", **settings[model]}
            jobs.append(Job(job_id, len(jobs), inputs, None, "f" * 64, f"m.yaml:{p}", model=model,
                            group=prompt))  # fmt: skip
            records.append(_succeeded(job_id, _saved(f"{job_id}.mp4", "video"), model=model))
    manifest = Manifest(tmp_path / "m.yaml", models[0], tuple(jobs), None, None, {}, models)
    return manifest, _state(*records)


def test_comparison_puts_each_prompt_s_models_side_by_side(tmp_path: Path) -> None:
    manifest, state = _matrix_manifest(tmp_path)
    write_gallery(tmp_path, manifest, state=state)
    every = pages(tmp_path)
    index, compare = every["index.html"], every["gallery/compare-0001.html"]
    assert '<a href="gallery/compare-0001.html">side by side (3 models)</a>' in index
    rows = re.findall(r'<section class="row"><div class="h"><b>([^<]+)</b>', compare)
    assert rows == ["castle", "lighthouse"]
    castle, lighthouse = compare.split('<section class="row">')[1:]
    heads = r'<div class="cell"[^>]*><div class="h"><b>([^<]+)</b>'
    assert re.findall(heads, castle) == ["PixVerse/image-to-video-v5", "klingai/kling-v3",
                                         "google/veo3.1"]  # fmt: skip
    assert castle.count("<video ") == 3 and 'src="../castle__model-kling-v3.mp4"' in castle
    assert "quality 540p" in castle and "mode std" in castle and "duration 5" not in castle
    assert lighthouse.count("<video ") == 2 and "not run on this model" in lighthouse
    assert '<a href="../index.html">cards</a>' in compare


def test_long_prompt_is_cut(tmp_path: Path) -> None:
    job = Job("long", 0, {"prompt": "x" * 3000}, None, "f" * 64, "m:1")
    state = LedgerState(jobs={"long": JobRecord("long", JobStatus.PENDING, "f" * 64)})
    state.recount()
    manifest = Manifest(tmp_path / "m.yaml", "PixVerse/image-to-video-v5", (job,), None, None, {})
    html = render_gallery(tmp_path, state, manifest)
    assert "x" * 400 not in html and "x" * 399 + "…" in html


def test_the_gallery_folder_is_reserved(tmp_path: Path) -> None:
    from batch_runner.engine.naming import check_relative, output_paths

    (tmp_path / "m.yaml").write_text(
        "jobs:\n  - {id: Gallery, prompt: p, inputImageUrl: 'https://x/a.png'}\n"
    )
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path / "m.yaml")
    assert caught.value.issues[0].endswith(
        "field 'id': 'Gallery' is a file name the output folder uses itself"
    )
    with pytest.raises(UnsafeDownloadError):
        check_relative("gallery/all-0002.html")
    assert output_paths("gallery-walk", [("a.png", ""), ("b.png", "")])[0] == "gallery-walk/a.png"


# --- pages and rewrites at scale -----------------------------------------------------------


async def test_pages_at_10000_jobs_reach_every_job(tmp_path: Path) -> None:
    _, manifest, _ = await build_case(tmp_path)
    state, big = synthetic(10_001, manifest)
    out = tmp_path / "out"
    started = time.perf_counter()
    write_gallery(out, big, state=state)
    elapsed = time.perf_counter() - started
    every = pages(out)
    index = every["index.html"]
    size = sum(len(p.encode()) for p in every.values())
    print(f"\n10,001 jobs: {len(every)} pages, {size:,} bytes in all, index "
          f"{len(index.encode()):,} bytes, written in {elapsed:.2f} s")  # fmt: skip
    assert len(index.encode()) < 1024 * 1024 and elapsed < 5
    assert "secret-token" not in "".join(every.values())
    # the view of all jobs: the index then gallery/all-0002.html ... all-0021.html
    names = ["index.html"] + [f"gallery/all-{n:04d}.html" for n in range(2, 22)]
    assert set(names) <= set(every) and "gallery/all-0022.html" not in every
    ids = [i for name in names for i in card_ids(every[name])]
    assert ids == [job.id for job in big.jobs]
    assert len(card_ids(index)) == 500 and index.count("<video ") == 45
    assert index.count('class="o lm"') == 450 - 45
    # failed jobs (every tenth) have their own pages, in order
    failed = [i for n in (1, 2, 3) for i in card_ids(every[f"gallery/failed-{n:04d}.html"])]
    assert failed == [job.id for job in big.jobs[::10]]
    assert "gallery/failed-0004.html" not in every
    # the pager reaches the neighbours, the index lists every page
    last = every["gallery/all-0021.html"]
    assert '<a href="all-0020.html" rel="prev">' in last and 'rel="next"' not in last
    assert '<a href="gallery/all-0002.html" rel="next">' in index
    assert all(f'<a href="{name}">' in index for name in names[1:])


def _inodes(out: Path) -> dict[str, tuple[int, int]]:
    """Each page's inode and modification time: a replaced page has new ones."""
    found = {}
    for page in [out / "index.html", *(out / "gallery").iterdir()]:
        stat = page.stat()
        found[str(page.relative_to(out))] = (stat.st_ino, stat.st_mtime_ns)
    return found


async def test_a_rewrite_replaces_only_the_pages_whose_jobs_changed(tmp_path: Path) -> None:
    _, manifest, _ = await build_case(tmp_path)
    state, big = synthetic(10_000, manifest)
    out = tmp_path / "out"
    book = Book(out, big)
    first = book.write(state)
    assert first.pages == first.total_pages == 20 + 18 + 2 + 1 + 1
    before = _inodes(out)
    again = book.write(state)
    assert again.pages == 1  # the index (its counts), nothing else
    # another process (a resumed run, write_gallery) reads what is on disk from the pages
    assert Book(out, big).write(state).pages == 1
    (out / "gallery" / "all-0003.html").write_text("edited by hand")
    leftovers = [out / ".index.html.tmp", out / "gallery" / ".all-0002.html.tmp"]
    for left in leftovers:  # a writer killed in the middle of a page
        left.write_text("<!doctype html><html")
    assert Book(out, big).write(state).pages == 2
    assert not any(left.exists() for left in leftovers)
    assert Book(out, big, links="published").write(state).pages == first.pages
    book = Book(out, big)  # the pages on disk are published ones now: all written again
    assert book.write(state).pages == first.pages
    before = _inodes(out)
    # a succeeded job on page 7 of all gets a new record: its page, its succeeded page
    job_id = big.jobs[3003].id
    state.jobs[job_id] = dataclasses.replace(state.jobs[job_id], cost=0.5, updated_at=2.0)
    started = time.perf_counter()
    changed = book.write(state)
    elapsed = time.perf_counter() - started
    after = _inodes(out)
    replaced = {name for name in before if before[name] != after[name]}
    assert replaced == {"index.html", "gallery/all-0007.html", "gallery/succeeded-0006.html"}
    assert changed.pages == 3
    print(f"\n10,000 jobs: first write {first.seconds:.2f} s ({first.bytes:,} bytes), "
          f"no change {again.seconds * 1000:.0f} ms, one job {elapsed * 1000:.0f} ms")  # fmt: skip
    # the last failed job is now cancelled: the failed view loses its last card, the
    # cancelled view gains it; nothing before them moves
    last_failed = big.jobs[9990].id
    state.jobs[last_failed] = dataclasses.replace(
        state.jobs[last_failed], status=JobStatus.CANCELLED, updated_at=3.0
    )
    before = after
    book.write(state)
    after = _inodes(out)
    replaced = {name for name in before if before[name] != after[name]}
    assert replaced == {"index.html", "gallery/all-0020.html", "gallery/failed-0002.html",
                        "gallery/cancelled-0001.html"}  # fmt: skip
    # fewer jobs: the pages past the end go, on disk too
    small = LedgerState(jobs=dict(list(state.jobs.items())[:600]))
    small.recount()
    Book(out, dataclasses.replace(big, jobs=big.jobs[:600])).write(small)
    assert sorted(p.name for p in (out / "gallery").iterdir()) == [
        "all-0002.html", "cancelled-0001.html", "failed-0001.html", "progress-0001.html",
        "succeeded-0001.html", "succeeded-0002.html",
    ]  # fmt: skip


def test_live_pages_reload_while_they_can_change_static_pages_do_not(tmp_path: Path) -> None:
    done = [_succeeded(f"done-{i}", _saved(f"done-{i}.mp4", "video")) for i in range(3)]
    waiting = JobRecord("waiting", JobStatus.RUNNING, "f" * 64, service_status="task_start")
    state = _state(*done, waiting)
    book = Book(tmp_path, None, page_cards=1)
    book.write(state, live=Live(2.5, "<b>Run in progress</b> · 3 of 4", 120))
    live = pages(tmp_path)
    assert 'data-refresh="2.5" data-stale="120"' in live["index.html"]
    assert '<div class="live" role="status"><b>Run in progress</b> · 3 of 4' in live["index.html"]
    assert '<noscript><meta http-equiv="refresh" content="2"></noscript>' in live["index.html"]
    # a page reloads while it can still change: it holds an unfinished job, or (status
    # views) an unfinished job sorts before its end or its pager may still grow
    reloading = {name for name, html in live.items() if "data-refresh" in html}
    assert reloading == {
        "index.html", "gallery/all-0004.html", "gallery/succeeded-0002.html",
        "gallery/succeeded-0003.html", "gallery/failed-0001.html",
        "gallery/cancelled-0001.html", "gallery/progress-0001.html",
    }  # fmt: skip
    for name, html in live.items():
        assert ("Run in progress" in html) == (name in reloading), name
    assert "this page reloads every 2.5 s" in live["gallery/all-0004.html"]
    assert "data-stale" not in live["gallery/all-0004.html"]  # only the index is rewritten
    # the run ended: the pages that were live, and the index, are written once more
    ended = book.write(state)
    assert ended.pages == len(reloading)
    for name, html in pages(tmp_path).items():
        assert "data-refresh" not in html and "Run in progress" not in html, name
        assert 'http-equiv="refresh"' not in html and 'class="live"' not in html, name


def test_published_links_point_at_the_public_copies(tmp_path: Path) -> None:
    target, cdn = "s3://bucket/run", "https://cdn.example/run"

    def entry(out: SavedOutput, public: str | None, sha256: str | None = None) -> PublishedOutput:
        return PublishedOutput(out.name, out.path, f"{target}/{out.path}", out.size,
                               sha256 or out.sha256, "etag", public)  # fmt: skip

    shared = _saved("shared.mp4", "video")
    stale = _saved("stale.mp4", "video")
    bare = _saved("bare.mp4", "video")
    bad = _saved("bad.mp4", "video")
    pics = (_saved("pics/0.png", "image"), _saved("pics/1.png", "image"))
    state = _state(
        _succeeded("shared", shared, published=(entry(shared, f"{cdn}/shared.mp4"),)),
        _succeeded("stale", stale, published=(entry(stale, f"{cdn}/stale.mp4", "1" * 64),)),
        _succeeded("bare", bare, published=(entry(bare, None),)),
        _succeeded("bad", bad, published=(entry(bad, "javascript:alert(3)"),)),
        _succeeded("pics", *pics, published=(entry(pics[0], f"{cdn}/pics/0.png"),)),
        _succeeded("local", _saved("local.mp4", "video")),
    )  # fmt: skip
    state.runs.append(RunInfo(pid=1, started_at=1.0, publish=target))
    local = render_gallery(tmp_path, state)
    assert "cdn.example" not in local and "Links point at" not in local
    html = render_gallery(tmp_path, state, links="published")
    assert 'src="https://cdn.example/run/shared.mp4"' in html
    assert 'href="https://cdn.example/run/pics/0.png"' in html and 'href="pics/1.png"' in html
    for name in ("stale", "bare", "bad", "local"):  # changed since, no public URL, not http(s)
        assert f'src="{name}.mp4"' in html
    assert "javascript:" not in html
    assert f"Links point at the copies published to {target} where an output has a public" in html
    assert "s3:// do not open in a browser" in html
    nothing = _state(_succeeded("local", _saved("local.mp4", "video")))
    assert "Nothing in this folder has been published yet" in render_gallery(
        tmp_path, nothing, links="published"
    )
    with pytest.raises(batch_runner.UsageError, match="'local' or 'published'"):
        render_gallery(tmp_path, nothing, links="s3")


# --- the live gallery of real runs ---------------------------------------------------------

SLOW = SandboxConfig(queue_seconds=0.1, run_seconds=(0.6, 1.2))


async def test_live_gallery_of_a_library_run_goes_static_at_the_end(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.yaml", 8)
    out = tmp_path / "out"
    gallery = LiveGallery(interval=0.5)
    run = asyncio.create_task(
        batch_runner.run(manifest, out_dir=out, concurrency=2, sandbox=SLOW, reporter=gallery)
    )
    seen: list[str] = []
    while not run.done():
        await asyncio.sleep(0.1)
        index = out / "index.html"
        if index.exists() and (
            found := re.search(r"<b>(\d+)</b> of <b>8</b> finished", index.read_text())
        ):
            seen.append(found.group(1))  # fmt: skip
    result = await run
    assert result.exit_code == 0 and gallery.error is None
    assert len(set(seen)) >= 3 and seen[0] in ("0", "1") and int(seen[-1]) >= 6, seen
    assert len(gallery.writes) >= 4 and str(out) in gallery.finished
    for name, html in pages(out).items():
        assert "data-refresh" not in html and "Run in progress" not in html, name
    assert len(card_ids(pages(out)["gallery/succeeded-0001.html"])) == 8
    # a run that changes nothing writes nothing
    before = (out / "index.html").stat().st_ino
    again = LiveGallery(interval=0.5)
    result = await batch_runner.run(manifest, out_dir=out, sandbox=SLOW, reporter=again)
    assert (
        result.submitted == 0
        and again.writes == []
        and (out / "index.html").stat().st_ino == before
    )


async def test_cli_keeps_the_gallery_live_and_links_published_copies(
    tmp_path: Path, batch: MakeBatch
) -> None:
    b = await batch(jobs=6, config=SLOW)
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    proc = await b.start(
        "--concurrency", "2", "--gallery-interval", "0.5", "--gallery-links", "published",
        "--publish", bucket.as_uri(), "--publish-public-url", "https://cdn.example/batch",
    )  # fmt: skip
    banners = 0
    while proc.returncode is None:
        await asyncio.sleep(0.1)
        index = b.out / "index.html"
        if index.exists() and "Run in progress" in index.read_text():
            banners += 1
    _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert banners >= 3
    html = (b.out / "index.html").read_text()
    assert "Run in progress" not in html and "data-refresh" not in html
    assert html.count('src="https://cdn.example/batch/job-') == 6
    assert "Links point at the copies published to" in html
    done = await b.run("--gallery-interval", "0")  # nothing to do: the page stays as it is
    assert done.code == 0 and (b.out / "index.html").read_text() == html
    assert os.path.getsize(b.out / "index.html") > 0
