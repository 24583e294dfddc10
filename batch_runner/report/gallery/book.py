"""Which job goes on which page, and writing only the pages whose jobs changed.

The gallery is a set of *views*, each a run of pages of at most ``page_cards`` cards:
``all`` (every job, in manifest order; its first page is ``index.html``), one per status
group (``succeeded``, ``failed``, ``cancelled``, ``progress``; the last only its first
pages), and ``compare`` (one row per prompt, a column per model) when the manifest runs the
same inputs on several models. Pages other than the index live in ``gallery/`` as
``<view>-NNNN.html``.

Every page carries a signature (in a ``<meta>``) of what it shows: the state of each of its
jobs, its neighbours in the pager, whether it is live, the gallery's settings and code. A
:class:`Book` scans the ledger (O(jobs) identity checks; a job's signature is computed again
only when its record changed), and replaces only the pages whose signature differs from the
one on disk, always the index (it carries the counts), and removes pages that no longer
exist. Pages never show figures about other pages, so a job that changes touches only the
pages that hold it, also from one process to the next (a resumed run, ``write_gallery``).

During a run (``live``) a page reloads itself only while it can still change: while it
holds an unfinished job, or, in a status view, while an unfinished job sorts before its end.
A page that can no longer change is written static at once, so when the run ends only the
index and the few pages still live are written again.
"""

from __future__ import annotations

import bisect
import os
import re
import time
import zlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ...ledger.layout import GALLERY_DIR, GALLERY_NAME
from ...ledger.published import last_target
from ...ledger.records import Records
from ...ledger.state import JobStatus, LedgerState, total_cost
from ...manifest.job import Job
from ...manifest.loader import Manifest
from .cards import GROUPS, group_of
from .page import Live

#: Cards on one page of the grid.
PAGE_CARDS = 500
#: Prompts (rows of one cell per model) on one page of the comparison.
COMPARE_ROWS = 100
#: Pages of the "in progress" view (it changes all the time; the "all" pages hold the rest).
PROGRESS_PAGES = 2
#: The views, in link order, with their names on the page.
VIEWS: tuple[tuple[str, str], ...] = (("all", "all"), *GROUPS)
_VIEW_CODES = {"all": 0, "succeeded": 1, "failed": 2, "cancelled": 3, "progress": 4, "compare": 5}
_GROUP_CODES = {g: i for i, (g, _) in enumerate(GROUPS)}
_PROGRESS = _GROUP_CODES["progress"]
_STATUS_CODES = {s: i for i, s in enumerate(JobStatus)}
_PAGE_RE = re.compile(r"^(all|succeeded|failed|cancelled|progress|compare)-\d{4,}\.html$")
_SIG_RE = re.compile(rb'<meta name="batch-runner-page" content="([0-9a-f]{1,16})">')
_MASK = (1 << 64) - 1


def _format() -> int:
    """A checksum of the code that renders pages: a new version rewrites every page once."""
    here = Path(__file__).resolve().parent
    data = b"".join(
        (here / n).read_bytes() for n in ("book.py", "cards.py", "page.py", "render.py")
    )
    return zlib.crc32(data)


_FORMAT = _format()


def page_name(view: str, number: int) -> str:
    """The page's path relative to the folder."""
    if view == "all" and number == 1:
        return GALLERY_NAME
    return f"{GALLERY_DIR}/{view}-{number:04d}.html"


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
    """What one :meth:`Book.write` did: pages written (of ``total_pages``), their bytes,
    the seconds it took, and how many jobs had changed since the book's previous scan."""

    pages: int
    bytes: int
    total_pages: int
    seconds: float
    changed_jobs: int


