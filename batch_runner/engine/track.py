"""Waiting for a task to finish: push when the socket works, adaptive polling when not.

With the feed healthy a task costs about two status requests: one right after
subscribing (it may already be done: replay of old frames is not documented) and one
after the terminal frame. Without push the schedule polls quickly at first and backs off
in proportion to the task's age, with jitter, up to a cap: short tasks are detected fast,
long ones cost few requests. Errors while polling are tolerated for a bounded time.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..errors import ApiError, TrackingLost
from ..wiro.client import WiroClient
from ..wiro.feed import TaskFeed
from ..wiro.records import Task
from ..wiro.retry import RetryPolicy


@dataclass(frozen=True)
class PollSchedule:
    """When to ask ``/Task/Detail`` again.

    Polling only: ``first`` seconds after submission, then ``age_fraction`` of the task's
    age, capped at ``cap``, with +-``jitter``. With push: every ``push_fallback`` seconds
    as a safety net for frames that never arrive.
    """

    first: float = 1.0
    cap: float = 15.0
    age_fraction: float = 0.15
    jitter: float = 0.2
    push_fallback: float = 30.0

    def delay(self, age: float, *, pushing: bool) -> float:
        if pushing:
            base = max(self.push_fallback, self.age_fraction * age)
        else:
            base = min(self.cap, max(self.first, self.age_fraction * age))
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)


class Tracker:
    """Tracks tasks to a terminal status for the run engine."""

    def __init__(
        self,
        client: WiroClient,
        *,
        schedule: PollSchedule | None = None,
        policy: RetryPolicy | None = None,
        feed: TaskFeed | None = None,
        error_budget: float = 900.0,
    ) -> None:
        self.client = client
        self.schedule = schedule or PollSchedule()
        self.policy = policy or RetryPolicy()
        self.feed = feed
        self.error_budget = error_budget
        self.detail_requests = 0
        self.poll_errors = 0
        #: task id -> the last status request error while the task's status is unknown; kept
        #: after the wait ends so that a --task-timeout can say why (the runner pops it)
        self.last_errors: dict[str, str] = {}

    async def _detail(self, taskid: str) -> Task:
        self.detail_requests += 1
        return await self.client.detail(taskid=taskid)

    async def wait_terminal(
        self,
        taskid: str,
        tasktoken: str,
        *,
        submitted_at: float,
        on_status: Callable[[Task], Awaitable[None]] | None = None,
    ) -> Task:
        """Return the task's record once its status is terminal."""
        feed = self.feed if (self.feed is not None and self.feed.available and tasktoken) else None
        watch = await feed.watch(tasktoken) if feed is not None else None
        first_error: float | None = None
        errors_in_row = 0
        last_status = ""
        check_now = feed is not None and feed.healthy  # the task may already be done
        try:
            while True:
                if not check_now:
                    age = max(0.0, time.time() - submitted_at)
                    pushing = feed is not None and feed.healthy and feed.available
                    delay = self.schedule.delay(age, pushing=pushing)
                    if watch is not None:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(watch.event.wait(), delay)
                        watch.event.clear()
                    else:
                        await asyncio.sleep(delay)
                check_now = False
                try:
                    task = await self._detail(taskid)
                except ApiError as exc:
                    if not exc.retryable:
                        raise
                    self.poll_errors += 1
                    self.last_errors[taskid] = exc.message
                    errors_in_row += 1
                    now = time.monotonic()
                    first_error = first_error if first_error is not None else now
                    if now - first_error > self.error_budget:
                        raise TrackingLost(
                            f"Lost contact with task {taskid}: status requests failed for "
                            f"{now - first_error:.0f} s ({exc.message}). The task is kept; "
                            "re-run to pick it up."
                        ) from None
                    await asyncio.sleep(self.policy.delay_for(exc, errors_in_row))
                    check_now = True
                    continue
                first_error, errors_in_row = None, 0
                self.last_errors.pop(taskid, None)
                if task.status != last_status:
                    last_status = task.status
                    if on_status is not None:
                        await on_status(task)
                if task.is_terminal:
                    return task
        finally:
            if feed is not None:
                feed.unwatch(tasktoken)
