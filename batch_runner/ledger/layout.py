"""The output folder's own names, in one place.

A run's folder holds the outputs (``<job id>.<ext>``, or ``<job id>/<name>`` for several)
beside files the runner owns. Job ids and output names from the service must never take
those names, so everything that names a file in the folder reads them from here::

    DIR/
      ledger.json        the snapshot (0600: holds task tokens)
      journal.jsonl      fsync'd events since the snapshot (0600; only while a run is active
                         or after a crash)
      index.html         the results gallery (its first page)
      gallery/           the gallery's other pages: <view>-NNNN.html
      .lock, .lock.json  the run lock and who holds it
      .seal.json         what a finished folder's last run rested on (an unchanged re-run
                         then skips the manifest and the ledger: engine/seal.py)
      .partial/          downloads in progress, resumed with HTTP Range
      shards/K-of-N/     one such folder per shard of a sharded run
"""

from __future__ import annotations

SNAPSHOT_NAME = "ledger.json"
JOURNAL_NAME = "journal.jsonl"
GALLERY_NAME = "index.html"
#: The gallery's further pages (``gallery/all-0002.html``, ``gallery/compare-0001.html``):
#: a folder that only the gallery writes into, and only files named ``<view>-NNNN.html``.
GALLERY_DIR = "gallery"
LOCK_NAME = ".lock"
HOLDER_NAME = ".lock.json"
SEAL_NAME = ".seal.json"
PARTIAL_DIR = ".partial"
SHARDS_DIR = "shards"

#: Job ids a manifest may not use: they would name the runner's own files.
RESERVED_IDS: frozenset[str] = frozenset({SNAPSHOT_NAME, JOURNAL_NAME, GALLERY_NAME, GALLERY_DIR})
#: Top-level name prefixes an output may never take (compared in lower case).
OWNED_PREFIXES: tuple[str, ...] = (
    SNAPSHOT_NAME,
    JOURNAL_NAME,
    GALLERY_NAME,
    GALLERY_DIR + "/",
    LOCK_NAME,
    PARTIAL_DIR,
    SEAL_NAME,
)
