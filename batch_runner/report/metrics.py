"""Prometheus metrics of a run: a textfile for node_exporter (``--metrics-file``) and a push
to a Pushgateway at the end (``--pushgateway``), in prometheus-client's exposition format.

:class:`MetricsFile` is a :class:`~batch_runner.engine.reporting.Reporter`: it keeps a few
numbers up to date from the run's events and count snapshots (O(1) each, whatever the number
of jobs) and rewrites the file atomically (temp file, fsync, rename) at most every
``interval`` seconds, on close, and once more in :meth:`MetricsFile.finish` with the exit
code. node_exporter reads only ``*.prom`` files, never the temporary one. Every series
carries the labels given (the CLI uses ``batch=<manifest name>`` and, for one shard of
many, ``shard=K-of-N``), so several batches can share one textfile folder.

Counters (``*_total``) count this run; gauges describe the folder (jobs by status, spend).
``pip install 'batch-runner[metrics]'`` provides prometheus-client.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .._files import atomic_write
from ..engine.reporting import RunEvent
from ..engine.result import RunResult
from ..errors import UsageError, redact

#: Statuses in flight on the service (``tasks_in_flight``).
_IN_FLIGHT = ("submitting", "unknown", "queued", "running")
#: The Pushgateway job name.
PUSH_JOB = "batch_runner"


def _require() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise UsageError(
            "--metrics-file and --pushgateway need prometheus-client: "
            "pip install 'batch-runner[metrics]'."
        ) from None
    return prometheus_client


class MetricsFile:
    """Run metrics kept from events and counts; written to ``path`` when given (a
    Pushgateway-only caller passes None and calls :func:`push_metrics`)."""

    def __init__(
        self,
        path: str | Path | None,
        *,
        labels: Mapping[str, str] | None = None,
        interval: float = 10.0,
    ) -> None:
        _require()
        self.path = Path(path) if path is not None else None
        self.labels = dict(labels or {})
        self.interval = interval
        self.counts: dict[str, int] = {}
        self.total = 0
        self.spent = 0.0
        self.outputs_saved = 0
        self.bytes_saved = 0
        self.published = 0
        self.published_bytes = 0
        self.retries = 0
        self.reconciliations = 0
        self.errors = 0
        self.unpublished: int | None = None
        self.started = time.time()
        self.ended: float | None = None
        self.exit_code: int | None = None
        self.last_job_success: float | None = None
        self.last_success: float | None = None
        #: writes done, the seconds they took, and the last write error (never raised)
        self.writes = 0
        self.write_seconds = 0.0
        self.error: str | None = None
        self._last_write = 0.0
        self._running = False

    # --- the Reporter protocol ---------------------------------------------------------

    def event(self, event: RunEvent) -> None:
        kind = event.kind
        if kind == "succeeded":
            self.outputs_saved += int(event.data.get("outputs", 0))
            self.bytes_saved += int(event.data.get("bytes", 0))
            self.last_job_success = event.at
        elif kind == "published":
            self.published += 1
            self.published_bytes += int(event.data.get("bytes", 0))
        elif kind == "retry":
            self.retries += 1
        elif kind == "reconciled":
            self.reconciliations += 1
        elif kind == "run_started":
            found = event.data.get("last_success_at")
            self.last_success = float(found) if found else None
        if event.level == "error":
            self.errors += 1

    def update(self, counts: dict[str, int], *, total: int, spent: float) -> None:
        self.counts, self.total, self.spent = counts, total, spent
        self._running = True
        if time.monotonic() - self._last_write >= self.interval:
            self.write()

    def close(self) -> None:
        if self._running:  # a run that never started (another holds the lock) writes nothing
            self.write()

    def finish(self, result: RunResult) -> None:
        """The run's end: exit code, end time (the ledger's, when it has it), final counts;
        written at once."""
        runs = result.state.runs if result.state is not None else []
        self.ended = runs[-1].ended_at if runs and runs[-1].ended_at else time.time()
        self.exit_code = result.exit_code
        if result.counts:
            self.counts = dict(result.counts)
        self.total = result.total or self.total
        self.spent = result.spent
        if result.published is not None:
            self.unpublished = result.published.unpublished_jobs
        if result.exit_code == 0:
            self.last_success = self.ended
        self.write()

    # --- output ------------------------------------------------------------------------

    def samples(self) -> Iterator[Any]:
        """The metric families, for prometheus-client's registry."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        names, values = list(self.labels), list(self.labels.values())

        def gauge(name: str, doc: str, value: float) -> Any:
            family = GaugeMetricFamily(name, doc, labels=names)
            family.add_metric(values, value)
            return family

        def counter(name: str, doc: str, value: float) -> Any:
            family = CounterMetricFamily(name, doc, labels=names)
            family.add_metric(values, value)
            return family

        jobs = GaugeMetricFamily(
            "batch_runner_jobs", "Jobs of the folder by ledger status.", labels=[*names, "status"]
        )
        for status, count in self.counts.items():
            jobs.add_metric([*values, status], count)
        yield jobs
        yield gauge("batch_runner_manifest_jobs", "Jobs this run is responsible for.", self.total)
        in_flight = sum(self.counts.get(s, 0) for s in _IN_FLIGHT)
        yield gauge("batch_runner_tasks_in_flight", "Tasks submitted, not finished.", in_flight)
        yield gauge("batch_runner_spent_usd", "Spend of the folder's tasks (service).", self.spent)
        saved = self.outputs_saved
        yield counter("batch_runner_outputs_saved", "Outputs saved in this run.", saved)
        yield counter(
            "batch_runner_output_bytes_saved", "Bytes of outputs saved in this run.",
            self.bytes_saved,
        )  # fmt: skip
        yield counter(
            "batch_runner_outputs_published", "Outputs published in this run.", self.published
        )
        yield counter(
            "batch_runner_published_bytes", "Bytes published in this run.", self.published_bytes
        )
        yield counter("batch_runner_retries", "Retried /Run calls and attempts.", self.retries)
        yield counter(
            "batch_runner_reconciliations", "Uncertain /Run calls reconciled.",
            self.reconciliations,
        )  # fmt: skip
        yield counter("batch_runner_errors", "Errors reported in this run.", self.errors)
        if self.unpublished is not None:
            yield gauge(
                "batch_runner_unpublished_jobs", "Succeeded jobs not published at the end.",
                self.unpublished,
            )  # fmt: skip
        yield gauge(
            "batch_runner_run_start_timestamp_seconds", "When this run started.", self.started
        )
        yield gauge(
            "batch_runner_run_end_timestamp_seconds", "When this run ended (0: running).",
            self.ended or 0,
        )  # fmt: skip
        yield gauge("batch_runner_run_active", "1 while the run is going.", self.ended is None)
        yield gauge(
            "batch_runner_exit_code", "The run's exit code (-1: running).",
            -1 if self.exit_code is None else self.exit_code,
        )  # fmt: skip
        yield gauge(
            "batch_runner_last_job_success_timestamp_seconds",
            "When a job last succeeded in this run (0: none yet).", self.last_job_success or 0,
        )  # fmt: skip
        yield gauge(
            "batch_runner_last_success_timestamp_seconds",
            "When the latest run that finished every job (exit 0) ended (0: none).",
            self.last_success or 0,
        )  # fmt: skip
        yield gauge(
            "batch_runner_metrics_timestamp_seconds", "When these figures were written.",
            time.time(),
        )  # fmt: skip

    def registry(self) -> Any:
        from prometheus_client import CollectorRegistry

        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self))
        return registry

    def render(self) -> bytes:
        """The figures in the Prometheus text format."""
        from prometheus_client import generate_latest

        data: bytes = generate_latest(self.registry())
        return data

    def write(self) -> None:
        """Replace the file atomically; a failure is remembered in ``error``, never raised
        (metrics must not stop a run)."""
        if self.path is None:
            return
        began = time.perf_counter()
        self._last_write = time.monotonic()
        try:
            atomic_write(self.path.parent, self.path.name, self.render(), mode=0o644)
        except OSError as exc:
            self.error = f"cannot write {self.path}: {exc.strerror or exc}"
            return
        self.error = None
        self.writes += 1
        self.write_seconds += time.perf_counter() - began

    def check_writable(self) -> None:
        """UsageError when the file's folder is missing or not writable (before a run). The
        file itself is not touched: another run may be writing it while holding the lock."""
        if self.path is None:
            return
        folder = self.path.parent
        if not folder.is_dir():
            raise UsageError(f"--metrics-file: the folder {folder} does not exist.")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise UsageError(f"--metrics-file: the folder {folder} is not writable.")

    def finish_error(self, exit_code: int) -> None:
        """A run that ended on an error (credentials rejected, the ledger unreadable)."""
        self.ended = time.time()
        self.exit_code = exit_code
        self.write()


