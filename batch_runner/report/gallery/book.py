"""Which job goes on which page, and writing only the pages whose jobs changed.

The gallery is a set of *views*, each a run of pages of at most ``page_cards`` cards:
``all`` (every job, in manifest order; its first page is ``index.html``), one per status
group (``succeeded``, ``failed``, ``cancelled``, ``progress``; the last only its first
pages), and ``compare`` (one row per prompt, a column per model) when the manifest runs the
same inputs on several models. Pages other than the index live in ``gallery/`` as
``<view>-NNNN.html``.

A :class:`Book` remembers a signature of every page it wrote (the state of each of its jobs,
its neighbours in the pager, the page's mode); :meth:`Book.write` scans the ledger once
(O(jobs), no rendering), renders and replaces only the pages whose signature changed, always
the index (it carries the counts), and deletes pages that no longer exist. Pages never show
figures about other pages, so a job that changes touches only the pages that hold it.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

from ...ledger.layout import GALLERY_DIR, GALLERY_NAME
from ...ledger.published import last_target
from ...ledger.state import JobRecord, JobStatus, LedgerState
from ...manifest.job import Job
from ...manifest.loader import Manifest
from .cards import GROUPS, Cards, group_of, money
from .page import Live, banner, links, pager, shell

#: Cards on one page of the grid.
PAGE_CARDS = 500
#: Prompts (rows of one cell per model) on one page of the comparison.
COMPARE_ROWS = 100
#: Cards (and rows) of a page whose media elements are in the HTML; the script adds the
#: others' as they near the screen.
EAGER_CARDS = 50
EAGER_ROWS = 16
#: Pages of the "in progress" view (it changes all the time; the "all" pages hold the rest).
PROGRESS_PAGES = 2
#: The views, in link order, with their names on the page.
VIEWS: tuple[tuple[str, str], ...] = (("all", "all"), *GROUPS)
_PAGE_RE = re.compile(r"^(all|succeeded|failed|cancelled|progress|compare)-\d{4,}\.html$")
_EMPTY = {
    "all": "No jobs in the ledger yet.",
    "succeeded": "No job has succeeded yet.",
    "failed": "No job has failed.",
    "cancelled": "No job was cancelled.",
    "progress": "No job is in progress.",
    "compare": "Nothing to compare yet.",
}


def page_name(view: str, number: int) -> str:
    """The page's path relative to the folder."""
    if view == "all" and number == 1:
        return GALLERY_NAME
    return f"{GALLERY_DIR}/{view}-{number:04d}.html"


def _href(name: str, *, from_index: bool) -> str:
    """A link from one page to another (both names relative to the folder)."""
    if from_index:
        return name
    return "../" + GALLERY_NAME if name == GALLERY_NAME else name.rpartition("/")[2]


@dataclass(frozen=True)
class Spec:
    """One page: its view, number (from 1), what it holds (positions in the job order, or
    row numbers for ``compare``), and how many pages follow it (at most 2: the pager)."""

    view: str
    number: int
    items: Sequence[int]
    ahead: int

    @property
    def name(self) -> str:
        return page_name(self.view, self.number)


@dataclass(frozen=True)
class Written:
    """What one :meth:`Book.write` did."""

    pages: int
    bytes: int
    total_pages: int
    seconds: float


@dataclass
class _Scan:
    """One pass over the ledger: each job's state signature and group, the counts."""

    hashes: list[int]
    members: dict[str, list[int]]
    counts: dict[JobStatus, int]
    spent: float
    target: str | None


