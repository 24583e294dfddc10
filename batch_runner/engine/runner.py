"""The run engine: a manifest in, verified videos and a durable ledger out.

Shape: a fixed pool of ``concurrency`` submit-and-track workers pulling job ids from one
iterator (tracked tasks first, then new submissions), a separate pool of download
workers, one :class:`~batch_runner.slots.SlotGate` for the account's slots, and the
ledger as the single record of truth. Memory stays flat: the pools are fixed, the queues
hold job ids.

Durability, in the order things happen for one job:

1. ``submit_intent`` is fsync'd, then ``/Run`` is sent;
2. the task id is fsync'd (``submitted``) before it is polled or subscribed;
3. on a ``/Run`` error that may have created a task, ``/Task/List`` is searched before
   any resubmission (``reconciled``);
4. outputs are streamed to ``DIR/.partial``, verified, fsync'd and renamed into place
   before ``output_saved`` and ``job_succeeded`` are recorded.

A ``kill -9`` at any point therefore leaves either no task, a task the next run reconciles,
or a task id the next run tracks; never a task paid twice, never a finished video lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import (
    ApiError,
    AuthError,
    BatchRunnerError,
    ConcurrencyLimitError,
    DiskFullError,
    DownloadError,
    InsufficientBalanceError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
    OutputGoneError,
    UnsafeDownloadError,
)
from ..ledger.lock import RunLock
from ..ledger.state import (
    AttemptFailed,
    JobCancelled,
    JobFailed,
    JobRecord,
    JobRegistered,
    JobReset,
    JobStatus,
    JobSucceeded,
    OutputLost,
    OutputSaved,
    Reconciled,
    RemoteOutput,
    RunEnded,
    RunStarted,
    SavedOutput,
    SubmitAmbiguous,
    SubmitIntent,
    SubmitRejected,
    Submitted,
    TaskDone,
    TaskStatusSeen,
    counts_by_status,
    total_cost,
)
from ..ledger.store import Ledger
from ..manifest.job import Job
from ..manifest.loader import Manifest
from ..manifest.pricing import estimate_job_cost
from ..report.progress import Reporter, RunEvent
from ..wiro import download
from ..wiro.client import WiroClient
from ..wiro.feed import TaskFeed
from ..wiro.records import Task
from ..wiro.retry import RetryPolicy
from .plan import Plan, plan_run
from .reconcile import Candidate, match, recent_tasks
from .slots import SlotGate
from .track import PollSchedule, Tracker, TrackingLost
from .uploads import Uploader


@dataclass(frozen=True)
class RunOptions:
    """Everything a run can be told. Defaults are what ``batch-runner run`` uses."""

    out_dir: Path
    concurrency: int = 4
    download_concurrency: int = 8
    poll: PollSchedule = field(default_factory=PollSchedule)
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    task_timeout: float | None = None
    max_attempts: int = 1
    retry_failed: bool = False
    max_cost: float | None = None
    deadline: float | None = None
    use_socket: bool = True
    error_budget: float = 900.0
    reconcile_delay: float = 2.0
    download_attempts: int = 4
    #: "quick": re-hash only files whose size or modification time changed since they were
    #: saved; "full": re-hash every finished output on resume
    verify: str = "quick"


@dataclass
class RunResult:
    """How a run ended: the exit code and what the summary shows."""

    exit_code: int
    counts: dict[str, int]
    total: int
    spent: float
    wall_seconds: float
    stop_reason: str | None
    failures: list[tuple[str, str]]
    out_dir: Path
    submitted: int = 0
    reconciled: int = 0
    status_requests: int = 0
    edited_pending: int = 0
    #: False when the run recorded nothing new (everything was already done)
    changed: bool = True


class _Stop(Exception):
    """Raised inside a worker when the run must stop early (code 97, cost cap, ...)."""


class Runner:
    """Carries out one run of a manifest into an output folder."""

    def __init__(
        self,
        manifest: Manifest,
        client: WiroClient,
        options: RunOptions,
        reporter: Reporter,
    ) -> None:
        self.manifest = manifest
        self.client = client
        self.options = options
        self.reporter = reporter
        self.jobs: dict[str, Job] = {job.id: job for job in manifest.jobs}
        self.out_dir = options.out_dir
        self.gate = SlotGate(options.concurrency)
        self.stop_reason: str | None = None
        self.stop_exit = 4
        self._downloads: asyncio.Queue[str | None] = asyncio.Queue()
        self._owned: set[str] = set()
        self._committed_estimate = 0.0
        self._submitted = 0
        self._reconciled = 0
        self._edited_pending: set[str] = set()
        #: uncertain submissions that /Task/List could not settle in this run
        self._unresolved: set[str] = set()
        #: jobs whose outputs vanished from the service: submitted again after this round
        self._resubmit: list[str] = []
        #: jobs already submitted again in this run because an output vanished (at most once:
        #: a service that never serves a new task's output must not be paid again and again)
        self._gone: set[str] = set()
        self.ledger: Ledger | None = None
        self._uploader_obj: Uploader | None = None
        #: set by the CLI's signal handler before it cancels the run (130 or 143)
        self.interrupt_code: int | None = None
        self.tracker: Tracker | None = None
        self.feed: TaskFeed | None = None
        self.started = time.monotonic()
        self._seq_at_start = 0

    # --- plumbing -------------------------------------------------------------------------

    @property
    def _ledger(self) -> Ledger:
        assert self.ledger is not None
        return self.ledger

    @property
    def _uploader(self) -> Uploader:
        if self._uploader_obj is None:
            self._uploader_obj = Uploader(self.client, self._ledger, self.options.policy)
        return self._uploader_obj

    def _record_of(self, job_id: str) -> JobRecord:
        return self._ledger.state.jobs[job_id]

    def _say(
        self,
        kind: str,
        job: str | None = None,
        message: str = "",
        level: str = "info",
        data: dict[str, object] | None = None,
    ) -> None:
        self.reporter.event(RunEvent(kind, job, message, level, dict(data or {})))

    def _tick(self) -> None:
        state = self._ledger.state
        self.reporter.update(
            counts_by_status(state), total=len(state.jobs), spent=total_cost(state)
        )

    async def _ticker(self, every: float = 0.5) -> None:
        """Refresh the counts on a steady beat; reporters decide how often to show them."""
        while True:
            await asyncio.sleep(every)
            self._tick()

    def stop(self, reason: str, exit_code: int = 4) -> None:
        """Stop submitting new tasks; what is in flight is still followed."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.stop_exit = exit_code
            self._say("stopping", message=f"stopping new submissions: {reason}", level="warning")

    # --- the run --------------------------------------------------------------------------

    async def run(self) -> RunResult:
        lock = RunLock(self.out_dir)
        lock.acquire()
        try:
            self.ledger = Ledger.open(self.out_dir)
            try:
                await self._ledger.record(RunStarted(pid=os.getpid()))
                self._seq_at_start = self._ledger.state.seq
                try:
                    result = await self._run_locked()
                except asyncio.CancelledError:
                    # Interrupted: every durable step is already on disk; note how we left.
                    code = self.interrupt_code or 130
                    counts = counts_by_status(self._ledger.state)
                    with contextlib.suppress(Exception):
                        await asyncio.shield(
                            self._ledger.record(
                                RunEnded(pid=os.getpid(), exit_code=code, counts=counts),
                                durable=False,
                            )
                        )
                    raise
                await self._ledger.record(
                    RunEnded(pid=os.getpid(), exit_code=result.exit_code, counts=result.counts)
                )
                return result
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._ledger.close())
        finally:
            lock.release()

    async def _run_locked(self) -> RunResult:
        plan = plan_run(
            self.manifest.jobs, self._ledger.state, retry_failed=self.options.retry_failed
        )
        await self._apply_plan(plan)
        self._owned = {r.taskid for r in self._ledger.state.jobs.values() if r.taskid}
        for record in self._ledger.state.jobs.values():
            self._owned.update(record.history)
        self._say(
            "run_started",
            message=(
                f"{len(self.jobs)} jobs: {len(plan.submit)} to submit, {len(plan.track)} to track, "
                f"{len(plan.reconcile)} to reconcile, {len(plan.download)} to download, "
                f"{len(plan.verify)} done, {len(plan.skip)} failed earlier"
            ),
            data=dict(plan.summary()),
        )
        self._edited_pending = set(plan.edited_in_flight)
        session = self.client.session
        push = self.options.use_socket and bool(self.client.socket_url)
        self.feed = TaskFeed(session, self.client.socket_url) if push else None
        self.tracker = Tracker(
            self.client,
            schedule=self.options.poll,
            policy=self.options.policy,
            feed=self.feed,
            error_budget=self.options.error_budget,
        )
        if self.feed is not None:
            self.feed.start()
        self._tick()
        ticker = asyncio.create_task(self._ticker(), name="progress-ticker")
        try:
            await self._verify_succeeded(plan.verify)
            if plan.reconcile:
                await self._reconcile_at_start(plan)
            await self._execute(self._work_items(plan), plan)
            while self._resubmit and self.stop_reason is None:
                again, self._resubmit = self._resubmit, []
                await self._execute(iter([("submit", j) for j in again]), Plan())
        finally:
            ticker.cancel()
            if self.feed is not None:
                await self.feed.close()
        self._tick()
        return self._result()

    async def _apply_plan(self, plan: Plan) -> None:
        for event in plan.events:
            await self._ledger.record(event, durable=False)
        for job_id in plan.edited:
            kept = await asyncio.to_thread(self._keep_beside, self._record_of(job_id))
            job = self.jobs[job_id]
            await self._ledger.record(
                JobRegistered(job=job_id, fingerprint=job.fingerprint, kept=kept), durable=False
            )
        await self._ledger.flush()

    def _keep_beside(self, record: JobRecord) -> tuple[SavedOutput, ...]:
        """Move an edited job's earlier outputs aside so the new run cannot overwrite them."""
        tag = record.fingerprint[:8]
        kept: list[SavedOutput] = []
        for out in record.outputs:
            src = self.out_dir / out.path
            stem, dot, ext = out.path.rpartition(".")
            new_rel = (
                f"{stem}.prev-{tag}.{ext}" if dot and "/" not in ext else f"{out.path}.prev-{tag}"
            )
            dst = self.out_dir / new_rel
            if src.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
                kept.append(SavedOutput(out.name, new_rel, out.size, out.sha256))
        return tuple(kept)

    def _work_items(self, plan: Plan) -> Iterator[tuple[str, str]]:
        """Tracked tasks first (they hold slots already), then new submissions."""
        for job_id in plan.track:
            yield ("track", job_id)
        for job_id in plan.submit:
            yield ("submit", job_id)

    async def _execute(self, work: Iterator[tuple[str, str]], plan: Plan) -> None:
        """Run the worker pools until every job is settled, the deadline, or a fatal error."""
        for job_id in plan.download:
            self._downloads.put_nowait(job_id)
        deadline = self.options.deadline
        try:
            async with asyncio.timeout(deadline), asyncio.TaskGroup() as group:
                loaders = [
                    group.create_task(self._downloader())
                    for _ in range(self.options.download_concurrency)
                ]
                workers = [
                    group.create_task(self._worker(work)) for _ in range(self.options.concurrency)
                ]
                await asyncio.gather(*workers)
                for _ in loaders:
                    self._downloads.put_nowait(None)
        except TimeoutError:
            self.stop(f"the deadline of {deadline:.0f} s was reached; in-flight tasks are recorded")
        except BaseExceptionGroup as group_error:
            fatal = [e for e in group_error.exceptions if isinstance(e, BatchRunnerError)]
            if fatal:
                raise fatal[0] from None
            raise

    async def _worker(self, work: Iterator[tuple[str, str]]) -> None:
        """Take jobs one at a time; each holds a slot while its task is on the service."""
        backlog = max(64, 4 * self.options.download_concurrency)
        for kind, job_id in work:
            if kind == "submit" and self.stop_reason is not None:
                continue
            # Backpressure: no new paid task while finished ones wait to be downloaded
            # (their URLs live for a limited time).
            while kind == "submit" and self._downloads.qsize() > backlog:
                await asyncio.sleep(0.05)
            await self.gate.acquire()
            try:
                await self._process(kind, job_id)
            except AuthError:
                raise
            except ApiError as exc:
                # Retries are exhausted: keep what is recorded and let the next run go on.
                self.stop(f"the service could not be used ({exc.message})")
                self._say("error", job_id, exc.message, level="error")
            finally:
                await self.gate.release()

    async def _downloader(self) -> None:
        while True:
            job_id = await self._downloads.get()
            if job_id is None:
                return
            await self._download_job(job_id)

    # --- one job through the service -----------------------------------------------------

    async def _process(self, kind: str, job_id: str) -> None:
        if kind == "submit":
            submitted = await self._submit(job_id)
            if not submitted:
                return
        while True:
            task = await self._track(job_id)
            if task is None:
                return
            resubmit = await self._settle(job_id, task)
            if not resubmit or self.stop_reason is not None:
                return
            if not await self._submit(job_id):
                return

    async def _submit(self, job_id: str) -> bool:
        """Submit a job until a task id is durable. False when nothing is in flight for it."""
        job = self.jobs[job_id]
        while self.stop_reason is None:
            estimate = estimate_job_cost(job.inputs) or 0.0
            if self._over_budget(estimate):
                return False
            # Reserve the estimate before any await, so concurrent workers see it.
            self._committed_estimate += estimate
            outcome = "stop"
            try:
                outcome = await self._submit_once(job)
            finally:
                if outcome not in ("submitted", "tracked"):
                    self._committed_estimate -= estimate
            if outcome != "again":
                return outcome != "stop"
        return False

    async def _submit_once(self, job: Job) -> str:
        """One /Run for ``job``: "submitted", "tracked" (found after an ambiguous /Run),
        "again" (submit again) or "stop" (nothing in flight for it)."""
        job_id = job.id
        inputs = await self._inputs_for(job)
        if inputs is None:
            return "stop"
        record = self._record_of(job_id)
        if record.fingerprint != job.fingerprint:
            # An edited job whose earlier task has settled: its new version starts now.
            await self._ledger.record(JobRegistered(job=job_id, fingerprint=job.fingerprint))
            self._edited_pending.discard(job_id)
            record = self._record_of(job_id)
        await self._ledger.record(
            SubmitIntent(job=job_id, attempt=record.attempts + 1, fingerprint=job.fingerprint)
        )
        try:
            result = await self.options.policy.call_run(
                functools.partial(self.client.run, self.manifest.model, inputs),
                on_retry=lambda e, n, d: self._say(
                    "retry", job_id, f"/Run: {e} (retry {n} in {d:.1f} s)"
                ),
            )
        except ApiError as exc:
            return await self._after_run_error(job_id, exc)
        await self._ledger.record(
            Submitted(job=job_id, taskid=result.taskid, tasktoken=result.tasktoken or None)
        )
        self._owned.add(result.taskid)
        self._submitted += 1
        self._say(
            "submitted", job_id, f"submitted as task {result.taskid}",
            data={"taskid": result.taskid},
        )  # fmt: skip
        return "submitted"

    def _over_budget(self, estimate: float) -> bool:
        """True (and the run stops submitting) when --max-cost would be passed."""
        cap = self.options.max_cost
        if cap is None:
            return False
        spent = total_cost(self._ledger.state)
        if spent + self._committed_estimate + estimate <= cap + 1e-9:
            return False
        self.stop(
            f"--max-cost ${cap:.2f} would be passed "
            f"(spent ${spent:.2f}, in flight ~${self._committed_estimate:.2f})"
        )
        return True

    async def _inputs_for(self, job: Job) -> dict[str, str] | None:
        """The inputs to send; a local image is uploaded first (once). None: job failed."""
        inputs = dict(job.inputs)
        if job.image is None:
            return inputs
        try:
            inputs["inputImageUrl"] = await self._uploader.url_for(job)
        except (InvalidInputError, OSError) as exc:
            reason = f"uploading {job.image.name} failed: {getattr(exc, 'message', exc)}"
            await self._ledger.record(JobFailed(job=job.id, error=reason))
            self._say("failed", job.id, reason, level="error")
            return None
        return inputs

    async def _after_run_error(self, job_id: str, exc: ApiError) -> str:
        """Record a failed /Run. Returns "again" (submit again), "tracked" (a task was found
        for it) or "stop" (nothing in flight for this job)."""
        if exc.may_have_created:
            await self._ledger.record(SubmitAmbiguous(job=job_id, error=exc.message))
            found = await self._reconcile_one(job_id)
            if found is None:
                return "stop"  # could not check: left unresolved rather than paid twice
            return "tracked" if found else "again"
        await self._ledger.record(SubmitRejected(job=job_id, error=exc.message))
        if isinstance(exc, ConcurrencyLimitError):
            await self.gate.shrink()
            self._say("throttled", job_id, f"code 96: lowering concurrency to {self.gate.limit}")
            await asyncio.sleep(self.options.policy.delay_for(exc, self.gate.shrinks))
            return "again"
        if isinstance(exc, InsufficientBalanceError):
            self.stop("insufficient balance (code 97): top up the account, then re-run")
        elif isinstance(exc, AuthError):
            raise exc
        elif isinstance(exc, InvalidInputError):
            await self._ledger.record(JobFailed(job=job_id, error=exc.message))
            self._say("failed", job_id, exc.message, level="error")
        else:
            self.stop(f"the service keeps refusing submissions: {exc.message}")
        return "stop"

    async def _reconcile_one(self, job_id: str) -> bool | None:
        """After an ambiguous /Run: True if the service shows its task (now tracked), False
        if it certainly has none, None if that could not be checked."""
        await asyncio.sleep(self.options.reconcile_delay)
        found = await self._find_tasks([job_id])
        return None if found is None else found.get(job_id, False)

    async def _reconcile_at_start(self, plan: Plan) -> None:
        """Settle every uncertain /Run of an earlier run before anything is submitted."""
        self._say(
            "resume",
            message=(f"reconciling {len(plan.reconcile)} uncertain submissions through /Task/List"),
        )
        found = await self._find_tasks(plan.reconcile)
        if found is None:
            return  # left unresolved: neither tracked nor submitted in this run
        for job_id in plan.reconcile:
            (plan.track if found.get(job_id) else plan.submit).append(job_id)

    async def _find_tasks(self, job_ids: list[str]) -> dict[str, bool] | None:
        """Search /Task/List for the given uncertain jobs and record what was found.

        None when the list cannot be read: those jobs stay unresolved (never resubmitted
        blindly), the other jobs go on, and the run ends with exit 4.
        """
        records = [self._record_of(j) for j in job_ids]
        since = min((r.submitted_at or r.updated_at or time.time()) for r in records)
        try:
            tasks = await self.options.policy.call(
                lambda: recent_tasks(self.client, since, model=None)
            )
        except AuthError:
            raise
        except ApiError as exc:
            self._unresolved.update(job_ids)
            for job_id in job_ids:
                self._say(
                    "error", job_id,
                    f"cannot check whether an uncertain /Run created a task: /Task/List "
                    f"failed ({exc.message}); the job is left unresolved so it is not paid "
                    "twice; re-run later to settle it",
                    level="error",
                )  # fmt: skip
            return None
        candidates = []
        for record in records:
            job = self.jobs.get(record.job_id)
            if job is None:
                continue
            inputs = dict(job.inputs)
            if job.image is not None:
                url = self._ledger.state.uploads.get(self._uploader.digest(job))
                if url:
                    inputs["inputImageUrl"] = url
                else:
                    inputs.pop("inputImageUrl", None)
            candidates.append(Candidate(record.job_id, inputs, record.submitted_at or since))
        matches = match(candidates, tasks, owned=self._owned)
        out: dict[str, bool] = {}
        for job_id, task in matches.items():
            self._reconciled += 1
            if task is None:
                await self._ledger.record(Reconciled(job=job_id))
                self._say("reconciled", job_id, "no task was created; it will be submitted")
                out[job_id] = False
            else:
                await self._ledger.record(
                    Reconciled(job=job_id, taskid=task.id, tasktoken=task.tasktoken or None)
                )
                self._owned.add(task.id)
                self._say("reconciled", job_id, f"found task {task.id} on the service; tracking it")
                out[job_id] = True
        return out

    async def _track(self, job_id: str) -> Task | None:
        """Follow the job's task to a terminal status; None if the run must let it go."""
        record = self._record_of(job_id)
        assert self.tracker is not None and record.taskid is not None
        taskid = record.taskid

        async def on_status(task: Task) -> None:
            if not task.is_terminal:
                await self._ledger.record(
                    TaskStatusSeen(job=job_id, status=task.status, taskid=taskid), durable=False
                )

        timeout = self.options.task_timeout
        submitted_at = record.submitted_at or time.time()
        remaining = None if timeout is None else max(0.0, timeout - (time.time() - submitted_at))
        try:
            async with asyncio.timeout(remaining):
                return await self.tracker.wait_terminal(
                    taskid, record.tasktoken or "", submitted_at=submitted_at, on_status=on_status
                )
        except TimeoutError:
            return await self._time_out(job_id, taskid)
        except TrackingLost as exc:
            self.stop(exc.message)
            return None
        except NotFoundError as exc:
            await self._ledger.record(
                JobFailed(
                    job=job_id, error=f"task {taskid} is unknown to the service: {exc.message}"
                )
            )
            self._say("failed", job_id, f"task {taskid} is unknown to the service", level="error")
            return None

    async def _time_out(self, job_id: str, taskid: str) -> Task | None:
        limit = self.options.task_timeout or 0.0
        reason = f"task {taskid} ran longer than --task-timeout {limit:.0f} s"
        assert self.tracker is not None
        unreadable = self.tracker.last_errors.pop(taskid, None)
        why = f" (its status could not be read: {unreadable})" if unreadable else ""
        try:
            task = await self.options.policy.call(lambda: self.client.kill(taskid=taskid))
        except ApiError:
            try:
                task = await self.options.policy.call(lambda: self.client.cancel(taskid))
            except ApiError as exc:
                # Neither Kill nor Cancel applies to a task that has just finished: look once
                # more, so that a video finished (and paid for) at the deadline is kept.
                with contextlib.suppress(ApiError):
                    found = await self.options.policy.call(
                        lambda: self.client.detail(taskid=taskid)
                    )
                    if found.is_terminal:
                        return found
                # Still running and unstoppable: never record it as over (it may yet be paid
                # for); the job keeps its task id and the next run tries again.
                reason += f"{why}; stopping it failed ({exc.message}); the next run retries"
                self._say("error", job_id, reason, level="error")
                return None
        reason += f"; it was stopped{why}"
        if task is not None and task.succeeded:
            return task
        await self._ledger.record(JobCancelled(job=job_id, error=reason))
        self._say("cancelled", job_id, reason, level="error")
        return None

    async def _settle(self, job_id: str, task: Task) -> bool:
        """Record a terminal task. True when the job should be submitted again."""
        cost = task.totalcost
        job = self.jobs.get(job_id)
        if job is not None:
            estimate = estimate_job_cost(job.inputs) or 0.0
            self._committed_estimate = max(0.0, self._committed_estimate - estimate)
        if task.succeeded:
            outputs = tuple(RemoteOutput(o.name, o.url, o.size) for o in task.outputs)
            await self._ledger.record(
                TaskDone(job=job_id, outputs=outputs, cost=cost, taskid=task.id)
            )
            self._downloads.put_nowait(job_id)
            return False
        reason = task.failure_reason()
        record = self._record_of(job_id)
        user_cancel = task.status == "task_cancel" and "user" in task.debugerror.lower()
        may_retry = job is not None and not user_cancel and self.stop_reason is None
        if may_retry and record.attempts < self.options.max_attempts:
            await self._ledger.record(AttemptFailed(job=job_id, error=reason, cost=cost))
            self._say("retry", job_id, f"task {task.id}: {reason}; submitting again")
            return True
        if task.status == "task_cancel":
            await self._ledger.record(JobCancelled(job=job_id, error=reason, cost=cost))
            self._say("cancelled", job_id, reason, level="error")
        else:
            await self._ledger.record(JobFailed(job=job_id, error=reason, cost=cost))
            self._say("failed", job_id, reason, level="error")
        return False

    # --- downloads ------------------------------------------------------------------------

    async def _download_job(self, job_id: str) -> None:
        record = self._record_of(job_id)
        if record.status != JobStatus.DOWNLOADING:
            return
        remote = record.remote_outputs
        paths = download.output_paths(job_id, [(o.name, "") for o in remote])
        saved = {o.name for o in record.outputs}
        try:
            for out, rel in zip(remote, paths, strict=True):
                if out.name in saved:
                    continue
                result = await self._fetch(out, rel)
                await self._ledger.record(
                    OutputSaved(
                        job=job_id,
                        name=out.name,
                        path=result.path,
                        size=result.size,
                        sha256=result.sha256,
                    )
                )
        except OutputGoneError as exc:
            await self._output_gone(job_id, exc)
            return
        except DiskFullError as exc:
            self.stop(f"{exc.message}", exit_code=4)
            self._say("error", job_id, exc.message, level="error")
            return
        except UnsafeDownloadError as exc:
            await self._ledger.record(JobFailed(job=job_id, error=f"output refused: {exc.message}"))
            self._say("failed", job_id, f"output refused: {exc.message}", level="error")
            return
        except IntegrityError as exc:
            # This one file keeps arriving wrong (longer or shorter than declared, cut short):
            # the paid task is kept for the next run, and the other jobs go on meanwhile.
            self._say("error", job_id, f"{exc.message}; re-run to fetch it again", level="error")
            return
        except (DownloadError, ApiError) as exc:
            self.stop(f"downloads keep failing ({exc.message}); re-run to resume them")
            self._say("error", job_id, exc.message, level="error")
            return
        await self._ledger.record(JobSucceeded(job=job_id))
        self._say("succeeded", job_id, f"saved {', '.join(paths)}")

    async def _output_gone(self, job_id: str, exc: OutputGoneError) -> None:
        """The service no longer serves an output: only a new task can bring the video back."""
        if job_id in self.jobs and self.stop_reason is None and job_id not in self._gone:
            reason = f"{exc.message}; submitting the job again"
            self._gone.add(job_id)
            await self._ledger.record(JobReset(job=job_id, reason=reason))
            self._resubmit.append(job_id)
            self._say("warning", job_id, reason, level="warning")
        else:
            error = exc.message
            if job_id in self._gone:
                error += " (nor the output of the task submitted again for it in this run)"
            await self._ledger.record(JobFailed(job=job_id, error=error))
            self._say("failed", job_id, error, level="error")

    async def _fetch(self, out: RemoteOutput, rel: str) -> download.DownloadResult:
        """One output, retried (resuming with Range) while the error says it may help."""

        async def attempt() -> download.DownloadResult:
            return await self.client.download(out.url, self.out_dir, rel, expected_size=out.size)

        return await self.options.policy.call(
            attempt, retry_if=lambda e: isinstance(e, DownloadError | ApiError) and e.retryable
        )

    async def _verify_succeeded(self, job_ids: list[str]) -> None:
        """Check finished jobs' files still match; a mismatch is fetched again or re-run."""
        if not job_ids:
            return

        full = self.options.verify == "full"

        def check() -> list[tuple[str, str]]:
            bad: list[tuple[str, str]] = []
            for job_id in job_ids:
                record = self._record_of(job_id)
                for out in record.outputs:
                    path = self.out_dir / out.path
                    quick_ok = not full and download.unchanged_since(
                        path, out.size, record.finished_at
                    )
                    if not quick_ok and not download.verify_file(path, out.size, out.sha256):
                        bad.append((job_id, out.name))
            return bad

        for job_id, name in await asyncio.to_thread(check):
            await self._ledger.record(
                OutputLost(job=job_id, name=name, reason="file missing or changed on disk")
            )
            self._say(
                "warning",
                job_id,
                f"output {name!r} is missing or changed; fetching it again",
                level="warning",
            )
            self._downloads.put_nowait(job_id)

    # --- the end --------------------------------------------------------------------------

    def _why_unfinished(self, unfinished: int) -> str:
        if self._unresolved:
            return (
                f"{len(self._unresolved)} uncertain submissions could not be checked through "
                "/Task/List; re-run to settle them"
            )
        if unfinished:
            return f"{unfinished} jobs are not finished"
        return (
            f"{len(self._edited_pending)} edited jobs finished an earlier task; "
            "re-run to apply the edits"
        )

    def _result(self) -> RunResult:
        state = self._ledger.state
        counts = counts_by_status(state)
        wanted = [state.jobs[j] for j in self.jobs if j in state.jobs]
        failures = [
            (r.job_id, r.error or r.status.value)
            for r in wanted
            if r.status in (JobStatus.FAILED, JobStatus.CANCELLED)
        ]
        unfinished = [
            r
            for r in wanted
            if r.status not in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
        ]
        if self.stop_reason is not None and (unfinished or self.stop_exit != 4):
            code = self.stop_exit
        elif unfinished or self._edited_pending:
            code = 4
            if self.stop_reason is None:
                self.stop_reason = self._why_unfinished(len(unfinished))
        elif failures:
            code = 1
        else:
            code = 0
        return RunResult(
            exit_code=code,
            counts=counts,
            total=len(self.jobs),
            spent=total_cost(state),
            wall_seconds=time.monotonic() - self.started,
            stop_reason=self.stop_reason,
            failures=failures,
            out_dir=self.out_dir,
            submitted=self._submitted,
            reconciled=self._reconciled,
            status_requests=self.tracker.detail_requests if self.tracker else 0,
            edited_pending=len(self._edited_pending),
            changed=state.seq > self._seq_at_start,
        )
