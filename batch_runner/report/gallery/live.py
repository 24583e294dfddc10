"""The gallery during a run: :class:`LiveGallery`, a reporter that keeps ``DIR/index.html``
and its pages current while outputs arrive, and leaves them static when the run ends.

While the run is active the pages that can still change reload themselves every ``interval``
seconds and the index carries a "run in progress" banner (counts, spend, ETA). Rewrites run
on a thread of their own, at most one at a time and at most every ``interval`` seconds, and
only when the ledger moved (or, while live, now and then for the index's clock); each scans
the ledger once and replaces only the pages whose jobs changed (see
:class:`~batch_runner.report.gallery.book.Book`). When the run ends (``detach``), the index
and the pages still live are written once more, static, unless the run changed nothing.
"""

from __future__ import annotations

import contextlib
import threading
import time
from html import escape

from ...engine.reporting import RunEvent, RunView
from ...errors import UsageError, printable
from ...ledger.layout import GALLERY_NAME
from ...ledger.state import LedgerState
from .book import PAGE_CARDS, Book, Written
from .cards import LINK_MODES, money
from .page import Live

_FINISHED = ("succeeded", "failed", "cancelled")
_IN_FLIGHT = ("submitting", "unknown", "queued", "running")


class LiveGallery:
    """A :class:`~batch_runner.engine.reporting.Reporter` that keeps the run's gallery live.

    Pass it to :func:`batch_runner.run` (``reporter=LiveGallery()``, or in a ``Fanout``
    beside another reporter); it learns the folder and the manifest from the run itself.
    ``links="published"`` points the pages at the published copies (see
    :func:`~batch_runner.report.gallery.write_gallery`). A gallery that cannot be written
    never changes the run: the last problem is kept in :attr:`error`.
    """

    def __init__(
        self, *, interval: float = 5.0, links: str = "local", page_cards: int = PAGE_CARDS
    ) -> None:
        if links not in LINK_MODES:
            raise UsageError(f"gallery links must be 'local' or 'published', not {links!r}.")
        if not interval > 0:
            raise UsageError(f"the gallery interval must be positive, not {interval!r}.")
        self.interval = interval
        self.links = links
        self.page_cards = page_cards
        #: seconds after which an index not rewritten stops reloading (the run may be gone);
        #: the index is rewritten at least four times as often
        self.stale = int(max(120, 20 * interval))
        self.error: str | None = None
        #: every rewrite so far (for benchmarks and tests)
        self.writes: list[Written] = []
        #: folders whose gallery this reporter left final (static) at the end of a run
        self.finished: set[str] = set()
        self._run: RunView | None = None
        self._book: Book | None = None
        self._thread: threading.Thread | None = None
        self._live = False
        self._seq = -1
        self._seq0 = -1
        self._last = 0.0
        self._counts: dict[str, int] = {}
        self._total = 0
        self._spent = 0.0
        self._first: tuple[float, int] | None = None

    # --- the Reporter protocol ---------------------------------------------------------

    def event(self, event: RunEvent) -> None:
        pass

    def update(self, counts: dict[str, int], *, total: int, spent: float) -> None:
        self._counts, self._total, self._spent = counts, total, spent
        now = time.monotonic()
        done = sum(counts.get(s, 0) for s in _FINISHED)
        if self._first is None:
            self._first = (now, done)
        run = self._run
        if run is None or (self._thread is not None and self._thread.is_alive()):
            return
        since = now - self._last
        state = run.state()
        if since < self.interval:
            return
        if state.seq == self._seq and not (self._live and since >= self.stale / 4):
            return  # nothing new (while live, the index is still rewritten now and then)
        self._seq, self._last = state.seq, now
        self._thread = threading.Thread(
            target=self._write, args=(state, self._banner(now, done)), name="live-gallery",
            daemon=True,
        )  # fmt: skip
        self._thread.start()

    def close(self) -> None:
        pass

    # --- the run's hooks ---------------------------------------------------------------

    def attach(self, run: RunView) -> None:
        """A run starts: nothing is written until its ledger moves."""
        self._run = run
        self._book = Book(run.out_dir, run.manifest, links=self.links, page_cards=self.page_cards)
        self._seq = self._seq0 = run.state().seq
        self._live = False
        self._last = 0.0
        self._first = None

    def detach(self, run: RunView) -> None:
        """The run ended: the pages once more, static, when the run changed anything (or
        there is no gallery yet)."""
        self._run = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        state = run.state()
        # the run's own end (run_ended) moves the ledger by one
        changed = self._live or state.seq - self._seq0 > 1
        if changed or not (run.out_dir / GALLERY_NAME).exists():
            self._write(state, None)
        elif self._book is not None:
            with contextlib.suppress(OSError):
                self._book.tidy()  # what a writer killed before this run left
        self._live = False
        self.finished.add(str(run.out_dir))

    # --- writing -----------------------------------------------------------------------

    def _write(self, state: LedgerState, live: Live | None) -> None:
        book = self._book
        if book is None:
            return
        try:
            self.writes.append(book.write(state, live=live))
            self._live = live is not None
            self.error = None
        except Exception as exc:  # the gallery never changes a run: say why, go on
            self.error = printable(f"the gallery could not be written: {exc}")
            book.written = None  # read what is on disk next time

    def _banner(self, now: float, done: int) -> Live:
        counts, total = self._counts, self._total
        failed = counts.get("failed", 0) + counts.get("cancelled", 0)
        flying = sum(counts.get(s, 0) for s in _IN_FLIGHT)
        parts = [
            "<b>Run in progress</b>",
            f"<b>{done:,}</b> of <b>{total:,}</b> finished"
            + (f" (<b>{failed:,}</b> failed or cancelled)" if failed else ""),
            f"<b>{flying:,}</b> on the service",
        ]
        if fetching := counts.get("downloading", 0):
            parts.append(f"<b>{fetching:,}</b> downloading")
        parts.append(f"spend <b>{money(self._spent)}</b>")
        parts.append(f"ETA <b>{_eta(self._first, now, done, total)}</b>")
        stamp = time.strftime("%H:%M:%S")
        parts.append(f"updated {stamp} · this page reloads every {self.interval:g} s")
        stale = (
            f'<p id="stale" class="e" hidden>No update since {stamp}: the run may have '
            "stopped. <code>batch-runner status</code> on the folder says; the next run "
            "brings this page up to date.</p>"
        )
        return Live(self.interval, " · ".join(parts) + stale, self.stale)


def _eta(first: tuple[float, int] | None, now: float, done: int, total: int) -> str:
    """Time left at the rate jobs finished since the reporter first heard of the run."""
    if first is None:
        return "unknown"
    t0, d0 = first
    elapsed = now - t0
    if elapsed < 5 or done - d0 < 3:
        return "estimating"
    left = (total - done) / ((done - d0) / elapsed)
    if left < 60:
        return "under a minute"
    minutes = round(left / 60)
    return escape(f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min")
