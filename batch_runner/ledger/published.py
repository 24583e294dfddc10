"""What the ledger says about publishing (``--publish``), as pure queries over job records.

An output counts as published to a target when the job is ``succeeded`` and its record's
``published`` holds an entry of the same name whose ``sha256`` is the saved output's and whose
``url`` is the object URL for that target (``<target>/<path>``). A re-downloaded or edited
output, or another target, therefore makes it unpublished again without any event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

from .events import PublishedOutput, SavedOutput
from .state import JobRecord, JobStatus, LedgerState


def object_url(target: str, path: str) -> str:
    """The store URL of the object for the output at ``path`` (relative to the folder)."""
    return f"{target.rstrip('/')}/{path}"


def public_url(base: str | None, path: str) -> str | None:
    """``<base>/<path>`` (percent-encoded), the address to share; None without a base."""
    if not base:
        return None
    return f"{base.rstrip('/')}/{quote(path, safe='/')}"


def entry_for(record: JobRecord, name: str) -> PublishedOutput | None:
    for entry in record.published:
        if entry.name == name:
            return entry
    return None


def is_current(record: JobRecord, out: SavedOutput, target: str) -> bool:
    """True when ``out`` is recorded as uploaded to ``target`` with its present content."""
    entry = entry_for(record, out.name)
    return (
        entry is not None
        and entry.sha256 == out.sha256
        and entry.url == object_url(target, out.path)
    )


def unpublished_outputs(record: JobRecord, target: str) -> list[SavedOutput]:
    """The saved outputs of a succeeded job not (or no longer) published to ``target``."""
    if record.status != JobStatus.SUCCEEDED:
        return []
    return [out for out in record.outputs if not is_current(record, out, target)]


def is_published(record: JobRecord, target: str) -> bool:
    """A succeeded job whose every output is published to ``target``."""
    return record.status == JobStatus.SUCCEEDED and not unpublished_outputs(record, target)


def last_target(state: LedgerState) -> str | None:
    """The publish target of the most recent run that published, None if none did."""
    for run in reversed(state.runs):
        if run.publish:
            return run.publish
    return None


@dataclass(frozen=True)
class PublishFigures:
    """How far publishing to ``target`` got, over some jobs of a ledger."""

    target: str
    #: succeeded jobs with every output published
    published_jobs: int
    #: succeeded jobs with at least one output not published
    unpublished_jobs: int
    #: objects recorded for ``target`` with their present content, and their bytes
    objects: int
    bytes: int

    def to_dict(self) -> dict[str, object]:
        return {
            "target": self.target,
            "published_jobs": self.published_jobs,
            "unpublished_jobs": self.unpublished_jobs,
            "objects": self.objects,
            "bytes": self.bytes,
        }


def figures(
    state: LedgerState, target: str, job_ids: Iterable[str] | None = None
) -> PublishFigures:
    """Publishing figures for ``target`` over ``job_ids`` (default: every job); O(jobs)."""
    jobs = state.jobs
    records = jobs.values() if job_ids is None else (jobs[j] for j in job_ids if j in jobs)
    return figures_of(records, target)


def figures_of(records: Iterable[JobRecord], target: str) -> PublishFigures:
    """Publishing figures for ``target`` over ``records`` in any order (``status`` feeds
    records it builds from the snapshot's bytes, one at a time)."""
    done = missing = objects = size = 0
    for record in records:
        if record.status != JobStatus.SUCCEEDED:
            continue
        left = False
        for out in record.outputs:
            if is_current(record, out, target):
                objects += 1
                size += out.size
            else:
                left = True
        if left:
            missing += 1
        else:
            done += 1
    return PublishFigures(target, done, missing, objects, size)
