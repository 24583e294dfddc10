"""The emulated project: its tasks, its money, and the clock that moves tasks along.

Each task advances through its plan (see :mod:`.tasks`) by ``loop.call_later`` timers. One
callback applies every step that is due, so near-instant tasks cost one or two callbacks
while still publishing every status to the socket. Money follows the service's rules: a
task reserves its quoted price while in flight (for the code-97 check) and is charged only
when it succeeds, by its model's prices (:mod:`.pricing`); its outputs are the model's kind
of file (:mod:`.outputs`).
"""

from __future__ import annotations

import asyncio
import json
import random
import string
import time
import uuid
from collections import Counter
from collections.abc import Callable
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from . import jsonio, outputs
from .config import FaultConfig, SandboxConfig
from .models import ModelSpec
from .pricing import concurrency_limit_for, to_micro, to_usd
from .stats import Counters
from .tasks import (
    CANCEL,
    ERROR,
    OUTPUT,
    POSTPROCESS_END,
    QUEUE,
    UNKNOWN_INTERIM,
    OutputRecord,
    SandboxTask,
    Step,
)

_ALNUM = string.ascii_letters + string.digits
#: Random bytes to token characters (one table lookup per character, not a choice each).
_TOKEN_TABLE = bytes(ord(_ALNUM[b % len(_ALNUM)]) for b in range(256))
_TASK_FAULTS = ("generation_failure", "task_error", "system_cancel")
FIRST_TASK_ID = 1_000_001

_FAILURE_TEXTS = {
    "generation_failure": "{owner} generation failed: upstream returned status 500011 "
    "(generation error). Traceback: RuntimeError: generation failed",
    "task_error": "Output folder creation failed",
    "system_cancel": "Task was cancelled by the system: worker lost.",
}


@lru_cache(maxsize=16)
def _categories(categories: tuple[str, ...]) -> str:
    return json.dumps(list(categories))


def _url_name(name: str) -> str:
    """The output's name as the last URL segment; "." and ".." (which URL normalisation
    removes, even percent-encoded) become "output" so that the URL still reaches the CDN."""
    return quote(name, safe="") if name.strip(".") else "output"


def canonical_inputs(parameters: dict[str, str]) -> str:
    """The key for "tasks per distinct input set": canonical JSON of resolved parameters."""
    return jsonio.dumps_sorted(parameters)


