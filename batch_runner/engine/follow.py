"""Following a submitted task to its end, and recording how it ended.

The :class:`~batch_runner.engine.track.Tracker` knows how to wait (push, polling); this
stage knows what the wait means for the job: a status seen, a ``--task-timeout`` that stops
the task, a task the service no longer knows, and the terminal task's verdict (outputs to
fetch, another attempt, or a failure with its reason).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from enum import Enum

from ..errors import ApiError, NotFoundError, TrackingLost
from ..ledger.events import (
    AttemptFailed,
    JobCancelled,
    JobFailed,
    RemoteOutput,
    TaskDone,
    TaskStatusSeen,
)
from ..wiro.records import Task
from .context import RunContext
from .track import Tracker


class Verdict(Enum):
    """What a terminal task leaves the job to do."""

    #: succeeded: its outputs are to be fetched
    DOWNLOAD = "download"
    #: failed with attempts left: submit the job again
    RETRY = "retry"
    #: failed or cancelled for good (recorded)
    DONE = "done"


class Follower:
    """Tracks one job's task at a time per worker; shares one :class:`Tracker`."""

    def __init__(self, ctx: RunContext, tracker: Tracker) -> None:
        self.ctx = ctx
        self.tracker = tracker

    async def track(self, job_id: str) -> Task | None:
        """Follow the job's task to a terminal status; None if the run must let it go."""
        ctx = self.ctx
        record = ctx.record_of(job_id)
        assert record.taskid is not None
        taskid = record.taskid

        async def on_status(task: Task) -> None:
            if not task.is_terminal:
                await ctx.record(
                    TaskStatusSeen(job=job_id, status=task.status, taskid=taskid), durable=False
                )

        timeout = ctx.options.task_timeout
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
            ctx.stop(exc.message)
            return None
        except NotFoundError as exc:
            error = f"task {taskid} is unknown to the service: {exc.message}"
            note = f"task {taskid} is unknown to the service"
            await ctx.record(JobFailed(job=job_id, error=error), note=note)
            return None

    async def _time_out(self, job_id: str, taskid: str) -> Task | None:
        ctx = self.ctx
        client, policy = ctx.client, ctx.options.policy
        limit = ctx.options.task_timeout or 0.0
        reason = f"task {taskid} ran longer than --task-timeout {limit:.0f} s"
        unreadable = self.tracker.last_errors.pop(taskid, None)
        why = f" (its status could not be read: {unreadable})" if unreadable else ""
        try:
            task = await policy.call(lambda: client.kill(taskid=taskid))
        except ApiError:
            try:
                task = await policy.call(lambda: client.cancel(taskid))
            except ApiError as exc:
                # Neither Kill nor Cancel applies to a task that has just finished: look once
                # more, so that a video finished (and paid for) at the deadline is kept.
                with contextlib.suppress(ApiError):
                    found = await policy.call(lambda: client.detail(taskid=taskid))
                    if found.is_terminal:
                        return found
                # Still running and unstoppable: never record it as over (it may yet be paid
                # for); the job keeps its task id and the next run tries again.
                reason += f"{why}; stopping it failed ({exc.message}); the next run retries"
                ctx.say("error", job_id, reason, level="error")
                return None
        reason += f"; it was stopped{why}"
        if task is not None and task.succeeded:
            return task
        await ctx.record(JobCancelled(job=job_id, error=reason))
        return None

    async def settle(self, job_id: str, task: Task) -> Verdict:
        """Record a terminal task and say what the job does next."""
        ctx = self.ctx
        cost = task.totalcost
        if task.succeeded:
            outputs = tuple(
                RemoteOutput(_shared(o.name), o.url, o.size, _shared(o.contenttype))
                for o in task.outputs
            )
            # Not waited for: if it is lost, the next run follows the task by its durable id
            # and learns the same; the first output_saved after it syncs it anyway.
            await ctx.record(
                TaskDone(job=job_id, outputs=outputs, cost=cost, taskid=task.id), durable=False
            )
            return Verdict.DOWNLOAD
        reason = task.failure_reason()
        record = ctx.record_of(job_id)
        user_cancel = task.status == "task_cancel" and "user" in task.debugerror.lower()
        may_retry = job_id in ctx.jobs and not user_cancel and not ctx.stopping
        if may_retry and record.attempts < ctx.options.max_attempts:
            note = f"task {task.id}: {reason}; submitting again"
            await ctx.record(AttemptFailed(job=job_id, error=reason, cost=cost), note=note)
            return Verdict.RETRY
        if task.status == "task_cancel":
            await ctx.record(JobCancelled(job=job_id, error=reason, cost=cost))
        else:
            await ctx.record(JobFailed(job=job_id, error=reason, cost=cost))
        return Verdict.DONE


def _shared(text: str) -> str:
    """One copy of a short value that most tasks repeat (``output.mp4``, ``video/mp4``)
    for the whole run, not one per job held in the ledger's records."""
    return sys.intern(text) if len(text) <= 64 else text
