"""What a run tells the people watching it: events, count snapshots, and the reporter interface.

The engine emits :class:`RunEvent` values and periodic count snapshots to a
:class:`Reporter`; the ``report`` layer implements reporters (plain lines, JSON lines, a live
terminal display) without the engine knowing any of them. :func:`report_for` is the one place
that decides what a ledger event says to a person, so that recording an event and reporting it
is one call (:meth:`~batch_runner.engine.context.RunContext.record`).

Reporters never see credentials: events carry job ids, task ids, counts and the service's own
texts, which the error tree has already redacted.

A reporter that needs more than events and counts (the live gallery renders the ledger) may
also define ``attach(run: RunView)`` and ``detach(run: RunView)``: the runner calls the first
once the folder is locked and its ledger open, the second when the run ends, however it ends
(also when interrupted), before the ledger is closed. Both are optional (:func:`attach` and
:func:`detach` look them up); :class:`Fanout` passes them on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..ledger.events import (
    AttemptFailed,
    Event,
    JobCancelled,
    JobFailed,
    JobReset,
    JobSucceeded,
    OutputLost,
    OutputPublished,
    Reconciled,
    Submitted,
)
from ..ledger.state import JobRecord, LedgerState
from ..manifest.loader import Manifest


@dataclass(frozen=True, slots=True)
class RunEvent:
    """One thing that happened: ``kind`` names it, ``job`` is the job id when there is one."""

    kind: str
    job: str | None = None
    message: str = ""
    level: str = "info"
    data: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


class Reporter(Protocol):
    """Receives run events and periodic snapshots of the counts."""

    def event(self, event: RunEvent) -> None: ...

    def update(self, counts: dict[str, int], *, total: int, spent: float) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class RunView:
    """What an attached reporter may read of a run while it goes: the jobs (``manifest``),
    the folder, and ``state()``, the live ledger state. Read the state from the event
    loop's thread, or from one other thread that only reads: records are replaced, never
    changed, and from the first ``update`` on ``state().jobs`` gains no keys."""

    manifest: Manifest
    out_dir: Path
    state: Callable[[], LedgerState]


def attach(reporter: Reporter, run: RunView) -> None:
    """Call the reporter's optional ``attach`` hook (see the module docstring)."""
    hook = getattr(reporter, "attach", None)
    if hook is not None:
        hook(run)


def detach(reporter: Reporter, run: RunView) -> None:
    """Call the reporter's optional ``detach`` hook (see the module docstring)."""
    hook = getattr(reporter, "detach", None)
    if hook is not None:
        hook(run)


class NullReporter:
    """Reports nothing: the default for library callers that read the result instead."""

    def event(self, event: RunEvent) -> None:
        pass

    def update(self, counts: dict[str, int], *, total: int, spent: float) -> None:
        pass

    def close(self) -> None:
        pass


class Fanout:
    """Several reporters as one (a terminal display plus a metrics file, say)."""

    def __init__(self, reporters: Iterable[Reporter]) -> None:
        self.reporters = list(reporters)

    def event(self, event: RunEvent) -> None:
        for reporter in self.reporters:
            reporter.event(event)

    def update(self, counts: dict[str, int], *, total: int, spent: float) -> None:
        for reporter in self.reporters:
            reporter.update(counts, total=total, spent=spent)

    def close(self) -> None:
        for reporter in self.reporters:
            reporter.close()

    def attach(self, run: RunView) -> None:
        for reporter in self.reporters:
            attach(reporter, run)

    def detach(self, run: RunView) -> None:
        for reporter in self.reporters:
            detach(reporter, run)


def report_for(event: Event, record: JobRecord | None, note: str | None = None) -> RunEvent | None:
    """What ``event`` (already applied; ``record`` is the job's record after it) tells a
    person, or None for the events that only move counts. ``note`` replaces the default text
    where the caller knows better why something happened."""
    job = getattr(event, "job", None)
    if isinstance(event, Submitted):
        message = note or f"submitted as task {event.taskid}"
        return RunEvent("submitted", job, message, data={"taskid": event.taskid})
    if isinstance(event, Reconciled):
        if event.taskid is None:
            return RunEvent("reconciled", job, note or "no task was created; it will be submitted")
        found = f"found task {event.taskid} on the service; tracking it"
        return RunEvent("reconciled", job, note or found)
    if isinstance(event, JobFailed):
        return RunEvent("failed", job, note or event.error, level="error")
    if isinstance(event, JobCancelled):
        return RunEvent("cancelled", job, note or event.error, level="error")
    if isinstance(event, AttemptFailed):
        return RunEvent("retry", job, note or f"{event.error}; submitting again")
    if isinstance(event, JobSucceeded):
        outputs = record.outputs if record is not None else ()
        paths = ", ".join(o.path for o in outputs)
        saved = {"outputs": len(outputs), "bytes": sum(o.size for o in outputs)}
        return RunEvent("succeeded", job, note or f"saved {paths}", data=saved)
    if isinstance(event, OutputPublished):
        data: dict[str, Any] = {"path": event.path, "url": event.url, "bytes": event.size}
        return RunEvent("published", job, note or f"published {event.path}", data=data)
    if isinstance(event, JobReset):
        return RunEvent("warning", job, note or event.reason, level="warning")
    if isinstance(event, OutputLost):
        message = note or f"output {event.name!r} is missing or changed; fetching it again"
        return RunEvent("warning", job, message, level="warning")
    return None
