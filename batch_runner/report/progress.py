"""What a run tells the people watching it.

The runner emits :class:`RunEvent` values to a :class:`Reporter`; the reporter chooses the
form: plain timestamped lines (cron, CI, pipes), one JSON object per line, or a live rich
display on a terminal. Reporters never see credentials: events carry job ids, task ids,
counts and the service's own error texts, which :func:`~batch_runner.errors.redact` scrubs.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

import orjson

from ..errors import printable


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


#: Events worth a line in plain mode (others only update the counts).
_LINE_KINDS = frozenset(
    {
        "run_started",
        "submitted",
        "reconciled",
        "succeeded",
        "failed",
        "cancelled",
        "retry",
        "throttled",
        "stopping",
        "warning",
        "error",
        "run_finished",
        "resume",
    }
)


class LineReporter:
    """Plain timestamped lines: steady, greppable, quiet enough for cron.

    ``quiet`` keeps only errors and the final summary. Count summaries are printed at most
    every ``interval`` seconds.
    """

    def __init__(
        self, stream: TextIO | None = None, *, quiet: bool = False, interval: float = 10.0
    ) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.interval = interval
        self._last_update = 0.0

    def _line(self, text: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self.stream.write(f"{stamp} {printable(text)}\n")
        self.stream.flush()

    def event(self, event: RunEvent) -> None:
        if self.quiet and event.level != "error" and event.kind != "run_finished":
            return
        if event.kind not in _LINE_KINDS and event.level == "info":
            return
        who = f"[{event.job}] " if event.job else ""
        self._line(f"{event.level.upper():5} {who}{event.message or event.kind}")

    def update(self, counts: dict[str, int], *, total: int, spent: float) -> None:
        now = time.monotonic()
        if self.quiet or now - self._last_update < self.interval:
            return
        self._last_update = now
        done = sum(counts.get(k, 0) for k in ("succeeded", "failed", "cancelled"))
        parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if v)
        self._line(f"INFO  progress {done}/{total} ({parts}); spent ${spent:.2f}")

    def close(self) -> None:
        self.stream.flush()


class JsonReporter:
    """One JSON object per line, for log collectors."""

    def __init__(self, stream: TextIO | None = None, *, interval: float = 10.0) -> None:
        self.stream = stream or sys.stderr
        self.interval = interval
        self._last_update = 0.0

    def _write(self, obj: dict[str, Any]) -> None:
        self.stream.write(printable(orjson.dumps(obj).decode()) + "\n")
        self.stream.flush()

    def event(self, event: RunEvent) -> None:
        obj: dict[str, Any] = {"ts": round(event.at, 3), "level": event.level, "event": event.kind}
        if event.job:
            obj["job"] = event.job
        if event.message:
            obj["message"] = event.message
        obj.update(event.data)
        self._write(obj)

    def update(self, counts: dict[str, int], *, total: int, spent: float) -> None:
        now = time.monotonic()
        if now - self._last_update < self.interval:
            return
        self._last_update = now
        self._write(
            {
                "ts": round(time.time(), 3),
                "level": "info",
                "event": "progress",
                "total": total,
                "counts": counts,
                "spent": round(spent, 4),
            }
        )

    def close(self) -> None:
        self.stream.flush()
