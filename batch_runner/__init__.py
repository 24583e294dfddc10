"""batch-runner: a YAML manifest of generation jobs in, verified files from the Wiro API out.

The public API, for notebooks and pipelines (the ``batch-runner`` command is a thin shell
over it)::

    import batch_runner

    manifest = batch_runner.load_manifest("manifests/demo.yaml")
    result = batch_runner.run_sync(manifest, sandbox=True)   # or: await batch_runner.run(...)
    print(result.exit_code, result.counts, result.spent)
    for job_id, record in result.records.items():
        print(job_id, record.status, [o.path for o in record.outputs])
    batch_runner.write_gallery(result.out_dir, manifest)

Everything named in ``__all__`` is importable from here; the modules behind it are private
layout. Names load on first use (PEP 562), so ``import batch_runner`` and the CLI's
``--version`` stay fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    # manifests
    "load_manifest": "manifest.loader",
    "Manifest": "manifest.loader",
    "Job": "manifest.job",
    # model definitions
    "ModelDefinition": "models.definition",
    "Resolver": "models.resolver",
    "load_for_run": "engine.api",
    # running
    "run": "engine.api",
    "run_sync": "engine.api",
    "prepare": "engine.api",
    "Target": "engine.api",
    "cancel": "engine.cancel",
    "RunOptions": "engine.options",
    "RunResult": "engine.result",
    "PollSchedule": "engine.track",
    "Reporter": "engine.reporting",
    "RunEvent": "engine.reporting",
    "Fanout": "engine.reporting",
    # the service
    "WiroClient": "wiro.client",
    "Credentials": "wiro.auth",
    "RetryPolicy": "wiro.retry",
    "Task": "wiro.records",
    # the ledger, for reading
    "read_ledger": "ledger.store",
    "LedgerState": "ledger.state",
    "JobRecord": "ledger.state",
    "JobStatus": "ledger.state",
    "SavedOutput": "ledger.events",
    "PublishedOutput": "ledger.events",
    "Shard": "ledger.shard",
    # reports
    "status": "report.status",
    "write_gallery": "report.gallery",
    "LiveGallery": "report.gallery",
    "LineReporter": "report.progress",
    "JsonReporter": "report.progress",
    "MetricsFile": "report.metrics",
    "push_metrics": "report.metrics",
    "notify": "report.notifiers",
    "summary": "report.machine",
    # errors
    "BatchRunnerError": "errors",
    "UsageError": "errors",
    "ManifestError": "errors",
    "ModelError": "errors",
    "LockedError": "errors",
    "LedgerError": "errors",
    "TrackingLost": "errors",
    "DownloadError": "errors",
    "UnsafeDownloadError": "errors",
    "OutputGoneError": "errors",
    "IntegrityError": "errors",
    "DiskFullError": "errors",
    "PublishError": "errors",
    "ApiError": "errors",
    "AuthError": "errors",
    "InvalidInputError": "errors",
    "NotFoundError": "errors",
    "ConcurrencyLimitError": "errors",
    "InsufficientBalanceError": "errors",
    "RateLimitedError": "errors",
    "ServerError": "errors",
    "ProtocolError": "errors",
    "TransportError": "errors",
}
#: Public names whose object has another name in its module.
_RENAMED = {"status": "status_data", "notify": "notify_result", "summary": "summary_data"}

__all__ = [
    "ApiError",
    "AuthError",
    "BatchRunnerError",
    "ConcurrencyLimitError",
    "Credentials",
    "DiskFullError",
    "DownloadError",
    "Fanout",
    "InsufficientBalanceError",
    "IntegrityError",
    "InvalidInputError",
    "Job",
    "JobRecord",
    "JobStatus",
    "JsonReporter",
    "LedgerError",
    "LedgerState",
    "LineReporter",
    "LiveGallery",
    "LockedError",
    "Manifest",
    "ManifestError",
    "MetricsFile",
    "NotFoundError",
    "OutputGoneError",
    "PollSchedule",
    "ProtocolError",
    "PublishError",
    "PublishedOutput",
    "RateLimitedError",
    "Reporter",
    "RetryPolicy",
    "RunEvent",
    "RunOptions",
    "RunResult",
    "SavedOutput",
    "ServerError",
    "Shard",
    "Target",
    "Task",
    "TrackingLost",
    "TransportError",
    "UnsafeDownloadError",
    "UsageError",
    "WiroClient",
    "__version__",
    "cancel",
    "load_manifest",
    "notify",
    "prepare",
    "push_metrics",
    "read_ledger",
    "run",
    "run_sync",
    "status",
    "summary",
    "write_gallery",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'batch_runner' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), _RENAMED.get(name, name))
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # what the names above resolve to, for type checkers and editors
    from .engine.api import Target, prepare, run, run_sync
    from .engine.cancel import cancel
    from .engine.options import RunOptions
    from .engine.reporting import Fanout, Reporter, RunEvent
    from .engine.result import RunResult
    from .engine.track import PollSchedule
    from .errors import (
        ApiError,
        AuthError,
        BatchRunnerError,
        ConcurrencyLimitError,
        DiskFullError,
        DownloadError,
        InsufficientBalanceError,
        IntegrityError,
        InvalidInputError,
        LedgerError,
        LockedError,
        ManifestError,
        NotFoundError,
        OutputGoneError,
        ProtocolError,
        PublishError,
        RateLimitedError,
        ServerError,
        TrackingLost,
        TransportError,
        UnsafeDownloadError,
        UsageError,
    )
    from .ledger.events import PublishedOutput, SavedOutput
    from .ledger.reading import read_ledger
    from .ledger.shard import Shard
    from .ledger.state import JobRecord, JobStatus, LedgerState
    from .manifest.job import Job
    from .manifest.loader import Manifest, load_manifest
    from .report.gallery import LiveGallery, write_gallery
    from .report.machine import summary_data as summary
    from .report.metrics import MetricsFile, push_metrics
    from .report.notifiers import notify_result as notify
    from .report.progress import JsonReporter, LineReporter
    from .report.status import status_data as status
    from .wiro.auth import Credentials
    from .wiro.client import WiroClient
    from .wiro.records import Task
    from .wiro.retry import RetryPolicy
