"""Submitting a job: the durable intent, ``/Run``, and what its errors mean.

The order is the guarantee: ``submit_intent`` is fsync'd before ``/Run`` is sent, and the task
id is fsync'd (``submitted``) before anything uses it. A ``/Run`` error that may have created a
task is settled by the :class:`~batch_runner.engine.reconcile.Reconciler` before any new
attempt; one that certainly created nothing is retried or recorded, by its class.

``--max-cost`` holds under concurrency because each submission reserves its estimate
(:class:`Budget`) before its first await, and gives it back when nothing was created or when
the task settles.
"""

from __future__ import annotations

import asyncio
import functools
import json

from ..errors import (
    ApiError,
    AuthError,
    ConcurrencyLimitError,
    InsufficientBalanceError,
    InvalidInputError,
)
from ..ledger.events import (
    JobFailed,
    JobRegistered,
    SubmitAmbiguous,
    SubmitIntent,
    SubmitRejected,
    Submitted,
)
from ..ledger.state import total_cost
from ..manifest.job import Job
from ..models.definition import ModelDefinition
from .context import RunContext
from .reconcile import Reconciler
from .uploads import Uploader, wire_value


def request_inputs(
    inputs: dict[str, str], definition: ModelDefinition | None
) -> dict[str, str | list[str]]:
    """The /Run body: the job's strings, with a ``combinefileinput``'s URLs as a list."""
    body: dict[str, str | list[str]] = dict(inputs)
    for item in definition.items if definition is not None else ():
        value = inputs.get(item.name)
        if item.kind == "combine" and value and value.startswith("["):
            urls = json.loads(value)
            body[item.name] = [str(u) for u in urls]
    return body


class Budget:
    """Estimated spend of the tasks in flight, reserved before they are submitted.

    A job whose price is not known counts as ``unknown`` (``--max-cost-unknown``)."""

    def __init__(self, cap: float | None, unknown: float | None = None) -> None:
        self.cap = cap
        self.unknown = unknown or 0.0
        self.committed = 0.0

    def estimate(self, job: Job) -> float:
        return job.estimate if job.estimate is not None else self.unknown

    def allows(self, spent: float, estimate: float) -> bool:
        """True when finished spend plus what is in flight plus ``estimate`` stays in the cap."""
        return self.cap is None or spent + self.committed + estimate <= self.cap + 1e-9

    def reserve(self, estimate: float) -> None:
        self.committed += estimate

    def release(self, estimate: float) -> None:
        self.committed = max(0.0, self.committed - estimate)


