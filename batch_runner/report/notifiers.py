"""``--notify URL`` (repeatable): a short message when the run ends, through apprise, to any
service it knows (``slack://``, ``mailto://``, ``ntfy://``, ``discord://``, ``json://`` ...).

URLs carry tokens, so nothing here ever prints or returns one: a service is named by its
scheme and apprise's name for it (``slack (Slack)``), apprise's own log lines are captured
and dropped, and a failure is reported as "notification #2 (slack) failed". A failed
notification never changes the run's exit code. ``pip install 'batch-runner[notify]'``.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..engine.result import RunResult
from ..errors import UsageError, printable

#: Failures listed by name in the message.
MAX_LISTED = 10


@dataclass(frozen=True)
class Notifier:
    """One ``--notify`` URL, checked by apprise; ``name`` is safe to print."""

    index: int
    name: str
    apprise: Any = None

    def __repr__(self) -> str:
        return f"Notifier(#{self.index} {self.name})"


def _apprise() -> Any:
    """apprise, imported without its import-time DeprecationWarnings (``imghdr`` on 3.11)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import apprise
    except ImportError:
        raise UsageError("--notify needs apprise: pip install 'batch-runner[notify]'.") from None
    return apprise


def _scheme(url: str) -> str:
    return urlsplit(url).scheme.lower() or "?"


def prepare(urls: Sequence[str]) -> list[Notifier]:
    """One notifier per URL; UsageError (before the run, naming the URL's position and
    scheme only) when apprise is missing or cannot use a URL."""
    if not urls:
        return []
    apprise = _apprise()
    notifiers = []
    for n, url in enumerate(urls, 1):
        scheme = _scheme(url)
        obj = apprise.Apprise()
        with _quiet():
            ok = obj.add(url)
        if not ok or len(obj) == 0:
            raise UsageError(
                f"--notify #{n} ({scheme}://...): apprise cannot use this URL; see "
                "https://github.com/caronc/apprise/wiki for the form each service takes."
            )
        service = getattr(obj[0], "service_name", None) or scheme
        name = scheme if str(service).lower() == scheme else f"{scheme} ({service})"
        notifiers.append(Notifier(n, name, obj))
    return notifiers


def message(summary: dict[str, Any]) -> tuple[str, str]:
    """(title, body) of the end-of-run message, from the run's summary object."""
    counts = {k: v for k, v in summary["counts"].items() if v}
    parts = ", ".join(f"{v} {k}" for k, v in counts.items()) or "nothing to do"
    manifest = summary.get("manifest") or "batch"
    title = f"batch-runner {manifest}: {summary['outcome'].replace('_', ' ')}"
    lines = [
        f"{summary['total']} jobs: {parts}",
        f"exit {summary['exit_code']}; spent ${summary['spent_usd']:.2f}; "
        f"wall time {summary['wall_seconds']:.0f} s",
    ]
    if summary.get("stop_reason"):
        lines.append(f"stopped: {summary['stop_reason']}")
    if summary.get("error"):
        lines.append(f"error: {summary['error']['message']}")
    failures = summary.get("failures") or []
    if failures:
        lines.append(f"{summary['failures_total']} failed or cancelled:")
        lines += [f"  {f['job']}: {f['error']}" for f in failures[:MAX_LISTED]]
        if summary["failures_total"] > MAX_LISTED:
            lines.append(f"  ... and {summary['failures_total'] - MAX_LISTED} more")
    if summary.get("out_dir"):
        lines.append(f"outputs: {summary['out_dir']} on {summary['host']}")
    if summary.get("gallery"):
        lines.append(f"gallery: {summary['gallery']}")
    published = summary.get("published")
    if published:
        line = f"published to {published['target']}: {published['published_jobs']} jobs"
        if published["unpublished_jobs"]:
            line += f", {published['unpublished_jobs']} not published yet"
        lines.append(line)
    return printable(title), printable("\n".join(lines))


async def send(
    notifiers: Sequence[Notifier], summary: dict[str, Any], *, timeout: float = 30.0
) -> list[dict[str, Any]]:
    """Send the message to every notifier; one ``{"service", "ok"}`` per notifier (the
    service named safely). Never raises."""
    if not notifiers:
        return []
    apprise = _apprise()
    title, body = message(summary)
    failure = apprise.NotifyType.FAILURE if summary["exit_code"] else apprise.NotifyType.SUCCESS
    outcomes = []
    for notifier in notifiers:
        try:
            with _quiet():
                ok = bool(
                    await notifier.apprise.async_notify(body=body, title=title, notify_type=failure)
                )
        except Exception:  # a plugin's bug must not change the run's outcome
            ok = False
        outcomes.append({"service": f"#{notifier.index} {notifier.name}", "ok": ok})
    return outcomes


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """apprise's log lines may quote a URL with its token: keep them off every handler. Its
    plugins load lazily, some with import-time DeprecationWarnings: not the user's concern."""
    logger = logging.getLogger("apprise")
    saved = (logger.propagate, logger.handlers[:])
    logger.propagate, logger.handlers = False, [logging.NullHandler()]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        logger.propagate, logger.handlers = saved


async def notify_result(
    urls: Sequence[str], result: RunResult, *, manifest: str | None = None
) -> list[dict[str, Any]]:
    """For library callers: send the end-of-run message for ``result`` to every apprise URL
    (UsageError for a URL apprise cannot use); one ``{"service", "ok"}`` per URL."""
    from .machine import summary_data

    return await send(prepare(urls), summary_data(result, manifest=manifest))
