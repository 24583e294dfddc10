"""Ledger events and their JSON form: what a journal line says happened.

Each event is a frozen dataclass whose ``TYPE`` is the journal's ``type``; the value types it
carries (saved and remote outputs) live here too, so the journal format has one home. What an
event *does* to a job is :mod:`batch_runner.ledger.state`'s business.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from .._slots import slot_builder


@dataclass(frozen=True, slots=True)
class SavedOutput:
    """A verified output file; ``path`` is relative to the output folder. ``content_type``
    is what the file is (by its bytes, else the service's word, else its name) and ``kind``
    its family: ``video``, ``image``, ``audio``, ``text`` or ``other`` (None in ledgers
    written before these were recorded)."""

    name: str
    path: str
    size: int
    sha256: str
    content_type: str | None = None
    kind: str | None = None


@dataclass(frozen=True, slots=True)
class RemoteOutput:
    """An output as the finished task lists it, kept so a lost file can be fetched again
    (``contenttype`` as the service gave it, "" when it gave none)."""

    name: str
    url: str
    size: int | None = None
    contenttype: str = ""


@dataclass(frozen=True, slots=True)
class PublishedOutput:
    """A saved output as uploaded to object storage (``--publish``): ``url`` is the object's
    store URL (``s3://bucket/prefix/<path>``), ``public_url`` the address to share when a
    public base was given. It counts as published only while ``sha256`` matches the saved
    output of the same name."""

    name: str
    path: str
    url: str
    size: int
    sha256: str
    etag: str | None = None
    public_url: str | None = None


@dataclass(frozen=True, slots=True)
class PreviousRun:
    """Outputs of an earlier version of an edited job, kept beside rather than overwritten."""

    fingerprint: str
    outputs: tuple[SavedOutput, ...]


#: Every record a resume reads holds one of each (see :mod:`batch_runner._slots`).
_saved_output = slot_builder(SavedOutput)
_remote_output = slot_builder(RemoteOutput)


def parse_saved(items: Any) -> tuple[SavedOutput, ...]:
    if not items:
        return ()
    build = _saved_output
    return tuple(
        [
            build(
                o["name"], o["path"], o["size"], o["sha256"], o.get("content_type"), o.get("kind")
            )
            for o in items
        ]
    )


def parse_remote(items: Any) -> tuple[RemoteOutput, ...]:
    if not items:
        return ()
    build = _remote_output
    return tuple(
        [build(o["name"], o["url"], o.get("size"), o.get("contenttype") or "") for o in items]
    )


def parse_published(items: Any) -> tuple[PublishedOutput, ...]:
    if not items:
        return ()
    return tuple([_published_entry(o) for o in items])


def _published_entry(o: Mapping[str, Any]) -> PublishedOutput:
    etag, public = o.get("etag"), o.get("public_url")
    return PublishedOutput(o["name"], o["path"], o["url"], o["size"], o["sha256"], etag, public)


def plain(items: tuple[Any, ...]) -> list[dict[str, Any]]:
    return [{f.name: getattr(o, f.name) for f in fields(o)} for o in items]


# --- events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every ledger event; ``t`` is when it happened (unix seconds)."""

    TYPE: ClassVar[str] = ""
    t: float = field(default_factory=time.time)

    def payload(self) -> dict[str, Any]:
        """The event's own fields as JSON values (without ``t``, ``type`` and ``job``)."""
        return {name: getattr(self, name) for name in _PAYLOAD[type(self)]}


@dataclass(frozen=True, slots=True, kw_only=True)
class JobEvent(Event):
    """An event about one job; :func:`apply` turns it into the job's next record."""

    job: str


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRegistered(JobEvent):
    """The manifest holds this job. A new fingerprint resets it; ``kept`` says where the
    runner moved the earlier outputs (default: where they were)."""

    TYPE = "job_registered"
    fingerprint: str
    kept: tuple[SavedOutput, ...] | None = None
    #: the model the job runs on (None in journals written before it was recorded)
    model: str | None = None

    def payload(self) -> dict[str, Any]:
        kept = None if self.kept is None else plain(self.kept)
        return {"fingerprint": self.fingerprint, "kept": kept, "model": self.model}


@dataclass(frozen=True, slots=True, kw_only=True)
class JobReset(JobEvent):
    """A new round for a finished, pending or downloading job (``--retry-failed``, lost URL)."""

    TYPE = "job_reset"
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitIntent(JobEvent):
    """Durable before /Run is sent: a task may exist from now on."""

    TYPE = "submit_intent"
    attempt: int
    fingerprint: str
    marker: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Submitted(JobEvent):
    """/Run answered with a task id; durable before the runner uses the id."""

    TYPE = "submitted"
    taskid: str
    tasktoken: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitRejected(JobEvent):
    """/Run certainly created nothing (refused, error answer, code 96)."""

    TYPE = "submit_rejected"
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitAmbiguous(JobEvent):
    """/Run failed in a way that may have created a task."""

    TYPE = "submit_ambiguous"
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Reconciled(JobEvent):
    """/Task/List says whether the uncertain /Run created a task (``taskid`` None: it did not)."""

    TYPE = "reconciled"
    taskid: str | None = None
    tasktoken: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskStatusSeen(JobEvent):
    """A non-final service status from a poll or the feed."""

    TYPE = "task_status"
    status: str
    taskid: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskDone(JobEvent):
    """The task succeeded on the service; its outputs are to be fetched."""

    TYPE = "task_done"
    outputs: tuple[RemoteOutput, ...]
    cost: float | None = None
    taskid: str | None = None

    def payload(self) -> dict[str, Any]:
        return {"outputs": plain(self.outputs), "cost": self.cost, "taskid": self.taskid}


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputSaved(JobEvent):
    """One output is on disk, verified; replaces an earlier one of the same name."""

    TYPE = "output_saved"
    name: str
    path: str
    size: int
    sha256: str
    content_type: str | None = None
    kind: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputLost(JobEvent):
    """A saved output no longer matches on disk: the job goes back to downloading."""

    TYPE = "output_lost"
    name: str
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputPublished(JobEvent):
    """A saved output is in object storage, checked (size, ETag); recorded on the succeeded
    job without changing its status. Stale (ignored) once the output changed."""

    TYPE = "output_published"
    name: str
    path: str
    url: str
    size: int
    sha256: str
    etag: str | None = None
    public_url: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSucceeded(JobEvent):
    """Every output is saved."""

    TYPE = "job_succeeded"


@dataclass(frozen=True, slots=True, kw_only=True)
class JobFailed(JobEvent):
    """Final failure. ``cost`` (each task's cost is reported once) is added to the job's."""

    TYPE = "job_failed"
    error: str
    cost: float | None = None
    retryable: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class JobCancelled(JobEvent):
    """Cancelled by the user, the service, or ``--task-timeout``."""

    TYPE = "job_cancelled"
    error: str
    cost: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptFailed(JobEvent):
    """The task failed and attempts remain: back to pending, the task id kept in history."""

    TYPE = "attempt_failed"
    error: str
    cost: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadDone(Event):
    """A local file is on the service; later jobs reuse ``url`` by ``sha256``."""

    TYPE = "upload_done"
    path: str
    sha256: str
    url: str
    job: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted(Event):
    """A runner process took the folder."""

    TYPE = "run_started"
    pid: int
    #: where this run publishes outputs (``--publish``), None when it does not
    publish: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunEnded(Event):
    """A runner process is leaving, with its exit code and the counts by status."""

    TYPE = "run_ended"
    pid: int
    exit_code: int
    counts: dict[str, int] = field(default_factory=dict)


_ALL_EVENTS: tuple[type[Event], ...] = (
    JobRegistered, JobReset, SubmitIntent, Submitted, SubmitRejected, SubmitAmbiguous,
    Reconciled, TaskStatusSeen, TaskDone, OutputSaved, OutputLost, JobSucceeded, JobFailed,
    JobCancelled, AttemptFailed, UploadDone, RunStarted, RunEnded, OutputPublished,
)  # fmt: skip
#: Event classes by their ``type``.
EVENT_TYPES: dict[str, type[Event]] = {c.TYPE: c for c in _ALL_EVENTS}
_PAYLOAD: dict[type[Event], tuple[str, ...]] = {
    c: tuple(f.name for f in fields(c) if f.name not in ("t", "job")) for c in EVENT_TYPES.values()
}
#: Events that may take a record out of a terminal status.
RESETS: tuple[type[JobEvent], ...] = (JobRegistered, JobReset, OutputLost)
#: Events that annotate a terminal record without changing its status.
ANNOTATIONS: tuple[type[JobEvent], ...] = (OutputPublished,)


def event_to_dict(event: Event) -> dict[str, Any]:
    """The journal form ``{"t", "type", "job", ...fields}`` (the ledger adds ``seq``)."""
    data: dict[str, Any] = {"t": event.t, "type": event.TYPE, "job": getattr(event, "job", None)}
    data.update(event.payload())
    return data


def event_from_dict(data: Mapping[str, Any]) -> Event:
    """Parse a journal line's object; ValueError when the type or a field is wrong."""
    cls = EVENT_TYPES.get(data.get("type"))  # type: ignore[arg-type]
    if cls is None:
        raise ValueError(f"unknown event type {data.get('type')!r}")
    kwargs = {name: data[name] for name in _PAYLOAD[cls] if name in data}
    if "t" in data:
        kwargs["t"] = data["t"]
    if data.get("job") is not None:
        kwargs["job"] = data["job"]
    try:
        if cls is TaskDone:
            kwargs["outputs"] = parse_remote(kwargs.get("outputs"))
        elif cls is JobRegistered and kwargs.get("kept") is not None:
            kwargs["kept"] = parse_saved(kwargs["kept"])
        return cls(**kwargs)
    except (TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"bad {cls.TYPE} event: {exc}") from exc
