"""The live terminal display: one bar for the batch, counts by state, throughput, spend, ETA.

Used only when stderr is a terminal (and not ``-q``/``--log-format``); rich honours
``NO_COLOR``. Errors still scroll above the display as lines so none is lost.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from ..engine.reporting import RunEvent
from ..errors import printable

_DONE = ("succeeded", "failed", "cancelled")
#: Info events printed above the display (warnings and errors always are).
_SHOWN = ("run_started", "stopping", "tracking")
#: Shown in this order; the ledger's statuses grouped as a person thinks of them.
_GROUPS = (
    ("waiting", ("pending",)),
    ("queued", ("submitting", "unknown", "queued")),
    ("running", ("running",)),
    ("downloading", ("downloading",)),
    ("done", ("succeeded",)),
    ("failed", ("failed", "cancelled")),
)


class LiveReporter:
    """A rich progress display on stderr."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]batch"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[eta]}"),
            console=self.console,
            transient=False,
            refresh_per_second=4,
        )
        self.task: TaskID = self.progress.add_task("batch", total=None, detail="starting", eta="")
        self.progress.start()
        self.started = time.monotonic()
        self._first_done: tuple[float, int] | None = None
        #: how completion is tracked ("push", "polling"), from the run's "tracking" events
        self.tracking = ""

    def event(self, event: RunEvent) -> None:
        if event.kind == "tracking":
            self.tracking = str(event.data.get("tracking") or "")
        if event.level in ("error", "warning") or event.kind in _SHOWN:
            style = {"error": "red", "warning": "yellow"}.get(event.level, "")
            who = f"[{event.job}] " if event.job else ""
            text = printable(f"{who}{event.message or event.kind}")
            self.console.print(text, style=style, markup=False, highlight=False)

    def update(self, counts: dict[str, int], *, total: int, spent: float) -> None:
        done = sum(counts.get(k, 0) for k in _DONE)
        groups = " ".join(
            f"{label} {sum(counts.get(s, 0) for s in members)}" for label, members in _GROUPS
        )
        now = time.monotonic()
        if self._first_done is None and done:
            self._first_done = (now, done)
        rate = ""
        eta = ""
        if self._first_done is not None:
            t0, d0 = self._first_done
            elapsed = now - t0
            if elapsed > 5 and done > d0:
                per_min = (done - d0) / elapsed * 60
                rate = f" {per_min:.1f}/min"
                if done - d0 >= 3:
                    left = (total - done) / ((done - d0) / elapsed)
                    eta = f"ETA {int(left // 60)}m{int(left % 60):02d}s"
        by = f" · {self.tracking}" if self.tracking else ""
        detail = f"{groups}{rate} ${spent:.2f}{by}"
        self.progress.update(self.task, total=total, completed=done, detail=detail, eta=eta)

    def close(self) -> None:
        self.progress.stop()
