"""Typed records for what the Wiro API returns.

The service sends every field as a string (``"size": "202472"``, ``"pexit": "0"``), sometimes
a number, sometimes null, and ``parameters`` either as an object or as JSON text. These
parsers accept all of those forms and never raise on a missing or odd optional field: a
reply whose *required* fields are missing raises :class:`~batch_runner.errors.ProtocolError`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..errors import ProtocolError, redact


class TaskStatus(StrEnum):
    """Statuses a task goes through on the service, in order."""

    #: waiting in the queue (counts against the concurrency limit)
    QUEUE = "task_queue"
    #: accepted for processing
    ACCEPT = "task_accept"
    #: being assigned to a worker
    ASSIGN = "task_assign"
    #: preprocessing started
    PREPROCESS_START = "task_preprocess_start"
    #: preprocessing done
    PREPROCESS_END = "task_preprocess_end"
    #: execution started
    START = "task_start"
    #: output being generated
    OUTPUT = "task_output"
    #: post-processing started (seen on the socket)
    POSTPROCESS_START = "task_postprocess_start"
    #: terminal: finished; success only with pexit "0" and outputs
    POSTPROCESS_END = "task_postprocess_end"
    #: terminal: cancelled by the user or the system
    CANCEL = "task_cancel"
    #: terminal: fatal failure before execution
    ERROR = "task_error"


#: The statuses after which a task never changes again.
TERMINAL_STATUSES: frozenset[str] = frozenset(
    {TaskStatus.POSTPROCESS_END, TaskStatus.CANCEL, TaskStatus.ERROR}
)

#: Statuses in which the task has not started running yet (``/Task/Cancel`` applies).
QUEUED_STATUSES: frozenset[str] = frozenset({TaskStatus.QUEUE, TaskStatus.ACCEPT})


def as_str(value: Any) -> str:
    """The API's string form of a scalar ("" for None)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def as_float(value: Any) -> float | None:
    """A float from a string or number; None when absent or not a finite number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def as_int(value: Any) -> int | None:
    """An integer from ``"123"``, ``123`` or ``"123.0"``; None when absent or not a number."""
    number = as_float(value)
    return None if number is None else int(number)


def as_time(value: Any) -> float | None:
    """Unix seconds from ``"1734513807"`` or ``"2026-07-24 09:10:11"``; None for 0 or absent."""
    number = as_float(value)
    if number is not None:
        return number if number > 0 else None
    if isinstance(value, str) and value.strip():
        from datetime import UTC, datetime

        for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ"):
            try:
                return datetime.strptime(value.strip(), fmt).replace(tzinfo=UTC).timestamp()
            except ValueError:
                continue
    return None


def as_parameters(value: Any) -> dict[str, str]:
    """``parameters`` as a flat dict of strings, whether it came as an object or JSON text."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError:
            return {}
    if not isinstance(value, dict):
        return {}
    return {
        str(k): json.dumps(v, separators=(",", ":")) if isinstance(v, list | dict) else as_str(v)
        for k, v in value.items()
    }


@dataclass(frozen=True, slots=True)
class OutputFile:
    """One output of a finished task."""

    name: str
    url: str
    size: int | None = None
    contenttype: str = ""
    id: str = ""

    @classmethod
    def from_api(cls, data: Any) -> OutputFile:
        if not isinstance(data, dict):
            raise ProtocolError("An output entry is not an object.", endpoint="/Task/Detail")
        url = data.get("url")
        if not isinstance(url, str) or not url:
            raise ProtocolError("An output entry has no URL.", endpoint="/Task/Detail")
        return cls(
            name=as_str(data.get("name")),
            url=url,
            size=as_int(data.get("size")),
            contenttype=as_str(data.get("contenttype")),
            id=as_str(data.get("id")),
        )


@dataclass(frozen=True, slots=True)
class Task:
    """A task as ``/Task/Detail``, ``/Task/List``, ``/Task/Cancel`` and ``/Task/Kill`` return it."""

    id: str
    status: str
    tasktoken: str = ""
    uuid: str = ""
    pexit: str = ""
    debugerror: str = ""
    debugoutput: str = ""
    totalcost: float | None = None
    elapsedseconds: float | None = None
    createtime: float | None = None
    starttime: float | None = None
    endtime: float | None = None
    callbackurl: str = ""
    parameters: dict[str, str] = field(default_factory=dict)
    outputs: tuple[OutputFile, ...] = ()

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        """Success only with ``task_postprocess_end``, outputs, and ``pexit`` "0".

        A record without ``pexit`` at all (the API page's own Detail example has none) is
        judged by its outputs: calling a paid, finished video a failure would lose it, and
        with ``--max-attempts`` pay for it again.
        """
        return (
            self.status == TaskStatus.POSTPROCESS_END
            and self.pexit.strip() in ("0", "")
            and len(self.outputs) > 0
        )

    def failure_reason(self) -> str:
        """A readable reason for a terminal task that did not succeed (it goes into the ledger
        and the logs, so any credential the service quoted back is redacted)."""
        detail = redact((self.debugerror or "").strip())
        if self.status == TaskStatus.CANCEL:
            return f"cancelled on the service{': ' + detail if detail else ''}"
        if self.status == TaskStatus.ERROR:
            return f"task_error on the service{': ' + detail if detail else ''}"
        if self.pexit.strip() not in ("", "0"):
            return f"generation failed (pexit {self.pexit}){': ' + detail if detail else ''}"
        if not self.outputs:
            return f"the task finished without outputs{': ' + detail if detail else ''}"
        return detail or "the task did not succeed"

    @classmethod
    def from_api(cls, data: Any, endpoint: str = "/Task/Detail") -> Task:
        if not isinstance(data, dict):
            raise ProtocolError("A task entry is not an object.", endpoint=endpoint)
        task_id = as_str(data.get("id")).strip()
        status = as_str(data.get("status")).strip()
        if not task_id or not status:
            raise ProtocolError("A task entry lacks its id or status.", endpoint=endpoint)
        raw_outputs = data.get("outputs")
        outputs: tuple[OutputFile, ...] = ()
        if isinstance(raw_outputs, list):
            outputs = tuple(OutputFile.from_api(o) for o in raw_outputs)
        elif raw_outputs not in (None, "", {}):
            raise ProtocolError("A task's outputs are not a list.", endpoint=endpoint)
        return cls(
            id=task_id,
            status=status,
            tasktoken=as_str(data.get("socketaccesstoken")),
            uuid=as_str(data.get("uuid")),
            pexit=as_str(data.get("pexit")),
            debugerror=as_str(data.get("debugerror")),
            debugoutput=as_str(data.get("debugoutput")),
            totalcost=as_float(data.get("totalcost")),
            elapsedseconds=as_float(data.get("elapsedseconds")),
            createtime=as_time(data.get("createtime")),
            starttime=as_time(data.get("starttime")),
            endtime=as_time(data.get("endtime")),
            callbackurl=as_str(data.get("callbackurl")),
            parameters=as_parameters(data.get("parameters")),
            outputs=outputs,
        )


@dataclass(frozen=True, slots=True)
class Submission:
    """What ``/Run`` returns: the new task's id and its socket access token."""

    taskid: str
    tasktoken: str

    def __repr__(self) -> str:
        return f"Submission(taskid={self.taskid!r})"


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A file stored through ``/File/Upload``; ``url`` is what ``inputImageUrl`` takes."""

    url: str
    name: str = ""
    size: int | None = None


@dataclass(frozen=True, slots=True)
class TaskPage:
    """One page of ``/Task/List``."""

    total: int
    tasks: tuple[Task, ...]
