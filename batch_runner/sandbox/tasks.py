"""Task records and their life plans.

A task's whole future is fixed when it is created: which fault it suffers and when each
status arrives. The plan is a shared tuple of :class:`Step`; a task only stores where it is
in it, which keeps 100,000 tasks cheap. Rendering to the API's all-strings form happens
here too, so ``/Task/Detail``, ``/Task/List``, Cancel and Kill answer identically.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from . import jsonio
from .models import ModelSpec

QUEUE = "task_queue"
ACCEPT = "task_accept"
ASSIGN = "task_assign"
PREPROCESS_START = "task_preprocess_start"
PREPROCESS_END = "task_preprocess_end"
START = "task_start"
OUTPUT = "task_output"
POSTPROCESS_START = "task_postprocess_start"
POSTPROCESS_END = "task_postprocess_end"
CANCEL = "task_cancel"
ERROR = "task_error"
#: An undocumented interim status the ``unknown_status`` fault inserts.
UNKNOWN_INTERIM = "task_waiting_gpu"

TERMINAL = frozenset({POSTPROCESS_END, CANCEL, ERROR})
CANCELLABLE = frozenset({QUEUE, ACCEPT})
#: Push frames that end a task on the socket (the ``ws_final_withheld`` fault keeps them
#: back): the terminal statuses, and the service's ``task_end`` / ``*_full`` frames.
FINAL_FRAMES = TERMINAL | frozenset({"task_end", "task_output_full", "task_error_full"})

#: Field names of the per-status timestamps in a task record.
_TIME_FIELDS = (
    ("accepttime", ACCEPT),
    ("assigntime", ASSIGN),
    ("preprocessstarttime", PREPROCESS_START),
    ("preprocessendtime", PREPROCESS_END),
    ("postprocessstarttime", POSTPROCESS_START),
    ("postprocessendtime", POSTPROCESS_END),
)


@dataclass(frozen=True, slots=True)
class Step:
    """At ``queue_seconds + fraction * run_seconds`` after creation, enter ``status``."""

    fraction: float
    status: str
    percentage: int | None = None


def _plan(kind: str, detour: bool) -> tuple[Step, ...]:
    steps = [Step(0.0, ACCEPT), Step(0.05, ASSIGN)]
    if detour:
        steps.append(Step(0.07, UNKNOWN_INTERIM))
    if kind == "task_error":
        return (*steps, Step(0.10, ERROR))
    steps += [Step(0.10, PREPROCESS_START), Step(0.15, PREPROCESS_END), Step(0.20, START)]
    progress = [Step(0.20 + 0.15 * i, OUTPUT, 25 * i) for i in range(1, 5)]
    if kind == "system_cancel":
        return (*steps, progress[0], Step(0.50, CANCEL))
    return (*steps, *progress, Step(0.90, POSTPROCESS_START), Step(1.0, POSTPROCESS_END))


#: (task fault or "", unknown_status detour) -> plan
PLANS: dict[tuple[str, bool], tuple[Step, ...]] = {
    (kind, detour): _plan(kind, detour)
    for kind in ("", "generation_failure", "task_error", "system_cancel")
    for detour in (False, True)
}


def _unix(ts: float | None) -> str:
    return str(int(ts)) if ts else "0"


@dataclass(slots=True, eq=False)
class OutputRecord:
    """One output file of a succeeded task; ``sha256`` is what the sandbox will serve.
    ``index`` and ``shape`` say how to draw it again (see :mod:`.outputs`)."""

    id: str
    name: str
    parentid: str
    accesskey: str
    size: int
    sha256: str
    url: str
    added_ts: float
    contenttype: str = "video/mp4"
    index: int = 0
    shape: tuple[int, int] | None = None

    def to_api(self, task_uuid: str) -> dict[str, Any]:
        added = _unix(self.added_ts)
        return {
            "id": self.id,
            "name": self.name,
            "contenttype": self.contenttype,
            "parentid": self.parentid,
            "uuid": task_uuid,
            "size": str(self.size),
            "addedtime": added,
            "modifiedtime": added,
            "accesskey": self.accesskey,
            "foldercount": "0",
            "filecount": "0",
            "ispublic": 0,
            "expiretime": None,
            "url": self.url,
        }


@dataclass(slots=True, eq=False)
class SandboxTask:
    """Everything the sandbox knows about one task (times are float Unix seconds)."""

    id: int
    uuid: str
    token: str
    model: str
    modelid: str
    categories: str
    parameters: dict[str, str]
    price_micro: int
    fault: str  # "" or generation_failure / task_error / system_cancel
    detour: bool  # passes through UNKNOWN_INTERIM
    queue_seconds: float
    run_seconds: float
    params_as_string: bool
    progress_as_string: bool
    create_ts: float
    status: str = QUEUE
    times: dict[str, float] = field(default_factory=dict)
    end_ts: float | None = None
    cancel_ts: float | None = None
    pexit: str = "0"
    debugerror: str = ""
    debugoutput: str = ""
    progress: int = 0
    charged_micro: int = 0
    cancelled_by: str = ""
    outputs: list[OutputRecord] = field(default_factory=list)
    first_detail_after_end_ts: float | None = None
    detail_requests: int = 0
    spec: ModelSpec | None = None
    file_sources: dict[str, list[dict[str, str]]] | None = None  # None: no file inputs
    request_form: str = ""
    ws_final_withheld: bool = False
    step_index: int = 0
    loop_t0: float = 0.0
    handle: asyncio.TimerHandle | None = None

    @property
    def plan(self) -> tuple[Step, ...]:
        return PLANS[(self.fault, self.detour)]

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def output_messages(self) -> list[dict[str, Any]]:
        return [o.to_api(self.uuid) for o in self.outputs]

    def to_api(self, now: float | None = None) -> dict[str, Any]:
        """The task as the service lists it: every scalar a string, like the API page."""
        now = time.time() if now is None else now
        elapsed = (self.end_ts or now) - self.create_ts
        cost = self.charged_micro / 1_000_000
        parameters: Any = self.parameters
        if self.params_as_string:
            parameters = jsonio.dumps_text(self.parameters)
        record: dict[str, Any] = {
            "id": str(self.id),
            "uuid": self.uuid,
            "name": "",
            "socketaccesstoken": self.token,
            "parameters": parameters,
            "debugoutput": self.debugoutput,
            "debugerror": self.debugerror,
            "starttime": _unix(self.times.get(START)),
            "endtime": _unix(self.end_ts),
            "elapsedseconds": f"{max(elapsed, 0.0):.4f}",
            "status": self.status,
            "cps": f"{cost / elapsed:.12f}" if cost and elapsed > 0 else "0.000000000000",
            "totalcost": f"{cost:.12f}",
            "guestid": None,
            "projectid": "699",
            "modelid": self.modelid,
            "description": "",
            "basemodelid": "0",
            "runtype": "model",
            "modelfolderid": "",
            "modelfileid": "",
            "callbackurl": self.parameters.get("callbackUrl", ""),
            "marketplaceid": None,
            "createtime": _unix(self.create_ts),
            "canceltime": _unix(self.cancel_ts),
        }
        for name, status in _TIME_FIELDS:
            record[name] = _unix(self.times.get(status))
        record["pexit"] = self.pexit
        record["categories"] = self.categories
        record["outputs"] = self.output_messages()
        record["size"] = str(sum(o.size for o in self.outputs))
        return record

    def to_record(self) -> dict[str, Any]:
        """The sandbox's own view for tests and benchmarks (``GET /__sandbox/tasks``)."""
        return {
            "id": str(self.id),
            "uuid": self.uuid,
            "tasktoken": self.token,
            "model": self.model,
            "parameters": dict(self.parameters),
            "status": self.status,
            "fault": self.fault or ("unknown_status" if self.detour else ""),
            "unknown_status": self.detour,
            "statuses": list(self.times),
            "create_ts": self.create_ts,
            "start_ts": self.times.get(START),
            "end_ts": self.end_ts,
            "createtime": _unix(self.create_ts),
            "starttime": _unix(self.times.get(START)),
            "endtime": _unix(self.end_ts),
            "pexit": self.pexit,
            "debugerror": self.debugerror,
            "cancelled_by": self.cancelled_by,
            "price_usd": self.price_micro / 1_000_000,
            "charged_usd": self.charged_micro / 1_000_000,
            "outputs": [
                {
                    "name": o.name,
                    "url": o.url,
                    "size": o.size,
                    "sha256": o.sha256,
                    "contenttype": o.contenttype,
                }
                for o in self.outputs
            ],
            "detail_requests": self.detail_requests,
            "first_detail_after_end_ts": self.first_detail_after_end_ts,
            "request_form": self.request_form,
            "file_inputs": {k: [dict(s) for s in v] for k, v in (self.file_sources or {}).items()},
            "ws_final_withheld": self.ws_final_withheld,
        }
