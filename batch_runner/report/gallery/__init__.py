"""The results gallery: ``DIR/index.html`` and its pages in ``DIR/gallery/``.

People look at a batch from a phone or a laptop, often offline and long after the run, so
every page is a self-contained file: inline CSS and JS, no fonts or scripts from the network,
outputs and local input images referenced by paths relative to the folder (the folder can be
copied, moved or served as a whole, and opened from ``file://``). Only an input image given
as a URL is fetched, lazily; when it cannot load, the page shows the URL instead.

Each output is shown as what it is: a ``<video>``, a strip of ``<img>`` for a task's
pictures, an ``<audio>`` player, the first lines of a text, a link for anything else. A
manifest that runs the same inputs on several models also gets a side-by-side view, one row
per prompt and one column per model.

Everything that comes from a person or the service (prompts, errors, names, paths) is
escaped; task tokens never reach a page. A Content-Security-Policy allows only the pages'
own script (by hash), so even a missed escape could not run code.

Scale: a page holds at most :data:`PAGE_CARDS` cards (the first :data:`EAGER_CARDS` with
their media elements, the others get them as they near the screen), so the index of a
100,000-job batch opens as quickly as that of a 500-job one; the other pages are plain files
linked from it (``gallery/all-0002.html``, ``gallery/failed-0001.html``, ...). Pages show no
figures about other pages, so rewriting during a run replaces only the pages whose jobs
changed (:mod:`.book`), and :class:`LiveGallery` keeps the pages current during a run.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from ...engine.result import RunResult
from ...errors import BatchRunnerError, UsageError
from ...ledger.layout import GALLERY_DIR, GALLERY_NAME
from ...ledger.reading import read_ledger
from ...ledger.shard import merged_state
from ...ledger.state import LedgerState
from ...manifest.loader import Manifest
from .book import COMPARE_ROWS, PAGE_CARDS, Book, Written, page_name
from .cards import LINK_MODES
from .live import LiveGallery
from .render import EAGER_CARDS

__all__ = [
    "COMPARE_ROWS",
    "EAGER_CARDS",
    "GALLERY_DIR",
    "GALLERY_NAME",
    "LINK_MODES",
    "PAGE_CARDS",
    "Book",
    "LiveGallery",
    "Written",
    "page_name",
    "render_gallery",
    "write_gallery",
    "write_run_gallery",
]


def write_gallery(
    out_dir: Path,
    manifest: Manifest | None = None,
    *,
    state: LedgerState | None = None,
    links: str = "local",
    page_cards: int = PAGE_CARDS,
) -> Path:
    """Write the gallery of ``out_dir`` (``index.html`` and ``gallery/``), static, and
    return the index's path. Pages left from an earlier, larger gallery are removed.

    ``state`` defaults to the folder's ledger (:func:`read_ledger`, LedgerError when there
    is none); the manifest adds prompts, input images, models and the comparison, and sets
    the card order. Without it the pages show what the ledger holds. ``links="published"``
    points each output at its published copy where it has one with a public https address
    (``--publish-public-url``), else at the local file. OSError when the folder cannot be
    written (the caller decides whether that matters).
    """
    out_dir = Path(out_dir)
    _check_links(links)
    if state is None:
        state = read_ledger(out_dir)
    Book(out_dir, manifest, links=links, page_cards=page_cards).write(state)
    return out_dir / GALLERY_NAME


def write_run_gallery(
    result: RunResult, *, links: str = "local", live: LiveGallery | None = None
) -> Path | None:
    """The gallery after a run: the folder's (when the run changed anything or there is none
    yet, and a ``live`` gallery did not already leave it final) and, for one shard of many,
    the folder-wide pages merging every shard.

    The gallery is a convenience: a failure to write it never changes the run's outcome, so
    it is swallowed here (None when nothing was written).
    """
    if result.interrupted or not (result.changed or not (result.out_dir / GALLERY_NAME).exists()):
        return None
    written = None
    with contextlib.suppress(OSError, BatchRunnerError):
        if live is None or str(result.out_dir) not in live.finished:
            written = write_gallery(result.out_dir, result.manifest, state=result.state,
                                    links=links)  # fmt: skip
        if result.shard_base is not None and result.whole is not None:
            base = result.shard_base
            written = write_gallery(base, result.whole, state=merged_state(base), links=links)
    return written


def render_gallery(
    out_dir: Path,
    state: LedgerState,
    manifest: Manifest | None = None,
    now: float | None = None,
    *,
    links: str = "local",
) -> str:
    """The first page (``index.html``) as a string, writing nothing: for tests and for
    callers that serve it. ``now`` (unix seconds) is the "generated" time, for a
    reproducible page."""
    _check_links(links)
    return Book(Path(out_dir), manifest, links=links).render_index(state, now=now)


def _check_links(links: str) -> None:
    if links not in LINK_MODES:
        raise UsageError(f"gallery links must be 'local' or 'published', not {links!r}.")
