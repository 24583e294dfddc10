"""Reporters for logs: plain timestamped lines (cron, CI, pipes) and one JSON object per line.

They implement :class:`~batch_runner.engine.reporting.Reporter`; the live terminal display is
:mod:`batch_runner.report.live`. Text from the service is shown through
:func:`~batch_runner.errors.printable`: redacted, control characters made visible.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import orjson

from ..engine.reporting import Reporter, RunEvent
from ..errors import printable

__all__ = ["JsonReporter", "LineReporter", "Reporter", "RunEvent", "reporter_for"]


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
        "tracking",
    }
)


class _Batched:
    """Lines written in batches: at 10,000 jobs a minute, one write and flush per line is a
    system call per line. Info lines wait at most ``LINGER`` seconds (the engine's progress
    tick, :meth:`update`, also writes them out); a warning or an error goes out at once with
    everything before it, and :meth:`close` writes the rest."""

    #: Longest an info line waits before it is written.
    LINGER = 0.2

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream or sys.stderr
        self._lines: list[str] = []
        self._since = 0.0

    def _emit(self, line: str, *, urgent: bool = False) -> None:
        if not self._lines:
            self._since = time.monotonic()
        self._lines.append(line)
        if urgent or time.monotonic() - self._since >= self.LINGER:
            self._drain()

    def _drain(self) -> None:
        if self._lines:
            text, self._lines = "".join(self._lines), []
            self.stream.write(text)
        self.stream.flush()


class LineReporter(_Batched):
    """Plain timestamped lines: steady, greppable, quiet enough for cron.

    ``quiet`` keeps only errors and the final summary. Count summaries are printed at most
    every ``interval`` seconds.
    """

    def __init__(
        self, stream: TextIO | None = None, *, quiet: bool = False, interval: float = 10.0
    ) -> None:
        super().__init__(stream)
        self.quiet = quiet
        self.interval = interval
        self._last_update = 0.0

    def _line(self, text: str, *, urgent: bool = True) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self._emit(f"{stamp} {printable(text)}\n", urgent=urgent)

    def event(self, event: RunEvent) -> None:
        if self.quiet and event.level != "error" and event.kind != "run_finished":
            return
        if event.kind not in _LINE_KINDS and event.level == "info":
            return
        who = f"[{event.job}] " if event.job else ""
        urgent = event.level != "info" or event.kind == "run_finished"
        self._line(f"{event.level.upper():5} {who}{event.message or event.kind}", urgent=urgent)

    def update(self, counts: dict[str, int], *, total: int, spent: float) -> None:
        now = time.monotonic()
        if self._lines:
            self._drain()
        if self.quiet or now - self._last_update < self.interval:
            return
        self._last_update = now
        done = sum(counts.get(k, 0) for k in ("succeeded", "failed", "cancelled"))
        parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if v)
        self._line(f"INFO  progress {done}/{total} ({parts}); spent ${spent:.2f}")

    def close(self) -> None:
        self._drain()


class JsonReporter(_Batched):
    """One JSON object per line, for log collectors."""

    def __init__(self, stream: TextIO | None = None, *, interval: float = 10.0) -> None:
        super().__init__(stream)
        self.interval = interval
        self._last_update = 0.0

    def _write(self, obj: dict[str, Any]) -> None:
        urgent = obj.get("level") != "info" or obj.get("event") == "run_ended"
        self._emit(printable(orjson.dumps(obj).decode()) + "\n", urgent=urgent)

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
        if self._lines:
            self._drain()
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
        self._drain()


def reporter_for(log_format: str = "auto", *, quiet: bool = False) -> Reporter:
    """A live display when stderr is a terminal (``auto``), plain timestamped lines
    otherwise (``text``), one JSON object per event on request (``json``)."""
    if log_format == "json":
        return JsonReporter(sys.stderr)
    if log_format == "auto" and not quiet and sys.stderr.isatty():
        try:
            from .live import LiveReporter
        except ImportError:  # pragma: no cover
            pass
        else:
            return LiveReporter()
    return LineReporter(sys.stderr, quiet=quiet)
