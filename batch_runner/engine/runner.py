"""The run engine: a manifest in, verified outputs and a durable ledger out.

Shape: a fixed pool of ``concurrency`` submit-and-track workers pulling job ids from one
iterator (tracked tasks first, then new submissions), a separate pool of download workers,
one :class:`~batch_runner.engine.slots.SlotGate` for the account's slots, and the ledger as
the single record of truth. Memory stays flat: the pools are fixed, the queues hold job ids.
The stages do the work (:mod:`.submit`, :mod:`.reconcile`, :mod:`.follow`, :mod:`.outputs`);
the runner plans, runs the pools, stops, and sums up.

Durability, in the order things happen for one job:

1. ``submit_intent`` is fsync'd, then ``/Run`` is sent;
2. the task id is fsync'd (``submitted``) before it is polled or subscribed;
3. on a ``/Run`` error that may have created a task, ``/Task/List`` is searched before
   any resubmission (``reconciled``);
4. outputs are streamed to ``DIR/.partial``, verified, fsync'd and renamed into place
   before ``output_saved`` and ``job_succeeded`` are recorded (the ledger fsyncs the
   renamed-into folders before it writes those lines: ``Ledger.renames``).

A ``kill -9`` at any point therefore leaves either no task, a task the next run reconciles,
or a task id the next run tracks; never a task paid twice, never a finished output lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import ApiError, AuthError, BatchRunnerError, UsageError
from ..ledger.events import JobRegistered, RunEnded, RunStarted
from ..ledger.lock import RunLock
from ..ledger.state import JobStatus, RunInfo, counts_by_status, total_cost
from ..ledger.store import Ledger
from ..manifest.loader import Manifest
from ..wiro.client import WiroClient
from ..wiro.feed import TaskFeed
from .context import RunContext
from .follow import Follower, Verdict
from .objstore import open_target
from .options import RunOptions
from .outputs import Outputs
from .plan import Plan, plan_run, started_message
from .publish import Publisher
from .pushhealth import PushHealth, TrackingMode
from .reconcile import Reconciler
from .reporting import NullReporter, Reporter, RunView, attach, detach
from .result import RunResult
from .submit import Submitter
from .track import Tracker
from .uploads import Uploader

#: Exit code of a run stopped by :meth:`Runner.interrupt` without a code of its own (SIGINT).
INTERRUPTED = 130


class Runner:
    """Carries out one run of a manifest into an output folder (options resolved)."""

    def __init__(
        self,
        manifest: Manifest,
        client: WiroClient,
        options: RunOptions,
        reporter: Reporter | None = None,
    ) -> None:
        self.manifest = manifest
        self.client = client
        self.options = options.resolved(manifest)
        self.reporter: Reporter = reporter or NullReporter()
        self.out_dir = self.options.folder
        #: the exit code asked for by :meth:`interrupt` (130, 143), None while not interrupted
        self.interrupt_code: int | None = None
        self.ctx: RunContext | None = None
        self._task: asyncio.Task[object] | None = None
        self._stages: _Stages | None = None
        self._lock: RunLock | None = None
        self.started = time.monotonic()
        self._seq_at_start = 0

    @property
    def ledger(self) -> Ledger | None:
        return self.ctx.ledger if self.ctx is not None else None

    def interrupt(self, code: int = INTERRUPTED) -> None:
        """Stop the run from outside (a signal handler, a notebook's stop button): no new
        submissions, the run's task is cancelled, its state is recorded on the way out and
        :meth:`run` raises ``CancelledError``; tasks on the service keep running and the next
        run picks them up by task id. Safe to call from the event loop's thread only."""
        if self.interrupt_code is None:
            self.interrupt_code = code
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def run(self) -> RunResult:
        """Take the folder's lock, run every job, record how the run ended."""
        self._task = asyncio.current_task()
        lock = self._lock = RunLock(self.out_dir)
        lock.acquire()
        try:
            ledger = Ledger.open(self.out_dir)
            self.ctx = RunContext(self.manifest, self.client, self.options, self.reporter, ledger)
            view: RunView | None = None
            try:
                publish = self.options.publish.rstrip("/") if self.options.publish else None
                await ledger.record(RunStarted(pid=os.getpid(), publish=publish))
                self._seq_at_start = ledger.state.seq
                view = RunView(self.manifest, self.out_dir, lambda: ledger.state)
                attach(self.reporter, view)
                try:
                    result = await self._run_locked(self.ctx)
                except asyncio.CancelledError:
                    # Interrupted: every durable step is already on disk; note how we left.
                    code = self.interrupt_code or INTERRUPTED
                    counts = counts_by_status(ledger.state)
                    with contextlib.suppress(Exception):
                        await asyncio.shield(
                            ledger.record(
                                RunEnded(pid=os.getpid(), exit_code=code, counts=counts),
                                durable=False,
                            )
                        )
                    raise
                await ledger.record(
                    RunEnded(pid=os.getpid(), exit_code=result.exit_code, counts=result.counts)
                )
                return result
            finally:
                if view is not None:
                    detach(self.reporter, view)
                with contextlib.suppress(Exception):
                    await asyncio.shield(ledger.close())
        finally:
            lock.release()

    async def _run_locked(self, ctx: RunContext) -> RunResult:
        plan = plan_run(
            self.manifest.jobs, ctx.ledger.state, retry_failed=self.options.retry_failed
        )
        self._check_prices(plan)
        stages = self._stages = _Stages(ctx, self._tracking_changed)
        await self._apply_plan(plan, stages.outputs)
        ctx.say(
            "run_started",
            message=started_message(len(ctx.jobs), plan.summary()),
            data={**plan.summary(), "last_success_at": _last_success(ctx.ledger.state.runs)},
        )
        stages.submitter.edited_pending = set(plan.edited_in_flight)
        ctx.tick()
        ticker = asyncio.create_task(self._ticker(ctx), name="progress-ticker")
        publisher = stages.publisher
        try:
            async with publisher or contextlib.nullcontext():
                await stages.outputs.verify_succeeded(plan.verify)
                if publisher is not None:
                    publisher.enqueue_finished(plan.verify)
                if plan.reconcile:
                    await stages.reconciler.at_start(plan)
                await self._execute(stages, self._work_items(plan), plan.download)
                while stages.outputs.resubmit and not ctx.stopping:
                    again, stages.outputs.resubmit = stages.outputs.resubmit, []
                    await self._execute(stages, iter([("submit", j) for j in again]), [])
                if publisher is not None:
                    await publisher.drain(self._time_left())
        finally:
            ticker.cancel()
            if stages.feed is not None:
                await stages.feed.close()
        ctx.tick()
        return self._result(ctx, stages)

    def _check_prices(self, plan: Plan) -> None:
        """``--max-cost`` cannot hold jobs of unknown price unless told what to count."""
        if self.options.max_cost is None or self.options.max_cost_unknown is not None:
            return
        jobs = {job.id: job for job in self.manifest.jobs}
        unknown = [jobs[j] for j in plan.submit if j in jobs and jobs[j].estimate is None]
        if unknown:
            models = ", ".join(dict.fromkeys(job.model for job in unknown))
            raise UsageError(
                f"--max-cost cannot be kept: {len(unknown)} of the jobs to submit have no known "
                f"price ({models} describes none). Give --max-cost-unknown USD, the amount to "
                "count for each of them, or run without --max-cost."
            )

    async def _apply_plan(self, plan: Plan, outputs: Outputs) -> None:
        """Make the ledger agree with the manifest before any work starts."""
        ctx = self.ctx
        assert ctx is not None
        for job in plan.new:
            registered = JobRegistered(job=job.id, fingerprint=job.fingerprint, model=job.model)
            await ctx.record(registered, durable=False, quiet=True)
        for event in plan.events:
            await ctx.record(event, durable=False, quiet=True)
        plan.new.clear()  # recorded: the run keeps the plan's ids, not 100,000 jobs twice
        plan.events.clear()
        for job_id in plan.edited:
            kept = await asyncio.to_thread(outputs.keep_beside, ctx.record_of(job_id))
            job = ctx.jobs[job_id]
            await ctx.record(
                JobRegistered(job=job_id, fingerprint=job.fingerprint, kept=kept, model=job.model),
                durable=False,
            )
        await ctx.ledger.flush()

    def _time_left(self) -> float | None:
        """Seconds until ``--deadline`` (None without one)."""
        if self.options.deadline is None:
            return None
        return max(0.0, self.options.deadline - (time.monotonic() - self.started))

    def _tracking_changed(self, mode: TrackingMode) -> None:
        """Say how completion is tracked now, once per change; ``status`` shows it too."""
        if self.ctx is not None:
            data: dict[str, object] = {"tracking": mode.by, "reason": mode.reason}
            self.ctx.say("tracking", message=mode.message, level=mode.level, data=data)
        if self._lock is not None:
            self._lock.describe(tracking=mode.to_dict())

    @staticmethod
    async def _ticker(ctx: RunContext, every: float = 0.5) -> None:
        """Refresh the counts on a steady beat; reporters decide how often to show them."""
        while True:
            await asyncio.sleep(every)
            ctx.tick()

    @staticmethod
    def _work_items(plan: Plan) -> Iterator[tuple[str, str]]:
        """Tracked tasks first (they hold slots already), then new submissions."""
        for job_id in plan.track:
            yield ("track", job_id)
        for job_id in plan.submit:
            yield ("submit", job_id)

    async def _execute(
        self, stages: _Stages, work: Iterator[tuple[str, str]], downloads: list[str]
    ) -> None:
        """Run the worker pools until every job is settled, the deadline, or a fatal error."""
        ctx = stages.ctx
        for job_id in downloads:
            stages.outputs.enqueue(job_id)
        deadline = self.options.deadline
        loaders = self.options.download_concurrency
        try:
            async with asyncio.timeout(deadline), asyncio.TaskGroup() as group:
                for _ in range(loaders):
                    group.create_task(stages.outputs.worker())
                workers = [
                    group.create_task(self._worker(stages, work)) for _ in range(self.options.slots)
                ]
                await asyncio.gather(*workers)
                stages.outputs.finish(loaders)
        except TimeoutError:
            ctx.stop(f"the deadline of {deadline:.0f} s was reached; in-flight tasks are recorded")
        except BaseExceptionGroup as group_error:
            fatal = [e for e in group_error.exceptions if isinstance(e, BatchRunnerError)]
            if fatal:
                raise fatal[0] from None
            raise

    async def _worker(self, stages: _Stages, work: Iterator[tuple[str, str]]) -> None:
        """Take jobs one at a time; each holds a slot while its task is on the service."""
        ctx = stages.ctx
        for kind, job_id in work:
            if kind == "submit" and ctx.stopping:
                continue
            if kind == "submit":
                await stages.outputs.room()  # no new paid task while downloads lag behind
            await ctx.gate.acquire()
            try:
                await self._process(stages, kind, job_id)
            except AuthError:
                raise
            except ApiError as exc:
                # Retries are exhausted: keep what is recorded and let the next run go on.
                ctx.stop(f"the service could not be used ({exc.message})")
                ctx.say("error", job_id, exc.message, level="error")
            finally:
                await ctx.gate.release()

    @staticmethod
    async def _process(stages: _Stages, kind: str, job_id: str) -> None:
        """One job through the service: submit (unless tracked), follow, settle, repeat while
        a failed task has attempts left."""
        if kind == "submit" and not await stages.submitter.submit(job_id):
            return
        while True:
            task = await stages.follower.track(job_id)
            if task is None:
                return
            stages.submitter.settled(job_id)
            verdict = await stages.follower.settle(job_id, task)
            if verdict is Verdict.DOWNLOAD:
                stages.outputs.enqueue(job_id)
            if verdict is not Verdict.RETRY or stages.ctx.stopping:
                return
            if not await stages.submitter.submit(job_id):
                return

    def _result(self, ctx: RunContext, stages: _Stages) -> RunResult:
        state = ctx.ledger.state
        jobs = state.jobs
        statuses = {j: jobs.status(j) for j in ctx.jobs if j in jobs}  # nothing unpacked
        done = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
        failures = [
            (j, jobs[j].error or status.value)
            for j, status in statuses.items()
            if status in (JobStatus.FAILED, JobStatus.CANCELLED)
        ]
        unfinished = sum(1 for status in statuses.values() if status not in done)
        edited = stages.submitter.edited_pending
        publisher = stages.publisher
        published = publisher.figures(ctx.jobs) if publisher is not None else None
        unpublished = published.unpublished_jobs if published is not None else 0
        if ctx.stop_reason is not None and (unfinished or ctx.stop_exit != 4):
            code = ctx.stop_exit
        elif unfinished or edited or unpublished:
            code = 4
            if ctx.stop_reason is None:
                ctx.stop_reason = self._why_unfinished(stages, unfinished)
        elif failures:
            code = 1
        else:
            code = 0
        return RunResult(
            exit_code=code,
            counts=counts_by_status(state),
            total=len(ctx.jobs),
            spent=total_cost(state),
            wall_seconds=time.monotonic() - self.started,
            stop_reason=ctx.stop_reason,
            failures=failures,
            out_dir=self.out_dir,
            submitted=stages.submitter.submitted,
            reconciled=stages.reconciler.count,
            status_requests=stages.tracker.detail_requests,
            tracking=stages.tracking_summary(),
            edited_pending=len(edited),
            changed=state.seq > self._seq_at_start,
            state=state,
            published=published,
            uploaded=publisher.uploaded if publisher is not None else 0,
            uploaded_bytes=publisher.uploaded_bytes if publisher is not None else 0,
            found_published=publisher.found if publisher is not None else 0,
            publish_error=publisher.stopped if publisher is not None else None,
        )

    @staticmethod
    def _why_unfinished(stages: _Stages, unfinished: int) -> str:
        if stages.reconciler.unresolved:
            return (
                f"{len(stages.reconciler.unresolved)} uncertain submissions could not be checked "
                "through /Task/List; re-run to settle them"
            )
        if unfinished:
            return f"{unfinished} jobs are not finished"
        if not stages.submitter.edited_pending and stages.publisher is not None:
            why = stages.publisher.stopped or "uploads failed"
            return f"some outputs are not published ({why}); re-run to publish them"
        return (
            f"{len(stages.submitter.edited_pending)} edited jobs finished an earlier task; "
            "re-run to apply the edits"
        )

    def interrupted_result(self) -> RunResult:
        """The outcome of a run stopped by :meth:`interrupt`, from what the ledger holds."""
        state = self.ctx.ledger.state if self.ctx is not None else None
        counts = counts_by_status(state) if state is not None else {}
        stages = self._stages
        return RunResult(
            exit_code=self.interrupt_code or INTERRUPTED,
            counts=counts,
            total=len(self.manifest.jobs),
            spent=total_cost(state) if state is not None else 0.0,
            wall_seconds=time.monotonic() - self.started,
            stop_reason="interrupted",
            failures=[],
            out_dir=self.out_dir,
            submitted=stages.submitter.submitted if stages else 0,
            reconciled=stages.reconciler.count if stages else 0,
            status_requests=stages.tracker.detail_requests if stages else 0,
            tracking=stages.tracking_summary() if stages else {},
            interrupted=True,
            state=state,
        )


def _last_success(runs: list[RunInfo]) -> float | None:
    """When the latest earlier run that finished everything (exit 0) ended."""
    for run in reversed(runs):
        if run.exit_code == 0 and run.ended_at is not None:
            return run.ended_at
    return None


class _Stages:
    """The stages of one run, wired to one context."""

    def __init__(self, ctx: RunContext, on_tracking: Callable[[TrackingMode], None]) -> None:
        self.ctx = ctx
        options = ctx.options
        push = options.use_socket and bool(ctx.client.socket_url)
        self.feed = (
            TaskFeed(
                ctx.client.session,
                ctx.client.socket_url,
                backoff_base=options.push.reconnect_base,
                backoff_cap=options.push.reconnect_cap,
            )
            if push
            else None
        )
        off = "push turned off" if not options.use_socket else "no socket URL for this API base"
        self.health = PushHealth(options.push, self.feed, off_reason=off, on_change=on_tracking)
        self.tracker = Tracker(
            ctx.client,
            schedule=options.poll,
            policy=options.policy,
            feed=self.feed,
            health=self.health,
            error_budget=options.error_budget,
        )
        self.uploader = Uploader(ctx)
        self.reconciler = Reconciler(ctx, self.uploader)
        self.submitter = Submitter(ctx, self.reconciler, self.uploader)
        self.follower = Follower(ctx, self.tracker)
        self.outputs = Outputs(ctx)
        self.publisher: Publisher | None = None
        if options.publish:
            self.publisher = Publisher(ctx, open_target(options.publish))
            self.outputs.on_success = self.publisher.enqueue

    def tracking_summary(self) -> dict[str, Any]:
        """How completion was tracked in this run (``RunResult.tracking``)."""
        health, feed = self.health, self.feed
        summary: dict[str, Any] = dict(health.mode.to_dict()) if health.mode else {}
        summary["checks"] = dict(self.tracker.checks)
        summary["final_frames"] = health.final_frames
        summary["final_frames_missed"] = health.missed_finals
        if feed is not None:
            summary["socket"] = {"attempts": feed.attempts, "connections": feed.connections,
                                 "drops": feed.drops, "frames": feed.frames}  # fmt: skip
        return summary