class Submitter:
    """Takes a job from pending to a durable task id (or to a recorded reason why not)."""

    def __init__(self, ctx: RunContext, reconciler: Reconciler, uploader: Uploader) -> None:
        self.ctx = ctx
        self.reconciler = reconciler
        self.uploader = uploader
        self.budget = Budget(ctx.options.max_cost, ctx.options.max_cost_unknown)
        self.submitted = 0
        #: edited jobs whose earlier task is still in flight: the edit applies afterwards
        self.edited_pending: set[str] = set()
        #: code-96 refusals in a row, per job being submitted
        self._throttled: dict[str, int] = {}

    async def submit(self, job_id: str) -> bool:
        """Submit a job until a task id is durable. False when nothing is in flight for it."""
        job = self.ctx.jobs[job_id]
        while not self.ctx.stopping:
            estimate = self.budget.estimate(job)
            if self._over_budget(estimate):
                return False
            # Reserve the estimate before any await, so concurrent workers see it.
            self.budget.reserve(estimate)
            outcome = "stop"
            try:
                outcome = await self._submit_once(job)
            finally:
                if outcome not in ("submitted", "tracked"):
                    self.budget.release(estimate)
            if outcome != "again":
                self._throttled.pop(job_id, None)
                return outcome != "stop"
        return False

    def settled(self, job_id: str) -> None:
        """The job's task is terminal: its estimate no longer counts as in flight."""
        job = self.ctx.jobs.get(job_id)
        if job is not None:
            self.budget.release(self.budget.estimate(job))

    def _over_budget(self, estimate: float) -> bool:
        """True (and the run stops submitting) when --max-cost would be passed."""
        spent = total_cost(self.ctx.ledger.state)
        if self.budget.allows(spent, estimate):
            return False
        self.ctx.stop(
            f"--max-cost ${self.budget.cap:.2f} would be passed "
            f"(spent ${spent:.2f}, in flight ~${self.budget.committed:.2f})"
        )
        return True

    async def _submit_once(self, job: Job) -> str:
        """One /Run for ``job``: "submitted", "tracked" (found after an ambiguous /Run),
        "again" (submit again) or "stop" (nothing in flight for it)."""
        ctx, job_id = self.ctx, job.id
        inputs = await self._inputs_for(job)
        if inputs is None:
            return "stop"
        record = ctx.record_of(job_id)
        if record.fingerprint != job.fingerprint:
            # An edited job whose earlier task has settled: its new version starts now.
            await ctx.record(
                JobRegistered(job=job_id, fingerprint=job.fingerprint, model=job.model)
            )
            self.edited_pending.discard(job_id)
            record = ctx.record_of(job_id)
        await ctx.record(
            SubmitIntent(job=job_id, attempt=record.attempts + 1, fingerprint=job.fingerprint)
        )
        try:
            result = await ctx.options.policy.call_run(
                functools.partial(ctx.client.run, job.model, inputs),
                on_retry=lambda e, n, d: ctx.say(
                    "retry", job_id, f"/Run: {e} (retry {n} in {d:.1f} s)"
                ),
            )
        except ApiError as exc:
            return await self._after_run_error(job_id, exc)
        await ctx.record(
            Submitted(job=job_id, taskid=result.taskid, tasktoken=result.tasktoken or None)
        )
        self.reconciler.claim(result.taskid)
        self.submitted += 1
        return "submitted"

    async def _inputs_for(self, job: Job) -> dict[str, str | list[str]] | None:
        """The inputs to send; local files are uploaded first (once each, recorded before
        use) and sent as URLs in the field their input takes. None: the job failed."""
        inputs = dict(job.inputs)
        for file_input in job.files:
            try:
                urls = await self.uploader.urls_for(job, file_input)
            except (InvalidInputError, OSError) as exc:
                names = ", ".join(r.path.name for r in file_input.local if r.path is not None)
                reason = f"uploading {names} failed: {getattr(exc, 'message', exc)}"
                await self.ctx.record(JobFailed(job=job.id, error=reason))
                return None
            inputs[file_input.send] = wire_value(file_input, urls)
        return request_inputs(inputs, self.ctx.manifest.definition(job.model))

    async def _after_run_error(self, job_id: str, exc: ApiError) -> str:
        """Record a failed /Run. Returns "again" (submit again), "tracked" (a task was found
        for it) or "stop" (nothing in flight for this job)."""
        ctx = self.ctx
        if exc.may_have_created:
            await ctx.record(SubmitAmbiguous(job=job_id, error=exc.message))
            found = await self.reconciler.after_ambiguous(job_id)
            if found is None:
                return "stop"  # could not check: left unresolved rather than paid twice
            return "tracked" if found else "again"
        await ctx.record(SubmitRejected(job=job_id, error=exc.message))
        if isinstance(exc, ConcurrencyLimitError):
            # Refusals in a row for this job set the backoff (a run-wide count would only
            # grow); the slot is given back so the lowered limit holds for everyone.
            streak = self._throttled[job_id] = self._throttled.get(job_id, 0) + 1
            await ctx.gate.shrink()
            ctx.say("throttled", job_id, f"code 96: lowering concurrency to {ctx.gate.limit}")
            await asyncio.sleep(ctx.options.policy.delay_for(exc, streak))
            await ctx.gate.requeue()
            return "again"
        if isinstance(exc, InsufficientBalanceError):
            ctx.stop("insufficient balance (code 97): top up the account, then re-run")
        elif isinstance(exc, AuthError):
            raise exc
        elif isinstance(exc, InvalidInputError):
            await ctx.record(JobFailed(job=job_id, error=exc.message))
        else:
            ctx.stop(f"the service keeps refusing submissions: {exc.message}")
        return "stop"