class Book:
    """The gallery of one folder: plans the pages and writes those that changed.

    ``links``: ``local`` (files in the folder) or ``published`` (each output's public
    address where it has a current published copy; see :class:`Cards`).
    """

    def __init__(
        self,
        out_dir: Path,
        manifest: Manifest | None = None,
        *,
        links: str = "local",
        page_cards: int = PAGE_CARDS,
        compare_rows: int = COMPARE_ROWS,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.root = self.out_dir.resolve()
        self.manifest = manifest
        self.links = links
        self.page_cards = max(1, page_cards)
        self.compare_rows = max(1, compare_rows)
        self.jobs = {job.id: job for job in manifest.jobs} if manifest is not None else {}
        self.title = f"batch-runner · {self.root.name}"
        #: signatures of the pages on disk, by name (empty: nothing known, write every page)
        self.written: dict[str, int] = {}
        self._order: list[str] = []
        self._known = -1
        self._rows: list[tuple[str, list[int]]] = []
        self.columns: list[str] = []

    # --- planning ------------------------------------------------------------------------

    def order(self, state: LedgerState) -> list[str]:
        """Job ids in page order: the manifest's, then ledger jobs it no longer holds.
        Computed again only when the number of jobs changes (never during a run)."""
        if len(state.jobs) != self._known:
            jobs = state.jobs
            order = [job_id for job_id in self.jobs if job_id in jobs]
            if len(order) != len(jobs):
                seen = set(order)
                order += [job_id for job_id in jobs if job_id not in seen]
            self._order, self._known = order, len(jobs)
            self._rows, self.columns = self._comparison(order)
        return self._order

    def _comparison(self, order: list[str]) -> tuple[list[tuple[str, list[int]]], list[str]]:
        """Rows of the comparison: each group of jobs run on more than one model, with the
        position of its job on each model (-1: none); the models, in the manifest's order."""
        if self.manifest is None:
            return [], []
        at = {job_id: i for i, job_id in enumerate(order)}
        groups: dict[str, dict[str, int]] = {}
        for job in self.manifest.jobs:
            if job.id in at:
                groups.setdefault(job.group or job.id, {}).setdefault(job.model, at[job.id])
        compared = {key: g for key, g in groups.items() if len(g) > 1}
        used = {model for g in compared.values() for model in g}
        columns = [m for m in self.manifest.models if m in used]
        columns += sorted(used - set(columns))
        rows = [(key, [g.get(m, -1) for m in columns]) for key, g in compared.items()]
        return rows, columns

    def _scan(self, state: LedgerState, order: list[str]) -> _Scan:
        jobs = state.jobs
        hashes: list[int] = []
        members: dict[str, list[int]] = {g: [] for g, _ in GROUPS}
        counts = dict.fromkeys(JobStatus, 0)
        spent = 0.0
        add = hashes.append
        for i, job_id in enumerate(order):
            r = jobs[job_id]
            status = r.status
            add(hash((status, r.updated_at, r.service_status, r.cost, r.error, len(r.outputs),
                      len(r.published))))  # fmt: skip
            members[group_of(status)].append(i)
            counts[status] += 1
            spent += r.cost or 0.0
        target = last_target(state) if self.links == "published" else None
        return _Scan(hashes, members, counts, max(0.0, round(spent, 9)), target)

    def specs(self, scan: _Scan, total: int) -> list[Spec]:
        """Every page of every view, in writing order (the index first)."""
        per = self.page_cards
        views: list[tuple[str, Sequence[int], int | None]] = [("all", range(total), None)]
        views += [(g, scan.members[g], PROGRESS_PAGES if g == "progress" else None)
                  for g, _ in GROUPS]  # fmt: skip
        out: list[Spec] = []
        for view, items, cap in views:
            pages = max(1, -(-len(items) // per))
            if cap is not None:
                pages = min(pages, cap)
            for p in range(pages):
                out.append(Spec(view, p + 1, items[p * per : (p + 1) * per], min(2, pages - p - 1)))
        rows, per_rows = len(self._rows), self.compare_rows
        pages = -(-rows // per_rows)
        for p in range(pages):
            out.append(Spec("compare", p + 1, range(p * per_rows, min(rows, (p + 1) * per_rows)),
                            min(2, pages - p - 1)))  # fmt: skip
        return out

    # --- writing -------------------------------------------------------------------------

    def write(
        self, state: LedgerState, *, live: Live | None = None, now: float | None = None
    ) -> Written:
        """Bring the pages on disk up to date with ``state``: the index always, every other
        page whose jobs, neighbours or mode changed since this book last wrote it (every
        page on a book's first write). OSError when the folder cannot be written."""
        started = time.perf_counter()
        order = self.order(state)
        scan = self._scan(state, order)
        specs = self.specs(scan, len(order))
        mode = (live.refresh if live is not None else 0, self.links, scan.target)
        first = not self.written
        seen: dict[str, int] = {}
        pages = size = 0
        for spec in specs:
            sig = self._signature(spec, scan, mode)
            seen[spec.name] = sig
            if spec.name != GALLERY_NAME and self.written.get(spec.name) == sig:
                continue
            html = self.render(spec, state, scan, specs, live=live, now=now)
            size += self._put(spec.name, html.encode("utf-8"))
            pages += 1
        stale = set(self.written) - set(seen)
        if first:
            stale |= self._pages_on_disk() - set(seen)
        for name in stale:
            (self.out_dir / name).unlink(missing_ok=True)
        self.written = seen
        return Written(pages, size, len(specs), time.perf_counter() - started)

    def render_index(
        self, state: LedgerState, *, live: Live | None = None, now: float | None = None
    ) -> str:
        """The first page as text, writing nothing."""
        order = self.order(state)
        scan = self._scan(state, order)
        specs = self.specs(scan, len(order))
        return self.render(specs[0], state, scan, specs, live=live, now=now)

    def _signature(self, spec: Spec, scan: _Scan, mode: tuple[object, ...]) -> int:
        hashes = scan.hashes
        if spec.view == "compare":
            held = tuple(hashes[i] if i >= 0 else 0 for r in spec.items for i in self._rows[r][1])
        else:
            held = tuple([hashes[i] for i in spec.items])
        extra = len(scan.members["progress"]) if spec.view == "progress" else 0
        return hash((spec.view, spec.number, spec.ahead, mode, extra, held))

    def _put(self, name: str, data: bytes) -> int:
        """Replace ``name`` atomically (a reader sees the old page or the new one). Not
        fsync'd: the gallery is rebuilt from the ledger whenever it is written."""
        path = self.out_dir / name
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:
            path.parent.mkdir(exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, 0o644)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        return len(data)

    def _pages_on_disk(self) -> set[str]:
        try:
            names = os.listdir(self.out_dir / GALLERY_DIR)
        except OSError:
            return set()
        return {f"{GALLERY_DIR}/{n}" for n in names if _PAGE_RE.fullmatch(n)}

    # --- rendering -----------------------------------------------------------------------

    def render(
        self,
        spec: Spec,
        state: LedgerState,
        scan: _Scan,
        specs: list[Spec],
        *,
        live: Live | None,
        now: float | None,
    ) -> str:
        index = spec.name == GALLERY_NAME
        cards = Cards(self.root, self.manifest, prefix="" if index else "../",
                      links=self.links, target=scan.target)  # fmt: skip
        jobs, order = state.jobs, self._order
        if spec.view == "compare":
            body = "".join(
                cards.row(self._rows[r][0], self._cells(state, r), k < EAGER_ROWS)
                for k, r in enumerate(spec.items)
            )
        else:
            body = "".join(
                cards.card(jobs[order[i]], self.jobs.get(order[i]), k < EAGER_CARDS)
                for k, i in enumerate(spec.items)
            )
        body = body or f'<p class="m">{_EMPTY[spec.view]}</p>'
        hrefs = {s.number: _href(s.name, from_index=index) for s in specs if s.view == spec.view}
        near = {n: h for n, h in hrefs.items() if n == 1 or abs(n - spec.number) <= 2}
        nav = pager(near, spec.number)
        header = self._header(spec, scan, specs, cards, live, now, index=index) + nav
        footer = nav + (self._directory(specs) if index else "")
        page_live = live if index or live is None else self._sub_live(live, spec)
        return shell(
            title=self.title if index else f"{self.title} · {_label(spec)}",
            header=header,
            main=body,
            main_class="rows" if spec.view == "compare" else "grid",
            footer=footer,
            written=time.time() if now is None else now,
            live=page_live,
        )

    def _cells(
        self, state: LedgerState, row: int
    ) -> list[tuple[str, JobRecord | None, Job | None]]:
        """The cells of one comparison row: (model, record, job), None where not run."""
        order, jobs = self._order, state.jobs
        return [
            (model, jobs[order[i]], self.jobs.get(order[i])) if i >= 0 else (model, None, None)
            for model, i in zip(self.columns, self._rows[row][1], strict=True)
        ]

    def _header(self, spec: Spec, scan: _Scan, specs: list[Spec], cards: Cards,
                live: Live | None, now: float | None, *, index: bool) -> str:  # fmt: skip
        title = escape(self.title)
        if index:
            html = [f"<h1>{title}</h1>", self._summary(scan, now), banner(live)]
        else:
            home = _href(GALLERY_NAME, from_index=False)
            html = [
                f'<h1><a href="{home}">{title}</a></h1>',
                f'<p class="sum">{escape(_label(spec))} · <a href="{home}">summary</a></p>',
                banner(self._sub_live(live, spec) if live is not None else None),
            ]
        first = {s.view: s.name for s in specs if s.number == 1}
        if "compare" in first:
            grid = spec.view != "compare"
            html.append(links([
                (_href(GALLERY_NAME, from_index=index), "cards", grid),
                (_href(first["compare"], from_index=index),
                 f"side by side ({len(self.columns)} models)", not grid),
            ], "View", "v"))  # fmt: skip
        if spec.view != "compare":
            sizes = {"all": len(scan.hashes), **{g: len(m) for g, m in scan.members.items()}}
            html.append(links([
                (_href(first[view], from_index=index),
                 f"{label} ({sizes[view]})" if index else label, view == spec.view)
                for view, label in VIEWS
            ], "Filter by status", "f"))  # fmt: skip
        if spec.view == "progress":
            shown, held = (
                sum(len(s.items) for s in specs if s.view == "progress"),
                len(scan.members["progress"]),
            )
            if held > shown:
                html.append(f'<p class="note">The first {shown:,} of {held:,} jobs in '
                            "progress; the others are on the pages of all jobs.</p>")  # fmt: skip
        if self.links == "published":
            html.append(f'<p class="note">{_links_note(scan.target)}</p>')
        return "".join(html)

    def _summary(self, scan: _Scan, now: float | None) -> str:
        counts = scan.counts
        done = {"succeeded": JobStatus.SUCCEEDED, "failed": JobStatus.FAILED,
                "cancelled": JobStatus.CANCELLED}  # fmt: skip
        waiting = ", ".join(
            f"{n} {s.value}" for s in JobStatus if (n := counts[s]) and s not in done.values()
        )
        stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(now))
        models = ""
        if self.manifest is not None:
            models = " · " + escape(", ".join(self.manifest.models or (self.manifest.model,)))
        parts = [f"<b>{len(scan.hashes)}</b> jobs"]
        parts += [f"<b>{counts[s]}</b> {name}" for name, s in done.items()]
        progress = len(scan.members["progress"])
        parts.append(f"<b>{progress}</b> in progress{f' ({waiting})' if waiting else ''}")
        parts.append(f"spend <b>{money(scan.spent)}</b>{models} · generated {escape(stamp)}")
        return f'<p class="sum">{" · ".join(parts)}</p>'

    def _directory(self, specs: list[Spec]) -> str:
        """Every page of every view, for the index (the pager only reaches neighbours)."""
        names = dict(VIEWS, compare="side by side")
        lines = []
        for view, label in names.items():
            pages = [s for s in specs if s.view == view]
            if len(pages) > 1:
                items = "".join(f'<a href="{s.name}">{s.number}</a>' for s in pages)
                lines.append(f"<p><b>{label}</b> {items}</p>")
        if not lines:
            return ""
        return f'<details class="pd"><summary>Every page</summary>{"".join(lines)}</details>'

    @staticmethod
    def _sub_live(live: Live, spec: Spec) -> Live:
        """The banner of a page other than the index: it says nothing that changes with
        every job (those pages are rewritten only when their own jobs change)."""
        text = (
            f"Run in progress: this page reloads every {live.refresh:g} s. Counts, spend and "
            f'ETA are on <a href="../{GALLERY_NAME}">the first page</a>.'
        )
        return Live(live.refresh, text, None)


def _label(spec: Spec) -> str:
    name = "side by side" if spec.view == "compare" else dict(VIEWS)[spec.view]
    return f"{name}, page {spec.number}"


def _links_note(target: str | None) -> str:
    where = f" to {escape(target)}" if target else ""
    return (
        f"Links point at the copies published{where} where an output has a public https "
        "address; the others link to the local files (not published yet, or published "
        "without --publish-public-url: store URLs such as s3:// do not open in a browser)."
        if target
        else "Nothing in this folder has been published yet: links point at the local files."
    )
