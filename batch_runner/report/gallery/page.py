"""The page around the cards: one stylesheet and one script shared by every page of the
gallery (so one Content-Security-Policy hash allows it everywhere), the header, the view and
filter links, the pager, and the "run in progress" banner.

Whatever differs from page to page is data, not code: ``data-refresh`` (seconds between
reloads while a run is active; absent once it has ended), ``data-written`` (when the page was
written, unix milliseconds) and ``data-stale`` (seconds after which a page that was not
rewritten stops reloading and says the run may have stopped).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from html import escape

_CSS = """
:root{color-scheme:light dark;--bg:#f3f4f6;--fg:#1f2430;--card:#fff;--mute:#5f6775;--line:#dcdfe5}
@media(prefers-color-scheme:dark){:root{--bg:#111418;--fg:#e5e7eb;--card:#1b2027;--mute:#9aa3ae;
--line:#2d343e}}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
background:var(--bg);color:var(--fg)}
a{color:inherit}
.top{position:sticky;top:0;z-index:1;padding:10px 16px;background:var(--bg);
border-bottom:1px solid var(--line)}
h1{font-size:18px;margin:0}
h1 a{text-decoration:none}
.sum{margin:2px 0 8px;color:var(--mute)}
.sum b{color:var(--fg)}
.live{margin:0 0 8px;padding:6px 10px;border-radius:8px;background:#1d4ed8;color:#fff}
.live b{color:#fff}
.live .e{color:#fff;margin:4px 0 0;font-weight:600}
.note{margin:0 0 8px;color:var(--mute);font-size:12px}
nav{display:flex;flex-wrap:wrap;gap:6px;margin:4px 0}
nav a{padding:4px 12px;border-radius:16px;border:1px solid var(--line);background:var(--card);
text-decoration:none;white-space:nowrap}
nav a[aria-current=page]{background:#2563eb;border-color:#2563eb;color:#fff}
nav.v a[aria-current=page]{background:var(--fg);border-color:var(--fg);color:var(--bg)}
nav.pg{margin:8px 16px 16px;align-items:center}
nav.pg span{color:var(--mute)}
main.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:12px;
padding:12px 16px}
main.rows{display:grid;gap:12px;padding:12px 16px}
.card,.row{min-width:0;background:var(--card);border:1px solid var(--line);border-radius:10px;
padding:10px;content-visibility:auto;contain-intrinsic-size:auto 360px}
.cells{display:grid;grid-template-columns:repeat(auto-fit,minmax(240px,1fr));gap:10px;
margin-top:6px}
.cell{min-width:0;border-top:3px solid var(--line);padding-top:6px}
.cell[data-g=succeeded]{border-color:#15803d}.cell[data-g=failed]{border-color:#b91c1c}
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
video{display:block;width:100%;aspect-ratio:16/9;margin-top:6px;background:#000;border-radius:6px}
audio{display:block;width:100%;margin-top:6px}
.strip{display:grid;grid-template-columns:repeat(auto-fill,minmax(88px,1fr));gap:4px;margin-top:6px}
.strip:has(.im:only-child){grid-template-columns:1fr}
.im{display:block;min-height:40px;border-radius:6px;background:var(--line);font-size:11px;
overflow:hidden;overflow-wrap:anywhere;color:var(--mute)}
.im img{display:block;width:100%;height:auto;max-height:320px;object-fit:contain}
.tx{margin:6px 0 2px;padding:8px;border-radius:6px;background:var(--bg);font-size:12px;
white-space:pre-wrap;overflow-wrap:anywhere;max-height:12em;overflow:auto}
.o{display:block;font-size:12px;color:var(--mute);overflow-wrap:anywhere}
details.pd{margin:0 16px 24px;color:var(--mute)}
details.pd p{display:flex;flex-wrap:wrap;gap:4px 10px}
@media(max-width:480px){.top{position:static;padding:8px 10px}
main.grid{grid-template-columns:1fr;padding:8px 10px}main.rows{padding:8px 10px}
.cells{grid-template-columns:1fr}nav.pg{margin:8px 10px 16px}}
"""

# Listeners on document in the capture phase, registered before the body is parsed, so an
# image or a player that fails early is still caught. Lazy cards get their media elements
# as they near the screen. While a run is active (data-refresh), the page reloads itself
# every few seconds, but not while something plays, and not once it has gone stale.
_JS = """
function txt(s){try{return decodeURI(s)}catch(e){return s}}
document.addEventListener('error',function(e){var t=e.target,n;
if(t.tagName==='IMG'){n=document.createElement('span');var s=txt(t.getAttribute('src'));
if(t.classList.contains('t')){n.className='u';n.textContent=s}
else{n.className='e';n.textContent='This browser cannot show '+s}t.replaceWith(n)}
else if(t.tagName==='VIDEO'||t.tagName==='AUDIO'){n=document.createElement('p');n.className='e';
n.textContent='This browser cannot play '+txt(t.getAttribute('src'))+
(t.error?' (media error '+t.error.code+')':'');t.after(n)}},true);
document.addEventListener('DOMContentLoaded',function(){
var main=document.querySelector('main');
main.addEventListener('click',function(e){
if(e.target.classList.contains('p'))e.target.classList.toggle('x')});
function mk(a){var k=a.dataset.k,h=a.getAttribute('href'),m=document.createElement(
k==='image'?'img':k);a.classList.remove('lm');
if(k==='image'){m.alt=a.textContent;m.src=h;a.textContent='';a.append(m);return}
m.controls=true;m.preload='metadata';if(k==='video'){m.muted=m.loop=m.playsInline=true}
m.src=h;a.before(m)}
function up(c){c.classList.remove('lz');c.querySelectorAll('i.t').forEach(function(i){
var m=document.createElement('img');m.className='t';m.alt='input image';m.src=i.dataset.src;
i.replaceWith(m)});c.querySelectorAll('a.lm').forEach(mk)}
var IO=window.IntersectionObserver,io=IO&&new IO(function(es){es.forEach(function(e){
if(e.isIntersecting){io.unobserve(e.target);up(e.target)}})},{rootMargin:'800px'});
document.querySelectorAll('.lz').forEach(function(c){io?io.observe(c):up(c)});
var b=document.body,r=+b.dataset.refresh,w=+b.dataset.written,st=+b.dataset.stale;
if(!r)return;
function tick(){if(st&&Date.now()-w>st*1000){var n=document.getElementById('stale');
if(n)n.hidden=false;return}
if([].some.call(document.querySelectorAll('video,audio'),function(m){return!m.paused&&!m.ended})){
setTimeout(tick,r*1000);return}location.reload()}
setTimeout(tick,r*1000)});
"""
_JS_HASH = base64.b64encode(hashlib.sha256(_JS.encode()).digest()).decode()
CSP = (
    "default-src 'none'; "
    f"script-src 'sha256-{_JS_HASH}'; style-src 'unsafe-inline'; "
    "img-src 'self' file: data: http: https:; media-src 'self' file: http: https:"
)


@dataclass(frozen=True)
class Live:
    """A page written while a run is active: it reloads every ``refresh`` seconds and
    carries ``banner`` (HTML, already escaped) at the top. ``stale``: seconds after which a
    page not rewritten since stops reloading (None: never)."""

    refresh: float
    banner: str
    stale: int | None = None


def shell(
    *,
    title: str,
    header: str,
    main: str,
    main_class: str,
    footer: str,
    written: float,
    live: Live | None,
    sig: int = 0,
) -> str:
    """A whole page: head (CSP, styles, script), the sticky header (which holds the
    banner, see :func:`banner`), main, the footer."""
    attrs = f' data-written="{int(written * 1000)}"'
    refresh = ""
    if live is not None:
        attrs += f' data-refresh="{live.refresh:g}"'
        if live.stale:
            attrs += f' data-stale="{live.stale}"'
        every = max(1, round(live.refresh))
        refresh = f'<noscript><meta http-equiv="refresh" content="{every}"></noscript>'
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="batch-runner-page" content="{sig:016x}">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">{refresh}'
        f"<title>{escape(title)}</title><style>{_CSS}</style><script>{_JS}</script>"
        f'</head><body{attrs}><header class="top">{header}'
        f'</header><main class="{main_class}">{main}</main>{footer}</body></html>\n'
    )


def banner(live: Live | None) -> str:
    return "" if live is None else f'<div class="live" role="status">{live.banner}</div>'


def links(items: list[tuple[str, str, bool]], label: str, css: str) -> str:
    """A nav of links: (href, text (escaped), current)."""
    parts = [
        f'<a href="{href}"{" aria-current=page" if current else ""}>{text}</a>'
        for href, text, current in items
    ]
    return f'<nav class="{css}" aria-label="{label}">{"".join(parts)}</nav>'


def pager(hrefs: dict[int, str], number: int) -> str:
    """First, previous, the pages around ``number`` that exist, next (``hrefs``: page
    number to link, for those pages only)."""
    if len(hrefs) <= 1 and number == 1:
        return ""
    parts = []
    if number > 1:
        parts.append(f'<a href="{hrefs[number - 1]}" rel="prev">‹ previous</a>')
        if number - 2 > 1:
            parts.append(f'<a href="{hrefs[1]}">1</a><span>…</span>')
    for n in range(max(1, number - 2), number + 3):
        if n in hrefs:
            current = " aria-current=page" if n == number else ""
            parts.append(f'<a href="{hrefs[n]}"{current}>{n}</a>')
    if number + 1 in hrefs:
        parts.append(f'<a href="{hrefs[number + 1]}" rel="next">next ›</a>')
    return f'<nav class="pg" aria-label="Pages">{"".join(parts)}</nav>'
