"""Deterministic sharding: one manifest across N workers of an array-job engine.

A job belongs to shard ``int(sha256(id)) mod N``: it depends only on the job's stable id,
never on the manifest's order or on other jobs being added. Shards are numbered from 0,
like the array indices of Kubernetes Indexed Jobs, AWS Batch and (after subtracting
``SLURM_ARRAY_TASK_MIN``) Slurm. Each shard keeps its own ledger, lock and outputs under
``DIR/shards/K-of-N/``, so N workers can share one output folder on shared storage.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, TypeVar

from ..errors import UsageError
from .layout import SHARDS_DIR
from .reading import has_ledger, read_ledger
from .state import LedgerState


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


J = TypeVar("J", bound=_HasId)
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
_FOLDER = re.compile(r"^(\d+)-of-(\d+)$")


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` of ``count`` (0 <= index < count)."""

    index: int
    count: int
    source: str = "--shard"

    def __post_init__(self) -> None:
        if self.count < 1:
            raise UsageError(
                f"The shard count must be at least 1, not {self.count} ({self.source})."
            )
        if not 0 <= self.index < self.count:
            raise UsageError(
                f"Shard index {self.index} is outside 0..{self.count - 1} ({self.source}); "
                "shards are numbered from 0."
            )

    @property
    def folder_name(self) -> str:
        return f"{self.index}-of-{self.count}"

    def folder(self, out_dir: Path) -> Path:
        return out_dir / SHARDS_DIR / self.folder_name

    def owns(self, job_id: str) -> bool:
        return shard_of(job_id, self.count) == self.index

    def select(self, jobs: Iterable[J]) -> tuple[J, ...]:
        return tuple(job for job in jobs if self.owns(job.id))


def shard_of(job_id: str, count: int) -> int:
    """The shard a job id falls in, stable across machines and manifest edits."""
    digest = hashlib.sha256(job_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def parse_shard(text: str) -> Shard:
    """``"K/N"`` -> :class:`Shard`."""
    found = _SPEC.match(text)
    if not found:
        raise UsageError(f"--shard takes K/N with 0 <= K < N (for example 0/4), not {text!r}.")
    return Shard(int(found.group(1)), int(found.group(2)))


def _int_env(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{name} must be a whole number, not {value!r}.") from None


def shard_from_env(env: Mapping[str, str], count: int | None = None) -> Shard | None:
    """The shard an array-job engine assigned to this worker, or None outside one.

    ``count`` (``--shard-count`` or ``BATCH_RUNNER_SHARD_COUNT``) is needed for Kubernetes,
    whose Indexed Jobs expose the index but not the completion count.
    """
    count = count if count is not None else _int_env(env, "BATCH_RUNNER_SHARD_COUNT")
    index = _int_env(env, "AWS_BATCH_JOB_ARRAY_INDEX")
    if index is not None:
        size = _int_env(env, "AWS_BATCH_JOB_ARRAY_SIZE") or count
        if size is None:
            raise UsageError("AWS_BATCH_JOB_ARRAY_SIZE is missing; pass --shard-count.")
        return Shard(index, size, "AWS Batch array job")
    task_id = _int_env(env, "SLURM_ARRAY_TASK_ID")
    if task_id is not None:
        minimum = _int_env(env, "SLURM_ARRAY_TASK_MIN") or 0
        size = _int_env(env, "SLURM_ARRAY_TASK_COUNT") or count
        if size is None:
            raise UsageError("SLURM_ARRAY_TASK_COUNT is missing; pass --shard-count.")
        return Shard(task_id - minimum, size, "Slurm job array")
    index = _int_env(env, "JOB_COMPLETION_INDEX")
    if index is not None:
        if count is None:
            raise UsageError(
                "JOB_COMPLETION_INDEX is set (Kubernetes Indexed Job) but the shard count is "
                "not: pass --shard-count N or set BATCH_RUNNER_SHARD_COUNT to the completions."
            )
        return Shard(index, count, "Kubernetes Indexed Job")
    return None


def existing_shards(out_dir: Path) -> list[Shard]:
    """Shard folders present under ``DIR/shards``, in index order."""
    base = out_dir / SHARDS_DIR
    if not base.is_dir():
        return []
    found = []
    for child in base.iterdir():
        match = _FOLDER.match(child.name)
        if match and child.is_dir():
            found.append(Shard(int(match.group(1)), int(match.group(2)), str(child)))
    return sorted(found, key=lambda s: (s.count, s.index))


def check_layout(out_dir: Path, shard: Shard | None) -> None:
    """Refuse to mix sharded and unsharded runs, or two shard counts, in one folder."""
    present = existing_shards(out_dir)
    counts = sorted({s.count for s in present})
    unsharded = has_ledger(out_dir)
    if shard is None:
        if present:
            raise UsageError(
                f"{out_dir} holds a sharded run ({counts[0]} shards); "
                f"run with --shard K/{counts[0]} or use another output folder."
            )
        return
    if unsharded:
        raise UsageError(
            f"{out_dir} holds an unsharded run's ledger; a sharded run needs its own folder."
        )
    other = [c for c in counts if c != shard.count]
    if other:
        raise UsageError(
            f"{out_dir} is already split into {other[0]} shards, not {shard.count}: "
            "use the same shard count for every worker, or another output folder."
        )


def merged_state(out_dir: Path) -> LedgerState:
    """Every shard's ledger as one state, output paths made relative to ``out_dir``
    (for the folder-wide gallery)."""
    merged = LedgerState()
    for shard in existing_shards(out_dir):
        folder = shard.folder(out_dir)
        if not has_ledger(folder):
            continue
        state = read_ledger(folder)
        prefix = f"{SHARDS_DIR}/{shard.folder_name}/"
        for job_id, record in state.jobs.items():
            outputs = tuple(replace(o, path=prefix + o.path) for o in record.outputs)
            merged.jobs[job_id] = replace(record, outputs=outputs)
        merged.runs.extend(state.runs)
    merged.recount()
    return merged
