"""One page of the gallery as HTML: its cards or comparison rows, the header (the summary on
the index, the views and filters, the banner while live), the pager and, on the index, the
list of every page. What goes on which page is :mod:`.book`'s business."""

from __future__ import annotations

import time
from html import escape
from typing import TYPE_CHECKING

from ...ledger.layout import GALLERY_NAME
from ...ledger.state import JobRecord, JobStatus, LedgerState
from ...manifest.job import Job
from .cards import Cards, money
from .page import Live, banner, links, pager, shell

if TYPE_CHECKING:
    from .book import Book, Spec, Tracked

#: Cards (and rows) of a page whose media elements are in the HTML; the script adds the
#: others' as they near the screen.
EAGER_CARDS = 50
EAGER_ROWS = 16
_EMPTY = {
    "all": "No jobs in the ledger yet.",
    "succeeded": "No job has succeeded yet.",
    "failed": "No job has failed.",
    "cancelled": "No job was cancelled.",
    "progress": "No job is in progress.",
    "compare": "Nothing to compare yet.",
}
_NAMES = {"all": "all", "succeeded": "succeeded", "failed": "failed", "cancelled": "cancelled",
          "progress": "in progress", "compare": "side by side"}  # fmt: skip
_DONE = {"succeeded": JobStatus.SUCCEEDED, "failed": JobStatus.FAILED,
         "cancelled": JobStatus.CANCELLED}  # fmt: skip


def href(name: str, *, from_index: bool) -> str:
    """A link from one page to another (both names relative to the folder)."""
    if from_index:
        return name
    return "../" + GALLERY_NAME if name == GALLERY_NAME else name.rpartition("/")[2]


def render(
    book: Book,
    spec: Spec,
    state: LedgerState,
    tracked: Tracked,
    specs: list[Spec],
    *,
    target: str | None,
    counts: dict[JobStatus, int],
    spent: float,
    live: Live | None,
    now: float | None,
    sig: int,
) -> str:
    """The page ``spec`` (``live``: while a run is active and the page can still change)."""
    index = spec.name == GALLERY_NAME
    cards = Cards(book.root, book.manifest, prefix="" if index else "../", links=book.links,
                  target=target)  # fmt: skip
    jobs, order = state.jobs, tracked.order
    if spec.view == "compare":
        body = "".join(
            cards.row(book.row_keys[r], _cells(book, state, tracked, r), k < EAGER_ROWS)
            for k, r in enumerate(spec.items)
        )
    else:
        body = "".join(
            cards.card(jobs[order[i]], tracked.jobs[i], k < EAGER_CARDS)
            for k, i in enumerate(spec.items)
        )
    body = body or f'<p class="m">{_EMPTY[spec.view]}</p>'
    near = {
        s.number: href(s.name, from_index=index)
        for s in specs
        if s.view == spec.view and (s.number == 1 or abs(s.number - spec.number) <= 2)
    }
    nav = pager(near, spec.number)
    page_live = live if index or live is None else _sub_live(live)
    if index:
        top = [f"<h1>{escape(book.title)}</h1>", _summary(book, tracked, counts, spent, now)]
    else:
        home = href(GALLERY_NAME, from_index=False)
        top = [
            f'<h1><a href="{home}">{escape(book.title)}</a></h1>',
            f'<p class="sum">{escape(_label(spec))} · <a href="{home}">summary</a></p>',
        ]
    top += [banner(page_live), _navs(book, spec, tracked, specs, index=index)]
    if spec.view == "progress":
        shown = sum(len(s.items) for s in specs if s.view == "progress")
        held = len(tracked.members["progress"])
        if held > shown:
            top.append(f'<p class="note">The first {shown:,} of {held:,} jobs in progress; '
                       "the others are on the pages of all jobs.</p>")  # fmt: skip
    if book.links == "published":
        top.append(f'<p class="note">{_links_note(target)}</p>')
    return shell(
        title=book.title if index else f"{book.title} · {_label(spec)}",
        header="".join(top) + nav,
        main=body,
        main_class="rows" if spec.view == "compare" else "grid",
        footer=nav + (_directory(specs) if index else ""),
        written=time.time() if now is None else now,
        live=page_live,
        sig=sig,
    )


