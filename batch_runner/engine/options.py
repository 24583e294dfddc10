"""Run settings as values, with the policies that resolve them (in the manner of httpx's
``_config.py``): which output folder, how many tasks in flight, how many connections.

The CLI only turns flags into a :class:`RunOptions`; a notebook or pipeline builds the same
object, and :func:`~batch_runner.engine.api.run` applies the same precedence to both.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import UsageError
from ..manifest.loader import Manifest
from ..wiro.retry import RetryPolicy
from .pushhealth import PushPolicy
from .track import PollSchedule

#: Tasks in flight when neither the caller nor the manifest says.
DEFAULT_CONCURRENCY = 4
#: Re-hash policies for finished outputs on resume.
VERIFY_MODES = ("quick", "full")


@dataclass(frozen=True)
class RunOptions:
    """Everything a run can be told. Defaults are what ``batch-runner run`` uses.

    ``out_dir``, ``concurrency`` and ``publish`` may stay None: :meth:`resolved` fills them
    from the manifest (its ``output_dir``, ``concurrency`` and ``publish``), else
    ``outputs/<manifest name>/``, :data:`DEFAULT_CONCURRENCY` and no publishing.
    """

    out_dir: Path | None = None
    concurrency: int | None = None
    download_concurrency: int = 8
    poll: PollSchedule = field(default_factory=PollSchedule)
    #: the push watchdog, how far push is trusted, the socket's reconnect backoff
    push: PushPolicy = field(default_factory=PushPolicy)
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    task_timeout: float | None = None
    max_attempts: int = 1
    retry_failed: bool = False
    max_cost: float | None = None
    #: what ``max_cost`` counts for each job whose price is not known (None: refuse to
    #: start when there is such a job)
    max_cost_unknown: float | None = None
    deadline: float | None = None
    use_socket: bool = True
    error_budget: float = 900.0
    reconcile_delay: float = 2.0
    #: "quick": re-hash only files whose size or modification time changed since they were
    #: saved; "full": re-hash every finished output on resume
    verify: str = "quick"
    #: upload every verified output to this object-store URL (``s3://bucket/prefix``,
    #: ``gs://``, ``az://``, ``file:///``); credentials come from the store's own environment
    #: variables (see :mod:`batch_runner.engine.publish`)
    publish: str | None = None
    #: files uploaded at once (each large file also sends up to 4 parts at once)
    publish_concurrency: int = 4
    #: where the published objects can be fetched from (a CDN or a public bucket's https
    #: address): recorded as each object's ``public_url``
    publish_public_url: str | None = None
    #: files larger than this many bytes are uploaded in parts of this size (S3: >= 5 MiB)
    publish_part_size: int = 8 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.publish is not None:
            from .objstore import check_target_url

            check_target_url(self.publish, self.publish_public_url)
        for name in ("concurrency", "download_concurrency", "max_attempts", "publish_concurrency"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise UsageError(f"{name} must be a whole number of at least 1, not {value!r}.")
        for name in ("task_timeout", "max_cost", "deadline", "max_cost_unknown"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise UsageError(f"{name} must be a positive number, not {value!r}.")
        if not self.error_budget > 0 or not self.reconcile_delay >= 0:
            raise UsageError("error_budget must be positive and reconcile_delay at least 0.")
        if not isinstance(self.publish_part_size, int) or self.publish_part_size < 1024 * 1024:
            raise UsageError(
                f"publish_part_size must be at least 1 MiB, not {self.publish_part_size!r}."
            )
        if self.verify not in VERIFY_MODES:
            raise UsageError(f"verify must be 'quick' or 'full', not {self.verify!r}.")

    def resolved(self, manifest: Manifest) -> RunOptions:
        """These options with the output folder, the concurrency and the publishing target
        decided: the caller's value, else the manifest's, else the default (no publishing)."""
        return replace(
            self,
            out_dir=output_dir_for(manifest, self.out_dir),
            concurrency=self.concurrency or manifest.concurrency or DEFAULT_CONCURRENCY,
            publish=self.publish or manifest.publish,
        )

    @property
    def folder(self) -> Path:
        """The output folder of resolved options."""
        if self.out_dir is None:
            raise UsageError("RunOptions.out_dir is not resolved yet (see RunOptions.resolved).")
        return self.out_dir

    @property
    def slots(self) -> int:
        """The concurrency of resolved options."""
        return self.concurrency or DEFAULT_CONCURRENCY


def output_dir_for(manifest: Manifest, out: Path | None) -> Path:
    """``out``, else the manifest's ``output_dir``, else ``outputs/<manifest name>/``."""
    if out is not None:
        return Path(out)
    if manifest.output_dir is not None:
        return manifest.output_dir
    return default_output_dir(manifest.path)


def default_output_dir(manifest_path: Path) -> Path:
    """Where a manifest that names no ``output_dir`` writes without ``--out``."""
    return Path("outputs") / manifest_path.stem


def connection_limit(concurrency: int, download_concurrency: int) -> int:
    """HTTP connections to allow: a status request and a submission per slot plus every
    download at once, never fewer than 64 (the socket and uploads share the pool)."""
    return max(64, concurrency * 2 + download_concurrency)