class Tracked:
    """The jobs in page order and what the book last saw of each, for incremental scans:
    a job's signature is computed again only when the ledger holds another object for it
    (records are immutable: any change is a new one). Flat arrays: a few MB at 100,000
    jobs."""

    def __init__(self, order: list[str], jobs: list[Job | None]) -> None:
        n = len(order)
        self.order = order
        #: the manifest's job at each position (None: a job only the ledger holds)
        self.jobs = jobs
        #: what the ledger held for each job when last scanned (:meth:`Records.version`)
        self._seen: list[object] = [None] * n
        #: what each job shows: its own content (id, model, image, prompt) and its state
        self.hashes = array("q", bytes(8 * n))
        self.groups = bytearray([255]) * n
        self._keys = array(
            "q", (_key(job_id, job) for job_id, job in zip(order, jobs, strict=True))
        )
        #: positions of the jobs of each status group, in order
        self.members: dict[str, Sequence[int]] = {g: () for g, _ in GROUPS}
        self.changed = 0

    def scan(self, jobs: Records) -> None:
        version = jobs.version
        rows = [version(job_id) for job_id in self.order]
        seen = self._seen
        changed = array("l", (i for i, row in enumerate(rows) if row is not seen[i]))
        regroup = False
        order = self.order
        for i in changed:
            seen[i] = rows[i]
            r = jobs[order[i]]
            cost = -1.0 if r.cost is None else r.cost
            self.hashes[i] = hash((self._keys[i], _STATUS_CODES[r.status], r.updated_at or 0.0,
                                   len(r.outputs), len(r.published), cost))  # fmt: skip
            group = _GROUP_CODES[group_of(r.status)]
            if group != self.groups[i]:
                self.groups[i] = group
                regroup = True
        if regroup:
            groups = self.groups
            self.members = {
                g: array("l", (i for i, x in enumerate(groups) if x == code))
                for g, code in _GROUP_CODES.items()
            }
        self.changed = len(changed)


def _key(job_id: str, job: Job | None) -> int:
    if job is None:
        return zlib.crc32(job_id.encode())
    text = f"{job_id}\0{job.model}\0{job.image}\0{job.inputs.get('prompt', '')}"
    return zlib.crc32(text.encode("utf-8", "surrogatepass"))