def _cells(
    book: Book, state: LedgerState, tracked: Tracked, row: int
) -> list[tuple[str, JobRecord | None, Job | None]]:
    """The cells of one comparison row: (model, record, job), None where not run."""
    order, jobs = tracked.order, state.jobs
    return [
        (model, jobs[order[i]], tracked.jobs[i]) if i >= 0 else (model, None, None)
        for model, i in zip(book.columns, book.row(row), strict=True)
    ]


def _navs(book: Book, spec: Spec, tracked: Tracked, specs: list[Spec], *, index: bool) -> str:
    """The view links (cards, side by side) and the status filters (with counts on the
    index only: other pages show nothing that changes with other pages' jobs)."""
    first = {s.view: s.name for s in specs if s.number == 1}
    html = []
    if "compare" in first:
        grid = spec.view != "compare"
        html.append(links([
            (href(GALLERY_NAME, from_index=index), "cards", grid),
            (href(first["compare"], from_index=index),
             f"side by side ({len(book.columns)} models)", not grid),
        ], "View", "v"))  # fmt: skip
    if spec.view != "compare":
        sizes = {"all": len(tracked.order), **{g: len(m) for g, m in tracked.members.items()}}
        html.append(links([
            (href(first[view], from_index=index),
             f"{_NAMES[view]} ({sizes[view]})" if index else _NAMES[view], view == spec.view)
            for view in ("all", "succeeded", "failed", "cancelled", "progress")
        ], "Filter by status", "f"))  # fmt: skip
    return "".join(html)


def _summary(
    book: Book, tracked: Tracked, counts: dict[JobStatus, int], spent: float, now: float | None
) -> str:
    waiting = ", ".join(
        f"{n} {s.value}" for s in JobStatus if (n := counts.get(s, 0)) and s not in _DONE.values()
    )
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(now))
    models = ""
    if book.manifest is not None:
        models = " · " + escape(", ".join(book.manifest.models or (book.manifest.model,)))
    parts = [f"<b>{len(tracked.order)}</b> jobs"]
    parts += [f"<b>{counts.get(s, 0)}</b> {name}" for name, s in _DONE.items()]
    progress = len(tracked.members["progress"])
    parts.append(f"<b>{progress}</b> in progress{f' ({waiting})' if waiting else ''}")
    parts.append(f"spend <b>{money(spent)}</b>{models} · generated {escape(stamp)}")
    return f'<p class="sum">{" · ".join(parts)}</p>'


def _directory(specs: list[Spec]) -> str:
    """Every page of every view, for the index (the pager only reaches neighbours)."""
    lines = []
    for view, name in _NAMES.items():
        pages = [s for s in specs if s.view == view]
        if len(pages) > 1:
            items = "".join(f'<a href="{s.name}">{s.number}</a>' for s in pages)
            lines.append(f"<p><b>{name}</b> {items}</p>")
    if not lines:
        return ""
    return f'<details class="pd"><summary>Every page</summary>{"".join(lines)}</details>'


def _sub_live(live: Live) -> Live:
    """The banner of a page other than the index: nothing that changes with every job (those
    pages are rewritten only when their own jobs change)."""
    text = (
        f"Run in progress: this page reloads every {live.refresh:g} s. Counts, spend and "
        f'ETA are on <a href="../{GALLERY_NAME}">the first page</a>.'
    )
    return Live(live.refresh, text, None)


def _label(spec: Spec) -> str:
    return f"{_NAMES[spec.view]}, page {spec.number}"


def _links_note(target: str | None) -> str:
    if not target:
        return "Nothing in this folder has been published yet: links point at the local files."
    return (
        f"Links point at the copies published to {escape(target)} where an output has a "
        "public https address; the others link to the local files (not published yet, or "
        "published without --publish-public-url: store URLs such as s3:// do not open in a "
        "browser)."
    )