class Project:
    """Tasks, balance, concurrency and task life for one API key."""

    def __init__(self, config: SandboxConfig, counters: Counters) -> None:
        self.config = config
        self.counters = counters
        self.faults: FaultConfig = config.faults
        self.balance_micro = to_micro(config.balance_usd)
        self.concurrency_limit = config.concurrency_limit
        self.reserved_micro = 0
        self.charged_micro = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.tasks: dict[int, SandboxTask] = {}
        self.by_token: dict[str, SandboxTask] = {}
        self.by_uuid: dict[str, SandboxTask] = {}
        self.by_inputs: Counter[str] = Counter()
        self._order: list[SandboxTask] = []
        self.origin = "http://127.0.0.1"
        self.publish: Callable[[SandboxTask, str], None] = lambda task, status: None
        self._next_id = FIRST_TASK_ID
        self._rng = random.Random(f"{config.seed}/tasks")
        self._ids = random.Random(f"{config.seed}/ids")
        self._rng_ws = random.Random(f"{config.seed}/ws-final")

    # -- admission -------------------------------------------------------------------------

    def limit(self) -> int | None:
        if self.concurrency_limit is not None:
            return self.concurrency_limit
        return concurrency_limit_for(self.balance_micro)

    def admission_error(self, price: int) -> tuple[int, str] | None:
        """Code 96 or 97 when the project cannot start one more task of this price now."""
        limit = self.limit()
        if limit is not None and self.in_flight >= limit:
            return 96, "Concurrency limit reached"
        if self.balance_micro - self.reserved_micro < price:
            return 97, "Insufficient balance"
        return None

    # -- creation --------------------------------------------------------------------------

    def token(self, length: int = 30) -> str:
        return self._ids.randbytes(length).translate(_TOKEN_TABLE).decode()

    def hex_id(self) -> str:
        return f"{self._ids.getrandbits(128):032x}"

    def create(
        self,
        model: ModelSpec,
        parameters: dict[str, str],
        price_micro: int,
        *,
        file_sources: dict[str, list[dict[str, str]]] | None = None,
        request_form: str = "",
    ) -> SandboxTask:
        """Create a queued task and fix its whole future with the seeded RNG.

        ``price_micro`` is what it reserves while in flight (its quote); ``file_sources``
        and ``request_form`` say how its inputs arrived (for ``/__sandbox/tasks``).
        """
        rng, faults, config = self._rng, self.faults, self.config
        low, high = config.run_seconds
        run_seconds = rng.uniform(low, high) if high > low else low
        draw, cumulative, fault = rng.random(), 0.0, ""
        for name in _TASK_FAULTS:
            cumulative += getattr(faults, name)
            if draw < cumulative:
                fault = name
                break
        detour = rng.random() < faults.unknown_status
        as_string = rng.random() < 0.5
        if config.parameters_style != "mixed":
            as_string = config.parameters_style == "string"
        task = SandboxTask(
            id=self._next_id,
            uuid=str(uuid.UUID(int=self._ids.getrandbits(128), version=4)),
            token=self.token(),
            model=model.slug,
            modelid=model.modelid,
            categories=_categories(model.categories),
            parameters=parameters,
            price_micro=price_micro,
            fault=fault,
            detour=detour,
            queue_seconds=config.queue_seconds,
            run_seconds=run_seconds,
            params_as_string=as_string,
            progress_as_string=rng.random() < 0.5,
            create_ts=time.time(),
            spec=model,
            file_sources=file_sources or None,
            request_form=request_form,
            ws_final_withheld=self._rng_ws.random() < faults.ws_final_withheld,
        )
        self._next_id += 1
        task.times[QUEUE] = task.create_ts
        self.tasks[task.id] = task
        self._order.append(task)
        self.by_token[task.token] = task
        self.by_uuid[task.uuid] = task
        self.by_inputs[canonical_inputs(parameters)] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.reserved_micro += task.price_micro
        loop = asyncio.get_running_loop()
        task.loop_t0 = loop.time()
        self._schedule(task, loop)
        return task

    # -- life ------------------------------------------------------------------------------

    def _due(self, task: SandboxTask, step: Step) -> float:
        return task.queue_seconds + step.fraction * task.run_seconds

    def _schedule(self, task: SandboxTask, loop: asyncio.AbstractEventLoop) -> None:
        plan = task.plan
        if task.step_index >= len(plan):
            return
        delay = task.loop_t0 + self._due(task, plan[task.step_index]) - loop.time()
        task.handle = loop.call_later(max(delay, 0.0), self._advance, task)

    def _advance(self, task: SandboxTask) -> None:
        task.handle = None
        if task.terminal:
            return
        loop = asyncio.get_running_loop()
        elapsed = loop.time() - task.loop_t0 + 1e-6
        plan = task.plan
        while task.step_index < len(plan) and self._due(task, plan[task.step_index]) <= elapsed:
            step = plan[task.step_index]
            task.step_index += 1
            self._enter(task, step)
            if task.end_ts is not None:  # the step ended the task
                return
        self._schedule(task, loop)

    def _enter(self, task: SandboxTask, step: Step) -> None:
        now = time.time()
        status = step.status
        if status == POSTPROCESS_END:
            self._finish(task, now)
        elif status in (ERROR, CANCEL):
            self.counters.faults[task.fault] += 1
            task.debugerror = self._failure_text(task)
            task.pexit = "1" if status == ERROR else "0"
            if status == CANCEL:
                task.cancel_ts = now
                task.cancelled_by = "system"
            self._end(task, status, now)
        else:
            if status == OUTPUT:
                task.progress = step.percentage or 0
            elif status == UNKNOWN_INTERIM:
                self.counters.faults["unknown_status"] += 1
            task.status = status
            task.times.setdefault(status, now)
            self.publish(task, status)

    def _failure_text(self, task: SandboxTask) -> str:
        owner = task.spec.owner if task.spec is not None else task.model.split("/")[0]
        return _FAILURE_TEXTS[task.fault].format(owner=owner)

    def _finish(self, task: SandboxTask, now: float) -> None:
        if task.fault == "generation_failure" or task.spec is None:
            self.counters.faults["generation_failure"] += 1
            task.pexit = "1"
            task.debugerror = self._failure_text(task)
            task.debugoutput = "Starting generation...\n"
        else:
            self._add_outputs(task, task.spec, now)
            task.pexit = "0"
            task.debugoutput = "Starting generation...\nGeneration finished.\n"
            elapsed = round(now - task.create_ts, 4)  # as the record shows elapsedseconds
            counts = {k: len(v) for k, v in (task.file_sources or {}).items()}
            charge = task.spec.pricing.charge(task.parameters, counts, len(task.outputs), elapsed)
            task.charged_micro = charge
            self.balance_micro -= charge
            self.charged_micro += charge
        self._end(task, POSTPROCESS_END, now)

    def _add_outputs(self, task: SandboxTask, model: ModelSpec, now: float) -> None:
        kind = model.output.contenttype
        shape = model.output.shape(task.parameters) if kind == "image/png" else None
        for index, name in enumerate(model.output.names(task.parameters)):
            if index == 0 and self.config.output_name:
                name = self.config.output_name
            size, sha256 = outputs.digest(kind, shape, task.uuid, task.id, index)
            task.outputs.append(
                OutputRecord(
                    id=self.hex_id(),
                    name=name,
                    parentid=self.hex_id(),
                    accesskey=self.token(),
                    size=size,
                    sha256=sha256,
                    url=f"{self.origin}/cdn/{task.uuid}/{_url_name(name)}",
                    added_ts=now,
                    contenttype=kind,
                    index=index,
                    shape=shape,
                )
            )

    def _end(self, task: SandboxTask, status: str, now: float) -> None:
        if task.handle is not None:
            task.handle.cancel()
            task.handle = None
        task.status = status
        task.times.setdefault(status, now)
        task.end_ts = now
        self.in_flight -= 1
        self.reserved_micro -= task.price_micro
        if task.ws_final_withheld:
            self.counters.faults["ws_final_withheld"] += 1
        self.publish(task, status)

    # -- user actions ----------------------------------------------------------------------

    def find(self, taskid: str | None, token: str | None) -> SandboxTask | None:
        if taskid:
            try:
                return self.tasks.get(int(taskid.strip()))
            except ValueError:
                return None
        return self.by_token.get(token.strip()) if token else None

    def cancel(self, task: SandboxTask, by: str) -> None:
        """End a task as ``task_cancel`` at the user's request (Cancel or Kill)."""
        now = time.time()
        task.cancel_ts = now
        task.cancelled_by = by
        task.debugerror = "Task cancelled by user." if by == "cancel" else "Task killed by user."
        self._end(task, CANCEL, now)

    def note_detail(self, task: SandboxTask) -> None:
        """Count a detail request; remember the first one after the task ended (lag)."""
        task.detail_requests += 1
        if task.end_ts is not None and task.first_detail_after_end_ts is None:
            task.first_detail_after_end_ts = time.time()

    def page(
        self, start: int, limit: int, descending: bool, model: str
    ) -> tuple[int, list[SandboxTask]]:
        """One page of the task list, newest first when ``descending``."""
        if not model:  # the common case: slice without copying 100,000 tasks
            count = len(self._order)
            if not descending:
                return count, self._order[start : start + limit]
            high = count - start
            return count, self._order[max(high - limit, 0) : high][::-1] if high > 0 else []
        tasks = [t for t in self._order if model in (t.model, t.model.split("/", 1)[-1])]
        if descending:
            tasks.reverse()
        return len(tasks), tasks[start : start + limit]

    def stop(self) -> None:
        """Cancel every pending timer (server shutdown); tasks freeze where they are."""
        for task in self.tasks.values():
            if task.handle is not None:
                task.handle.cancel()
                task.handle = None

    def snapshot(self, brief: bool = False) -> dict[str, Any]:
        """Figures from the task table. ``detail_requests_per_task`` maps each task id that
        ``/Task/Detail`` named to how many times; ``brief`` leaves out the two (large) maps,
        that one and the per-input-set one."""
        tasks = self.tasks.values()
        statuses = Counter(t.status for t in tasks)
        models = Counter(t.model for t in tasks)
        succeeded = sum(1 for t in tasks if t.outputs)
        duplicates = {k: v for k, v in self.by_inputs.items() if v > 1}
        figures: dict[str, Any] = {
            "tasks_created": len(self.tasks),
            "tasks_by_status": dict(statuses),
            "tasks_by_model": dict(models),
            "tasks_succeeded": succeeded,
            "tasks_per_input_set": dict(self.by_inputs),
            "distinct_input_sets": len(self.by_inputs),
            "duplicate_input_sets": len(duplicates),
            "duplicate_tasks": sum(v - 1 for v in duplicates.values()),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "concurrency_limit": self.limit(),
            "money_charged_usd": to_usd(self.charged_micro),
            "balance_usd": to_usd(self.balance_micro),
            "reserved_usd": to_usd(self.reserved_micro),
            "detail_requests_max": max((t.detail_requests for t in tasks), default=0),
        }
        if not brief:
            figures["detail_requests_per_task"] = {
                str(t.id): t.detail_requests for t in tasks if t.detail_requests
            }
        else:
            del figures["tasks_per_input_set"]
        return figures