class Book:
    """The gallery of one folder: plans the pages and writes those that changed.

    ``links``: ``local`` (files in the folder) or ``published`` (each output's public
    address where it has a current published copy; see :class:`~.cards.Cards`).
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
        self.title = f"batch-runner · {self.root.name}"
        #: the comparison: its models, each row's group, and the position of the row's job
        #: on each model (-1: none), row after row
        self.columns: list[str] = []
        self.row_keys: list[str] = []
        self.cells = array("l")
        #: signatures of the pages on disk, by name (None: read them from the pages)
        self.written: dict[str, int] | None = None
        self._tracked: Tracked | None = None
        titles = sorted((m, d.title) for m, d in (manifest.definitions if manifest else {}).items())
        self._setting = f"{self.root}\0{links}\0{page_cards}\0{compare_rows}\0{titles}"

    # --- planning ------------------------------------------------------------------------

    def track(self, state: LedgerState) -> Tracked:
        """The jobs, scanned: the manifest's order, then ledger jobs it no longer holds
        (built again only when the number of jobs changes, never during a run)."""
        tracked = self._tracked
        if tracked is None or len(tracked.order) != len(state.jobs):
            records = state.jobs
            listed = self.manifest.jobs if self.manifest is not None else ()
            held = [job for job in listed if job.id in records]
            order = [job.id for job in held]
            jobs: list[Job | None] = list(held)
            if len(order) != len(records):
                seen = set(order)
                order += [job_id for job_id in records if job_id not in seen]
                jobs += [None] * (len(order) - len(jobs))
            tracked = self._tracked = Tracked(order, jobs)
            self._comparison(held)
        tracked.scan(state.jobs)
        return tracked

    def row(self, number: int) -> Sequence[int]:
        """The positions of a comparison row's jobs, one per model (-1: none)."""
        width = len(self.columns)
        return self.cells[number * width : (number + 1) * width]

    def _comparison(self, held: list[Job]) -> None:
        """Each group of jobs run on more than one model, with the position of its job on
        each model; the models, in the manifest's order. ``held``: the jobs in order."""
        compared: dict[str, dict[str, int]] = {}
        if len({job.model for job in held}) > 1:  # else no group has a second model
            first: dict[str, int] = {}  # each group's first job; a dict only for the others
            for i, job in enumerate(held):
                key = job.group or job.id
                j = first.setdefault(key, i)
                if j != i:
                    if key not in compared:
                        compared[key] = {held[j].model: j}
                    compared[key].setdefault(job.model, i)
            ordered = sorted((k for k, g in compared.items() if len(g) > 1), key=first.__getitem__)
            compared = {key: compared[key] for key in ordered}
        used = {model for g in compared.values() for model in g}
        models = self.manifest.models if self.manifest is not None else ()
        self.columns = [m for m in models if m in used] + sorted(used - set(models))
        self.row_keys = list(compared)
        self.cells = array("l", [g.get(m, -1) for g in compared.values() for m in self.columns])

    def specs(self, tracked: Tracked) -> list[Spec]:
        """Every page of every view, the index first."""
        per = self.page_cards
        views: list[tuple[str, Sequence[int], int | None]] = [("all", range(len(tracked.order)),
                                                               None)]  # fmt: skip
        views += [(g, tracked.members[g], PROGRESS_PAGES if g == "progress" else None)
                  for g, _ in GROUPS]  # fmt: skip
        out: list[Spec] = []
        for view, items, cap in views:
            pages = max(1, -(-len(items) // per))
            if cap is not None:
                pages = min(pages, cap)
            for p in range(pages):
                out.append(Spec(view, p + 1, items[p * per : (p + 1) * per], min(2, pages - p - 1)))
        rows, per = len(self.row_keys), self.compare_rows
        pages = -(-rows // per)
        out += [Spec("compare", p + 1, range(p * per, min(rows, (p + 1) * per)),
                     min(2, pages - p - 1)) for p in range(pages)]  # fmt: skip
        return out

    def settled(self, spec: Spec, tracked: Tracked) -> bool:
        """Whether the page can no longer change in this run: none of its jobs unfinished
        and, in a status view, no unfinished job sorting before its end (it would move
        the page's cards) and its pager complete."""
        unfinished = tracked.members["progress"]
        if not unfinished:
            return True
        if spec.view == "all":
            items = spec.items
            at = bisect.bisect_left(unfinished, items[0]) if items else len(unfinished)
            return not items or at == len(unfinished) or unfinished[at] > items[-1]
        if spec.view == "compare":
            groups = tracked.groups
            return all(groups[i] != _PROGRESS for r in spec.items for i in self.row(r) if i >= 0)
        if spec.view == "progress" or not spec.items or spec.ahead < 2:
            return False
        return unfinished[0] > spec.items[-1]

    def _signature(self, spec: Spec, tracked: Tracked, refresh: float, setting: int) -> int:
        hashes = tracked.hashes
        if spec.view == "compare":
            held = tuple(hashes[i] if i >= 0 else 0 for r in spec.items for i in self.row(r))
        else:
            held = tuple([hashes[i] for i in spec.items])
        extra = len(tracked.members["progress"]) if spec.view == "progress" else 0
        code = _VIEW_CODES[spec.view]
        return hash((setting, code, spec.number, spec.ahead, refresh, extra, held)) & _MASK

    # --- writing -------------------------------------------------------------------------

    def write(
        self, state: LedgerState, *, live: Live | None = None, now: float | None = None
    ) -> Written:
        """Bring the pages on disk up to date with ``state``: the index always, every other
        page whose signature differs from the one it has on disk; pages past the end of a
        view are removed. OSError when the folder cannot be written."""
        from .render import render

        started = time.perf_counter()
        tracked = self.track(state)
        specs = self.specs(tracked)
        target = last_target(state) if self.links == "published" else None
        setting = zlib.crc32(f"{self._setting}\0{target}\0{_FORMAT}".encode())
        on_disk = self.written if self.written is not None else self._read_signatures()
        written: dict[str, int] = {}
        pages = size = 0
        counts, spent = _figures(state, tracked)
        for spec in specs:
            page_live = live is not None and (
                spec.name == GALLERY_NAME or not self.settled(spec, tracked)
            )
            refresh = live.refresh if live is not None and page_live else 0.0
            sig = written[spec.name] = self._signature(spec, tracked, refresh, setting)
            if spec.name != GALLERY_NAME and on_disk.get(spec.name) == sig:
                continue
            html = render(
                self, spec, state, tracked, specs, target=target, counts=counts, spent=spent,
                live=live if page_live else None, now=now, sig=sig,
            )  # fmt: skip
            size += self._put(spec.name, html.encode("utf-8"))
            pages += 1
        for name in set(on_disk) - set(written):
            (self.out_dir / name).unlink(missing_ok=True)
        self.written = written
        return Written(pages, size, len(specs), time.perf_counter() - started, tracked.changed)

    def render_index(
        self, state: LedgerState, *, live: Live | None = None, now: float | None = None
    ) -> str:
        """The first page as text, writing nothing."""
        from .render import render

        tracked = self.track(state)
        specs = self.specs(tracked)
        target = last_target(state) if self.links == "published" else None
        counts, spent = _figures(state, tracked)
        return render(self, specs[0], state, tracked, specs, target=target, counts=counts,
                      spent=spent, live=live, now=now, sig=0)  # fmt: skip

    def _put(self, name: str, data: bytes) -> int:
        """Replace ``name`` atomically (a reader sees the old page or the new one). Not
        fsync'd: the gallery is made again from the ledger whenever it is written."""
        path = self.out_dir / name
        tmp = path.with_name(f".{path.name}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        try:
            fd = os.open(tmp, flags, 0o644)
        except FileNotFoundError:
            path.parent.mkdir(exist_ok=True)
            fd = os.open(tmp, flags, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, 0o644)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        return len(data)

    def tidy(self) -> list[str]:
        """Remove the temporary files a writer killed in the middle of a page left behind;
        returns the names of the pages in ``gallery/``."""
        folder = self.out_dir / GALLERY_DIR
        (self.out_dir / f".{GALLERY_NAME}.tmp").unlink(missing_ok=True)
        try:
            listed = os.listdir(folder)
        except OSError:
            return []
        for name in listed:
            if name.startswith(".") and _PAGE_RE.fullmatch(name[1:].removesuffix(".tmp")):
                (folder / name).unlink(missing_ok=True)
        return [n for n in listed if _PAGE_RE.fullmatch(n)]

    def _read_signatures(self) -> dict[str, int]:
        """The pages in ``gallery/`` and the signatures they carry (0: none readable)."""
        folder = self.out_dir / GALLERY_DIR
        names = self.tidy()
        found = {}
        for name in names:
            try:
                with open(folder / name, "rb") as f:
                    head = f.read(512)
            except OSError:
                head = b""
            match = _SIG_RE.search(head)
            found[f"{GALLERY_DIR}/{name}"] = int(match.group(1), 16) if match else 0
        return found


def _figures(state: LedgerState, tracked: Tracked) -> tuple[dict[JobStatus, int], float]:
    """Jobs by status and the spend: the ledger's running figures (O(1)), or counted when
    a hand-built state holds none."""
    counts = dict(state.counts)
    if sum(counts.values()) == len(state.jobs):
        return counts, total_cost(state)
    counts = dict.fromkeys(JobStatus, 0)
    spent = 0.0
    for record in state.jobs.values():
        counts[record.status] += 1
        spent += record.cost or 0.0
    return counts, max(0.0, round(spent, 9))
