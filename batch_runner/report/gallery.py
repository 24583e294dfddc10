"""The results gallery: ``DIR/index.html``, one card per job, written after every run.

People look at a batch from a phone or a laptop, often offline and long after the run, so
the page is a single self-contained file: inline CSS and JS, no fonts or scripts from the
network, videos and local input images referenced by paths relative to the folder (the
folder can be copied or served as a whole). Only an input image given as a URL is fetched,
lazily; when it cannot load, the page shows the URL instead.

Everything that comes from a person or the service (prompts, errors, names, paths) is
escaped; task tokens never reach the page. A Content-Security-Policy allows only the page's
own script (by hash), so even a missed escape could not run code.

Scale: 100,000 jobs are rendered as 100,000 small cards (prompts cut to a per-page budget,
``content-visibility: auto`` so the browser lays out only what is on screen). Only the first
:data:`EAGER_CARDS` cards hold ``<img>`` and ``<video>`` elements from the start; later cards
hold placeholders and plain links to the files, which the script upgrades as the card nears
the screen. Beyond :data:`CHUNK_CARDS`, cards wait in inert ``<template>`` chunks that the
script adds as the reader scrolls (or filters). 100,000 live cards, let alone 100,000 media
players or lazy ``<img>`` elements, make Chromium take 25 s to minutes to open the page; this
way it takes seconds.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import time
from collections import Counter
from collections.abc import Iterator
from html import escape
from pathlib import Path
from urllib.parse import quote

from .._files import atomic_write
from ..engine.result import RunResult
from ..errors import BatchRunnerError
from ..ledger.layout import GALLERY_NAME
from ..ledger.shard import merged_state
from ..ledger.state import IN_FLIGHT, JobRecord, JobStatus, LedgerState, total_cost
from ..ledger.store import read_ledger
from ..manifest.job import Job
from ..manifest.loader import Manifest

#: Cards whose image and videos are in the HTML; later cards get them when scrolled to.
EAGER_CARDS = 50
#: Cards in the live page; the rest wait in inert ``<template>`` chunks of this size, added
#: as the reader scrolls (parsing 100,000 live cards takes Chromium ~25 s, inert ones ~3 s).
CHUNK_CARDS = 1000
#: Prompt characters shown on a card (the schema allows 2,048) ...
PROMPT_CHARS = 400
#: ... and in all cards together, so 100,000 jobs stay far below 100 MB (200 chars each).
PROMPT_BUDGET = 20_000_000

#: Filter groups in button order; every status not finished counts as "in progress".
_GROUPS = (
    ("succeeded", "succeeded"),
    ("failed", "failed"),
    ("cancelled", "cancelled"),
    ("progress", "in progress"),
)
_DONE = {JobStatus.SUCCEEDED: "succeeded", JobStatus.FAILED: "failed",
         JobStatus.CANCELLED: "cancelled"}  # fmt: skip

_CSS = """
:root{color-scheme:light dark;--bg:#f3f4f6;--fg:#1f2430;--card:#fff;--mute:#5f6775;--line:#dcdfe5}
@media(prefers-color-scheme:dark){:root{--bg:#111418;--fg:#e5e7eb;--card:#1b2027;--mute:#9aa3ae;
--line:#2d343e}}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
background:var(--bg);color:var(--fg)}
.top{position:sticky;top:0;z-index:1;padding:10px 16px;background:var(--bg);
border-bottom:1px solid var(--line)}
h1{font-size:18px;margin:0}
.sum{margin:2px 0 8px;color:var(--mute)}
.sum b{color:var(--fg)}
nav{display:flex;flex-wrap:wrap;gap:6px}
nav button{font:inherit;padding:5px 12px;border-radius:16px;border:1px solid var(--line);
background:var(--card);color:inherit;cursor:pointer}
nav button[aria-pressed=true]{background:#2563eb;border-color:#2563eb;color:#fff}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:12px;
padding:12px 16px}
.card{min-width:0;background:var(--card);border:1px solid var(--line);border-radius:10px;
padding:10px;content-visibility:auto;contain-intrinsic-size:auto 360px}
.h{display:flex;justify-content:space-between;align-items:center;gap:8px}
.h b{overflow-wrap:anywhere}
.b{font-style:normal;font-size:12px;padding:1px 9px;border-radius:10px;color:#fff;
background:#b45309;white-space:nowrap}
[data-g=succeeded] .b{background:#15803d}[data-g=failed] .b{background:#b91c1c}
[data-g=cancelled] .b{background:#6b7280}
.r{display:flex;gap:10px;margin:8px 0 4px}
.t{display:block;flex:none;width:72px;height:72px;object-fit:cover;border-radius:6px;background:var(--line)}
.u{flex:none;width:72px;height:72px;overflow:hidden;padding:4px;border-radius:6px;
background:var(--line);font-size:10px;line-height:1.3;color:var(--mute);overflow-wrap:anywhere}
.p{margin:0;display:-webkit-box;-webkit-line-clamp:4;-webkit-box-orient:vertical;
overflow:hidden;overflow-wrap:anywhere;cursor:pointer}
.p.x{-webkit-line-clamp:unset}
.m{margin:4px 0;font-size:12px;color:var(--mute)}
.e{margin:4px 0;color:#dc2626;overflow-wrap:anywhere}
video{display:block;width:100%;aspect-ratio:16/9;margin-top:6px;background:#000;
border-radius:6px}
.o{font-size:12px;color:var(--mute);overflow-wrap:anywhere}
body[data-f=succeeded] .card:not([data-g=succeeded]),body[data-f=failed] .card:not([data-g=failed]),
body[data-f=cancelled] .card:not([data-g=cancelled]),
body[data-f=progress] .card:not([data-g=progress]){display:none}
@media(max-width:480px){.top{position:static;padding:8px 10px}
main{grid-template-columns:1fr;padding:8px 10px}}
"""

# Listeners on document in the capture phase, registered before the body is parsed, so
# an input image or a video that fails early is still caught.
_JS = """
function txt(s){try{return decodeURI(s)}catch(e){return s}}
document.addEventListener('error',function(e){var t=e.target,n;
if(t.tagName==='IMG'){n=document.createElement('span');n.className='u';
n.textContent=txt(t.getAttribute('src'));t.replaceWith(n)}
else if(t.tagName==='VIDEO'){n=document.createElement('p');n.className='e';
n.textContent='This browser cannot play '+txt(t.getAttribute('src'))+
(t.error?' (media error '+t.error.code+')':'');t.after(n)}},true);
document.addEventListener('DOMContentLoaded',function(){
var bs=document.querySelectorAll('nav button');
bs.forEach(function(x){x.onclick=function(){document.body.dataset.f=x.dataset.f;
bs.forEach(function(y){y.setAttribute('aria-pressed',String(y===x))})}});
document.querySelector('main').addEventListener('click',function(e){
if(e.target.classList.contains('p'))e.target.classList.toggle('x')});
function mk(a){var v=document.createElement('video');v.controls=v.muted=v.loop=true;
v.playsInline=true;v.preload='metadata';v.src=a.getAttribute('href');a.before(v);
a.classList.remove('lv')}
function up(c){c.classList.remove('lz');c.querySelectorAll('i.t').forEach(function(i){
var m=document.createElement('img');m.className='t';m.alt='input image';m.src=i.dataset.src;
i.replaceWith(m)});c.querySelectorAll('a.lv').forEach(mk)}
var IO=window.IntersectionObserver,main=document.querySelector('main'),
more=document.getElementById('more'),ts=[].slice.call(document.querySelectorAll('template'));
var io=IO&&new IO(function(es){es.forEach(function(e){
if(e.isIntersecting){io.unobserve(e.target);up(e.target)}})},{rootMargin:'800px'});
function watch(r){[].slice.call(r.querySelectorAll('.lz')).forEach(function(c){
io?io.observe(c):up(c)})}
function grow(){var t=ts.shift(),f=t.content,cs=[].slice.call(f.querySelectorAll('.lz'));
main.append(f);t.remove();cs.forEach(function(c){io?io.observe(c):up(c)});
if(!ts.length&&more)more.remove()}
watch(document);if(!ts.length)return;if(!IO){while(ts.length)grow();return}
var mo=new IO(function(es){if(es[es.length-1].isIntersecting&&ts.length){grow();
mo.unobserve(more);
if(ts.length)mo.observe(more)}},{rootMargin:'1500px'});mo.observe(more)});
"""
_JS_HASH = base64.b64encode(hashlib.sha256(_JS.encode()).digest()).decode()
_CSP = (
    "default-src 'none'; "
    f"script-src 'sha256-{_JS_HASH}'; style-src 'unsafe-inline'; "
    "img-src 'self' file: data: http: https:; media-src 'self' file: http: https:"
)


def write_gallery(
    out_dir: Path, manifest: Manifest | None = None, *, state: LedgerState | None = None
) -> Path:
    """Write ``out_dir/index.html`` atomically and return its path.

    ``state`` defaults to the folder's ledger (:func:`read_ledger`, LedgerError when there
    is none); the manifest adds prompts, input images, quality and duration and sets the
    card order. Without it the page shows what the ledger holds. OSError when the folder
    cannot be written (the caller decides whether that matters).
    """
    out_dir = Path(out_dir)
    if state is None:
        state = read_ledger(out_dir)
    data = render_gallery(out_dir, state, manifest).encode("utf-8")
    # No secrets inside: readable like the videos beside it.
    return atomic_write(out_dir, GALLERY_NAME, data, mode=0o644)


def write_run_gallery(result: RunResult) -> Path | None:
    """The gallery after a run: the folder's (when the run changed anything or there is none
    yet) and, for one shard of many, the folder-wide page merging every shard.

    The gallery is a convenience: a failure to write it never changes the run's outcome, so
    it is swallowed here (None when nothing was written).
    """
    if result.interrupted or not (result.changed or not (result.out_dir / GALLERY_NAME).exists()):
        return None
    written = None
    with contextlib.suppress(OSError, BatchRunnerError):
        written = write_gallery(result.out_dir, result.manifest, state=result.state)
        if result.shard_base is not None and result.whole is not None:
            base = result.shard_base
            written = write_gallery(base, result.whole, state=merged_state(base))
    return written


def render_gallery(
    out_dir: Path, state: LedgerState, manifest: Manifest | None = None, now: float | None = None
) -> str:
    """The page as a string, writing nothing: for tests and for callers that serve it.
    ``now`` (unix seconds) is the "generated" time, for a reproducible page."""
    jobs = {job.id: job for job in manifest.jobs} if manifest is not None else {}
    by_status = Counter(record.status for record in state.jobs.values())  # as the cards show
    counts = {g: 0 for g, _ in _GROUPS}
    for status, n in by_status.items():
        counts[_group(status)] += n
    total = len(state.jobs)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(now))
    title = f"batch-runner · {out_dir.resolve().name}"
    models = ", ".join(manifest.models or (manifest.model,)) if manifest is not None else ""
    where = f" · {escape(models)}" if manifest is not None else ""
    waiting = ", ".join(
        f"{n} {s.value}" for s in JobStatus if (n := by_status[s]) and s not in _DONE
    )
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        f"<title>{escape(title)}</title><style>{_CSS}</style><script>{_JS}</script>"
        '</head><body data-f="all"><header class="top">'
        f"<h1>{escape(title)}</h1>"
        f'<p class="sum"><b>{total}</b> jobs · <b>{counts["succeeded"]}</b> succeeded · '
        f"<b>{counts['failed']}</b> failed · <b>{counts['cancelled']}</b> cancelled · "
        f"<b>{counts['progress']}</b> in progress{f' ({waiting})' if waiting else ''} · "
        f"spend <b>{_money(total_cost(state))}</b>{where} · generated {escape(stamp)}</p>"
        '<nav aria-label="Filter by status">'
        f'<button type="button" data-f="all" aria-pressed="true">all ({total})</button>',
    ]
    parts += [
        f'<button type="button" data-f="{g}" aria-pressed="false">{label} ({counts[g]})</button>'
        for g, label in _GROUPS
    ]
    parts.append("</nav></header><main>")
    render = _Cards(out_dir.resolve(), len(state.jobs))
    cards = [render.card(record, jobs.get(record.job_id)) for record in _ordered(state, manifest)]
    parts += cards[:CHUNK_CARDS] or ['<p class="m">No jobs in the ledger yet.</p>']
    parts.append("</main>")
    for i in range(CHUNK_CARDS, len(cards), CHUNK_CARDS):
        parts += ["<template>", *cards[i : i + CHUNK_CARDS], "</template>"]
    if len(cards) > CHUNK_CARDS:
        parts.append('<p id="more" class="m">More cards load as you scroll (needs JavaScript).</p>')
    parts.append("</body></html>\n")
    return "".join(parts)


def _group(status: JobStatus) -> str:
    return _DONE.get(status, "progress")


def _ordered(state: LedgerState, manifest: Manifest | None) -> Iterator[JobRecord]:
    """Manifest order, then ledger jobs the manifest no longer holds (in ledger order)."""
    seen: set[str] = set()
    if manifest is not None:
        for job in manifest.jobs:
            record = state.jobs.get(job.id)
            if record is not None and job.id not in seen:
                seen.add(job.id)
                yield record
    for job_id, record in state.jobs.items():
        if job_id not in seen:
            yield record


def _money(cost: float) -> str:
    return f"${cost:,.2f}" if cost >= 0.1 or cost == 0 else f"${cost:.4f}".rstrip("0")


def _href(path: str) -> str:
    """A ledger path (relative to the folder) as a URL relative to the page."""
    return quote(path.replace(os.sep, "/"), safe="/")


def _video(path: str, eager: bool) -> str:
    """A video plus a link to its file, named as on disk (the service's names are often
    ``0.mp4``); in a lazy card only the link, the script adds the video."""
    href = escape(Path(path).as_uri() if os.path.isabs(path) else _href(path))
    link = f'href="{href}">{escape(path)}</a>'
    if not eager:
        return f'<a class="o lv" {link}'
    return (
        '<video controls muted loop playsinline preload="metadata" '
        f'src="{href}"></video><a class="o" {link}'
    )


def _link(path: str) -> str:
    """A plain link to an output that is not a video (images, audio, text: shown natively
    by a later gallery; never put in a video player)."""
    href = escape(Path(path).as_uri() if os.path.isabs(path) else _href(path))
    return f'<a class="o" href="{href}">{escape(path)}</a>'


class _Cards:
    """Renders cards; counts them (the first are eager) and remembers image paths."""

    def __init__(self, out_dir: Path, total: int) -> None:
        self.out_dir = out_dir
        self.count = 0
        self.prompt_chars = max(120, min(PROMPT_CHARS, PROMPT_BUDGET // max(total, 1)))
        self.images: dict[Path, str] = {}

    def card(self, record: JobRecord, job: Job | None) -> str:
        eager = self.count < EAGER_CARDS
        self.count += 1
        lazy = "" if eager else " lz"
        html = [
            f'<article class="card{lazy}" data-g="{_group(record.status)}"><div class="h">'
            f'<b>{escape(record.job_id)}</b><i class="b">{record.status.value}</i></div>'
        ]
        if job is not None:
            prompt = job.inputs.get("prompt", "")
            if len(prompt) > self.prompt_chars:
                prompt = prompt[: self.prompt_chars - 1] + "…"
            image = self.image(job, eager)
            html.append(f'<div class="r">{image}<p class="p">{escape(prompt)}</p></div>')
        meta = []
        if job is not None:
            if quality := job.inputs.get("quality"):
                meta.append(escape(quality))
            if duration := job.inputs.get("duration"):
                meta.append(f"{escape(duration)} s")
        if record.cost is not None:
            meta.append(_money(record.cost))
        if record.status in IN_FLIGHT and record.service_status:
            meta.append(f"service: {escape(record.service_status)}")
        if meta:
            html.append(f'<p class="m">{" · ".join(meta)}</p>')
        if record.error and record.status is not JobStatus.SUCCEEDED:
            html.append(f'<p class="e">{escape(record.error)}</p>')
        if record.status is JobStatus.SUCCEEDED:
            html += [
                _video(out.path, eager) if out.kind in (None, "video") else _link(out.path)
                for out in record.outputs
            ]
        html.append("</article>")
        return "".join(html)

    def image(self, job: Job, eager: bool) -> str:
        if job.image is not None:
            src = self.images.get(job.image)
            if src is None:
                src = self.images[job.image] = self._local(job.image)
        else:
            url = job.inputs.get("inputImageUrl", "")
            if not url.startswith(("http://", "https://")):
                return '<span class="u">no input image</span>'
            src = escape(url)
        if not eager:
            return f'<i class="t" data-src="{src}"></i>'
        return f'<img class="t" src="{src}" alt="input image" loading="lazy">'

    def _local(self, image: Path) -> str:
        """Relative to the page when possible (the folder can move with its images)."""
        try:
            return escape(_href(os.path.relpath(image, self.out_dir)))
        except ValueError:  # another drive on Windows
            return escape(image.as_uri())