class _Collector:
    """A prometheus-client collector over one MetricsFile's figures."""

    def __init__(self, metrics: MetricsFile) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        return self.metrics.samples()


def safe_host(url: str) -> str:
    """The part of a URL safe to print: its host (URLs may carry tokens)."""
    return urlsplit(url).hostname or "the URL"


def push_metrics(url: str, metrics: MetricsFile, *, timeout: float = 15.0) -> str | None:
    """PUT the figures to a Pushgateway (grouped by the metrics' labels, job
    ``batch_runner``); None on success, else a message naming only the host. Blocking:
    call it in a thread from async code. Basic auth may be given in the URL."""
    prometheus_client = _require()
    from prometheus_client.exposition import basic_auth_handler, default_handler

    parts = urlsplit(url)
    user, password = parts.username, parts.password
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))

    def handler(url: str, method: str, timeout: float | None, headers: Any, data: bytes) -> Any:
        if user is not None:
            return basic_auth_handler(url, method, timeout, headers, data, user, password)
        return default_handler(url, method, timeout, headers, data)

    try:
        prometheus_client.push_to_gateway(
            bare, job=PUSH_JOB, registry=metrics.registry(), grouping_key=metrics.labels,
            timeout=timeout, handler=handler,
        )  # fmt: skip
    except Exception as exc:  # urllib raises URLError, HTTPError, OSError, ValueError
        code = getattr(exc, "code", None)
        why = f"HTTP {code}" if code else type(exc).__name__
        return redact(f"push to the Pushgateway at {safe_host(url)} failed ({why})")
    return None
