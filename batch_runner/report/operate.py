"""What an operator watches of one command-line run, from start to end: progress on stderr,
the metrics file, and at the end the summary (text, or one JSON object on stdout with a
``run_ended`` line on stderr), the Pushgateway and the notifications.

:class:`RunWatch` checks every end-of-run setting *before* the run (a bad ``--notify`` URL,
an unwritable ``--metrics-file``: exit 2 before a cent is spent); once the run has ended
nothing here can change its exit code: a failed push or notification is reported, that is
all.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..engine.reporting import Fanout, Reporter
from ..engine.result import RunResult
from ..errors import BatchRunnerError, LockedError, printable
from .gallery import LiveGallery
from .machine import JsonLines, dumps, install_json_logging, summary_data
from .metrics import MetricsFile, push_metrics, safe_host
from .notifiers import prepare, send
from .progress import reporter_for


class RunWatch:
    """The reporters of a run and the steps after it, as the flags asked."""

    def __init__(
        self,
        *,
        manifest: Path | None,
        log_format: str = "auto",
        quiet: bool = False,
        shard: str | None = None,
        metrics_file: Path | None = None,
        metrics_interval: float = 10.0,
        pushgateway: str | None = None,
        notify: Sequence[str] = (),
        notify_url: str | None = None,
        gallery_links: str = "local",
        gallery_interval: float = 5.0,
    ) -> None:
        self.manifest = manifest
        self.quiet = quiet
        self.shard = shard
        self.json = log_format == "json"
        self.lines = JsonLines(sys.stderr) if self.json else None
        if self.lines is not None:
            install_json_logging(self.lines)
        self.pushgateway = pushgateway
        self.notify_url = notify_url
        self.notifiers = prepare(list(notify))
        self.metrics: MetricsFile | None = None
        if metrics_file is not None or pushgateway:
            labels = {"batch": manifest.stem if manifest is not None else "batch"}
            if shard:
                labels["shard"] = shard
            self.metrics = MetricsFile(metrics_file, labels=labels, interval=metrics_interval)
            if metrics_file is not None:
                self.metrics.check_writable()
        self.gallery_links = gallery_links
        #: the gallery kept live during the run (None: written when the run ends)
        self.gallery = (
            LiveGallery(interval=gallery_interval, links=gallery_links)
            if gallery_interval > 0
            else None
        )
        progress = reporter_for(log_format, quiet=quiet)
        watchers = [r for r in (self.metrics, self.gallery) if r is not None]
        self.reporter: Reporter = Fanout([progress, *watchers]) if watchers else progress

    def warn(self, message: str, kind: str = "warning") -> None:
        """A problem after the run: a JSON line, or ``warning: ...`` on stderr."""
        if self.lines is not None:
            self.lines.write(kind, level="warning", message=message)
        else:
            print(printable(f"warning: {message}"), file=sys.stderr)

    async def finish(self, result: RunResult) -> int:
        """Summary, metrics, notifications; returns the run's exit code, unchanged."""
        from .summary import print_summary

        if result.interrupted:
            text = f"interrupted: re-run the same command to resume ({result.out_dir})."
            if self.lines is not None:
                self.lines.write("interrupted", level="warning", message=text)
            else:
                print(printable(text), file=sys.stderr)
        elif not self.json:
            print_summary(result, quiet=self.quiet)
        if self.gallery is not None and self.gallery.error:
            self.warn(self.gallery.error)
        summary = summary_data(result, manifest=self.manifest, shard=self.shard)
        summary["metrics"] = await self._metrics(result)
        summary["notifications"] = await self._notify(result, summary)
        self._emit(summary)
        return result.exit_code

    async def aborted(self, error: BatchRunnerError, *, out_dir: Path | None = None) -> None:
        """The run ended on an error: the metrics and notifications say so (not for a held
        lock: the run holding it owns the metrics file and will notify); in JSON mode the
        error line, ``run_ended`` and the summary follow. The caller reports the error in
        text mode, as for any command."""
        summary = summary_data(None, manifest=self.manifest, out_dir=out_dir, shard=self.shard,
                               error=error)  # fmt: skip
        if not isinstance(error, LockedError):
            if self.metrics is not None:
                self.metrics.finish_error(error.exit_code)
                summary["metrics"] = await self._push(error.exit_code)
            summary["notifications"] = await self._notify(None, summary)
        if self.lines is not None:
            issues = list(getattr(error, "issues", ()) or ())
            extra = {"issues": issues} if issues else {}
            self.lines.write("error", level="error", message=error.message, **extra)
        self._emit(summary)

    async def _metrics(self, result: RunResult) -> dict[str, Any] | None:
        if self.metrics is None:
            return None
        self.metrics.finish(result)
        return await self._push(result.exit_code)

    async def _push(self, exit_code: int) -> dict[str, Any] | None:
        metrics = self.metrics
        if metrics is None:
            return None
        info: dict[str, Any] = {
            "file": str(metrics.path) if metrics.path is not None else None,
            "error": metrics.error,
            "pushgateway": safe_host(self.pushgateway) if self.pushgateway else None,
            "pushed": None,
        }
        if metrics.error:
            self.warn(metrics.error)
        if self.pushgateway:
            problem = await asyncio.to_thread(push_metrics, self.pushgateway, metrics)
            info["pushed"] = problem is None
            if problem:
                self.warn(problem)
        return info

    async def _notify(
        self, result: RunResult | None, summary: dict[str, Any]
    ) -> list[dict[str, Any]]:
        outcomes = await send(self.notifiers, summary)
        for outcome in outcomes:
            if not outcome["ok"]:
                self.warn(f"notification {outcome['service']} failed")
        if self.notify_url and result is not None:  # as before: only for a run that ended
            from .notify import notify, summary_payload

            payload = summary_payload(
                result, exit_code=result.exit_code, manifest=str(self.manifest)
            )
            ok = await notify(self.notify_url, payload, warn=self.warn)
            outcomes.append({"service": f"notify-url ({safe_host(self.notify_url)})", "ok": ok})
        return outcomes

    def _emit(self, summary: dict[str, Any]) -> None:
        if self.lines is None:
            return
        self.lines.run_ended(summary)
        sys.stdout.write(dumps(summary) + "\n")
        sys.stdout.flush()


def emit_failure(
    error: BatchRunnerError,
    *,
    manifest: Path | None,
    out_dir: Path | None = None,
    shard: str | None = None,
) -> int:
    """JSON mode, for an error that ended the command: an ``error`` line and ``run_ended`` on
    stderr, the summary on stdout. Returns the error's exit code."""
    lines = JsonLines(sys.stderr)
    issues = list(getattr(error, "issues", ()) or ())
    extra = {"issues": issues} if issues else {}
    lines.write("error", level="error", message=error.message, **extra)
    summary = summary_data(None, manifest=manifest, out_dir=out_dir, shard=shard, error=error)
    lines.run_ended(summary)
    sys.stdout.write(dumps(summary) + "\n")
    sys.stdout.flush()
    return error.exit_code
