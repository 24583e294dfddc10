"""How a run ended: what the summary, the exit code and a notebook read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..ledger.published import PublishFigures
from ..ledger.state import JobRecord, LedgerState
from ..manifest.loader import Manifest


@dataclass
class RunResult:
    """The outcome of one run of a manifest into a folder.

    ``counts`` are jobs per ledger status; ``failures`` are (job id, reason) of failed and
    cancelled jobs; ``state`` is the folder's ledger as the run left it (``records`` maps job
    ids to their :class:`~batch_runner.ledger.state.JobRecord`). ``interrupted`` is set when a
    signal stopped the run (exit 130 or 143): everything durable is on disk, re-run to resume.
    ``shard_base`` is the folder shared by every shard when this run was one shard of many,
    and ``whole`` the full manifest beside ``manifest`` (the jobs this run had).
    """

    exit_code: int
    counts: dict[str, int]
    total: int
    spent: float
    wall_seconds: float
    stop_reason: str | None
    failures: list[tuple[str, str]]
    out_dir: Path
    submitted: int = 0
    reconciled: int = 0
    status_requests: int = 0
    #: how completion was tracked: the last mode (``by``, ``reason``, ``message``), status
    #: requests by why they were made, final frames received and missed, socket attempts
    tracking: dict[str, Any] = field(default_factory=dict)
    edited_pending: int = 0
    #: False when the run recorded nothing new (everything was already done)
    changed: bool = True
    interrupted: bool = False
    shard_base: Path | None = None
    #: publishing (``--publish``) over this run's jobs, None when the run did not publish;
    #: ``uploaded``/``uploaded_bytes`` were sent in this run, ``found_published`` objects were
    #: in the store already (recorded, not sent again); ``publish_error`` says why publishing
    #: stopped early
    published: PublishFigures | None = None
    uploaded: int = 0
    uploaded_bytes: int = 0
    found_published: int = 0
    publish_error: str | None = None
    state: LedgerState | None = field(default=None, repr=False)
    manifest: Manifest | None = field(default=None, repr=False)
    whole: Manifest | None = field(default=None, repr=False)

    @property
    def records(self) -> Mapping[str, JobRecord]:
        """Every job of the folder's ledger by id (empty when the ledger was never read)."""
        return self.state.jobs if self.state is not None else {}

    @property
    def succeeded(self) -> int:
        return self.counts.get("succeeded", 0)
