"""Machine-readable output: the run summary as one JSON object, and JSON lines on stderr.

With ``--log-format json`` stderr carries only JSON lines (the run's events, warnings from
libraries through :class:`JsonLogHandler`, errors) and ends with a ``run_ended`` event whose
``summary`` is the same object stdout carries. Both follow schemas in ``schemas/``:
``summary.schema.json`` for the object, ``events.schema.json`` for each line.
"""

from __future__ import annotations

import logging
import socket
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import orjson

from .. import __version__
from ..engine.result import RunResult
from ..errors import BatchRunnerError, printable
from ..ledger.layout import GALLERY_NAME
from ..ledger.state import JobStatus

#: Version of the summary object (``summary_version``); bumped only for breaking changes.
SUMMARY_VERSION = 1
#: Failures listed by name in the summary; ``failures_total`` counts them all.
MAX_FAILURES = 100
#: What each exit code means, as the summary's ``outcome``.
OUTCOMES = {
    0: "succeeded",
    1: "some_failed",
    2: "fix_needed",
    3: "locked",
    4: "work_left",
    130: "interrupted",
    143: "interrupted",
}


def outcome(exit_code: int) -> str:
    return OUTCOMES.get(exit_code, "error")


def summary_data(
    result: RunResult | None,
    *,
    manifest: str | Path | None,
    out_dir: str | Path | None = None,
    shard: str | None = None,
    exit_code: int | None = None,
    error: BatchRunnerError | None = None,
    ended_at: float | None = None,
) -> dict[str, Any]:
    """The whole summary of a run (or of a run that could not start: ``result`` None and
    ``error`` set) as plain JSON values. No credentials, no task tokens."""
    ended = round(time.time() if ended_at is None else ended_at, 3)
    counts = dict.fromkeys((s.value for s in JobStatus), 0)
    code = exit_code if exit_code is not None else (error.exit_code if error else 1)
    data: dict[str, Any] = {
        "summary_version": SUMMARY_VERSION,
        "tool": "batch-runner",
        "tool_version": __version__,
        "host": socket.gethostname(),
        "manifest": None if manifest is None else str(manifest),
        "out_dir": None if out_dir is None else str(out_dir),
        "shard": shard,
        "exit_code": code,
        "outcome": outcome(code),
        "interrupted": False,
        "started_at": ended,
        "ended_at": ended,
        "wall_seconds": 0.0,
        "total": 0,
        "counts": counts,
        "spent_usd": 0.0,
        "submitted": 0,
        "reconciled": 0,
        "status_requests": 0,
        "stop_reason": None,
        "failures": [],
        "failures_total": 0,
        "published": None,
        "gallery": None,
        "tracked": None,
        "metrics": None,
        "notifications": [],
        "error": None,
    }
    if error is not None:
        data["error"] = {"message": error.message, "type": type(error).__name__}
        issues = getattr(error, "issues", None)
        if issues:
            data["error"]["issues"] = list(issues[:MAX_FAILURES])
    if result is None:
        return data
    code = result.exit_code if exit_code is None else exit_code
    gallery = result.out_dir / GALLERY_NAME
    data.update(
        exit_code=code,
        outcome=outcome(code),
        out_dir=str(result.out_dir),
        interrupted=result.interrupted,
        started_at=round(ended - result.wall_seconds, 3),
        ended_at=round(ended, 3),
        wall_seconds=round(result.wall_seconds, 3),
        total=result.total,
        counts={**counts, **result.counts},
        spent_usd=round(result.spent, 6),
        submitted=result.submitted,
        reconciled=result.reconciled,
        status_requests=result.status_requests,
        stop_reason=result.stop_reason,
        failures=[{"job": j, "error": e} for j, e in result.failures[:MAX_FAILURES]],
        failures_total=len(result.failures),
        gallery=str(gallery) if gallery.exists() else None,
        tracked=dict(result.tracking) or None,
    )
    if result.published is not None:
        data["published"] = {
            **result.published.to_dict(),
            "uploaded": result.uploaded,
            "uploaded_bytes": result.uploaded_bytes,
            "found": result.found_published,
            "stopped": result.publish_error,
        }
    return data


def dumps(obj: dict[str, Any]) -> str:
    """One line of JSON, control characters escaped by JSON itself, secrets redacted."""
    return printable(orjson.dumps(obj).decode())


class JsonLines:
    """Writes JSON lines to a stream (stderr): the envelope every event line shares."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr

    def write(self, event: str, *, level: str = "info", message: str = "", **data: Any) -> None:
        obj: dict[str, Any] = {"ts": round(time.time(), 3), "level": level, "event": event}
        if message:
            obj["message"] = message
        obj.update(data)
        self.stream.write(dumps(obj) + "\n")
        self.stream.flush()

    def run_ended(self, summary: dict[str, Any]) -> None:
        """The last line: the whole summary."""
        level = "info" if summary["exit_code"] == 0 else "error"
        counts = {k: v for k, v in summary["counts"].items() if v}
        text = ", ".join(f"{v} {k}" for k, v in counts.items()) or "nothing to do"
        message = f"exit {summary['exit_code']} ({summary['outcome']}): {text}"
        self.write("run_ended", level=level, message=message, summary=summary)


class JsonLogHandler(logging.Handler):
    """Python log records (warnings from the ledger, from libraries) as JSON lines, so
    nothing but JSON reaches stderr in ``--log-format json`` mode."""

    def __init__(self, lines: JsonLines) -> None:
        super().__init__()
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not break the run
            message = str(record.msg)
        self.lines.write("log", level=record.levelname.lower(), message=message, logger=record.name)


def install_json_logging(lines: JsonLines) -> None:
    """Route every log record of WARNING and above (DEBUG with ``-v``, which installs its
    own handler first) to ``lines``, replacing text handlers on the root logger."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(JsonLogHandler(lines))
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)
