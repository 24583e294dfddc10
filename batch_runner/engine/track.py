"""Waiting for a task to finish: push while the socket can be trusted, polling when not.

With push (:class:`~batch_runner.wiro.feed.TaskFeed`, trusted by
:class:`~.pushhealth.PushHealth`) a task costs two status requests: one right after it is
subscribed (it may have finished already: a replay of old frames is not documented) and
one after its final frame. Every other frame only shows the task is alive. A per-task
watchdog (:meth:`~.pushhealth.PushPolicy.quiet`) looks at a task that has gone quiet for
longer than is normal for it, so a final frame that never comes costs seconds, not the
rest of the run; and if the socket keeps losing them, polling takes over.

Polling follows :class:`PollSchedule`: quick at first, then backing off with the task's
age. Errors while asking are tolerated for ``error_budget`` seconds; past that the task is
given up for this run only (:class:`~batch_runner.errors.TrackingLost`: its task id stays
in the ledger and the next run picks it up).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..errors import ApiError, TrackingLost, UsageError
from ..wiro.client import WiroClient
from ..wiro.feed import TaskFeed, Watch
from ..wiro.records import Task
from ..wiro.retry import RetryPolicy
from .pushhealth import PushHealth, PushPolicy


@dataclass(frozen=True)
class PollSchedule:
    """When to ask ``/Task/Detail`` while a task is tracked by polling.

    The first check comes ``first`` seconds after submission (at once for a task that is
    already older, such as one resumed from an earlier run). After a check at age ``a``
    the next comes :meth:`interval` later::

        interval(a) = min(cap, first + fraction * a)

    with +-``jitter`` so that tasks submitted together do not ask together. The checks
    space out geometrically (ratio about 1 + ``fraction``) up to one per ``cap``: short tasks
    are seen quickly, long ones cost few requests, and the detection lag stays a bounded
    share of the task's age (at most ``fraction`` of it, about half that on average) until
    the cap. With the defaults (``--poll-interval 1 --poll-max 30``), without jitter, the
    checks come at ages 1, 2.4, 4.4, 7.1, 10.9, 16.3, 23.9, 34.4, 49.2, 69.8, 98.7, 128.7 s:
    a 20-25 s task costs at most 8 requests, a 120 s task 12, a 10-minute task 28.
    """

    first: float = 1.0
    cap: float = 30.0
    fraction: float = 0.4
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if not self.first > 0:
            raise UsageError(f"The first poll must come after a positive time, not {self.first!r}.")
        if not self.cap >= self.first:
            raise UsageError(f"The longest poll interval {self.cap!r} must be at least the first.")
        if not self.fraction >= 0 or not 0 <= self.jitter < 1:
            raise UsageError("PollSchedule needs fraction >= 0 and 0 <= jitter < 1.")

    def interval(self, age: float) -> float:
        """Seconds from a check at ``age`` seconds to the next one, before jitter."""
        return min(self.cap, self.first + self.fraction * max(0.0, age))

    def delay(self, age: float, rng: random.Random | None = None) -> float:
        """:meth:`interval` with jitter."""
        spread = (rng or random).uniform(1 - self.jitter, 1 + self.jitter)
        return self.interval(age) * spread

    def check_ages(self, duration: float) -> list[float]:
        """The ages (no jitter) of the checks that polling makes for a task that finishes at
        ``duration`` seconds after submission: the last one is the first at or after it."""
        ages = [self.first]
        while ages[-1] < duration:
            ages.append(ages[-1] + self.interval(ages[-1]))
        return ages


@dataclass
class _Wait:
    """One task's waiting state (monotonic times)."""

    submitted_at: float  # wall-clock, from the ledger
    first_due: float
    last_check: float | None = None
    last_check_age: float = 0.0
    next_poll: float | None = None
    checks_after_final: int = 0

    def age(self) -> float:
        return max(0.0, time.time() - self.submitted_at)


class Tracker:
    """Tracks tasks to a terminal status for the run engine.

    ``checks`` counts the status requests by why they were made: ``subscribed`` (right
    after a subscription), ``final`` (a final frame), ``settle`` (after a final frame, the
    record not showing the end yet), ``watchdog`` (a quiet subscribed task), ``overdue``
    (a subscribed task not looked at for :meth:`~.pushhealth.PushPolicy.ceiling`), ``poll``
    (polling) and ``retry`` (after a failed request).
    """

    def __init__(
        self,
        client: WiroClient,
        *,
        schedule: PollSchedule | None = None,
        policy: RetryPolicy | None = None,
        feed: TaskFeed | None = None,
        health: PushHealth | None = None,
        error_budget: float = 900.0,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.schedule = schedule or PollSchedule()
        self.policy = policy or RetryPolicy()
        self.feed = feed
        self.health = health or PushHealth(PushPolicy(), feed)
        self.error_budget = error_budget
        self._rng = rng or random.Random()
        self.detail_requests = 0
        self.poll_errors = 0
        self.checks: Counter[str] = Counter()
        #: task id -> the last status request error while the task's status is unknown; kept
        #: after the wait ends so that a --task-timeout can say why (the runner pops it)
        self.last_errors: dict[str, str] = {}

    async def _detail(self, taskid: str) -> Task:
        self.detail_requests += 1
        return await self.client.detail(taskid=taskid)

    def _next_check(self, watch: Watch | None, wait: _Wait) -> tuple[float, str]:
        """When the next status request is due (monotonic) and why."""
        now = time.monotonic()
        if watch is not None and watch.final:
            # A final frame: look at once; if the record lags behind, again shortly.
            if wait.checks_after_final == 0 or wait.last_check is None:
                return now, "final"
            push = self.health.policy
            return wait.last_check + push.settle_delay(wait.checks_after_final), "settle"
        feed = self.feed
        live = watch is not None and feed is not None and feed.is_live(watch)
        if live and watch is not None and self.health.push_usable:
            return self._watchdog(watch, wait, now)
        if wait.last_check is None:
            # The first look: ``first`` after submission, at once for an older task.
            return wait.first_due, "poll"
        if wait.next_poll is None:
            wait.next_poll = wait.last_check + self.schedule.delay(wait.last_check_age, self._rng)
        return wait.next_poll, "poll"

    def _watchdog(self, watch: Watch, wait: _Wait, now: float) -> tuple[float, str]:
        if watch.needs_check:
            return now, "subscribed"
        health = self.health
        quiet = health.policy.quiet(watch.gaps, health.typical_final_gap)
        activity = watch.last_activity
        last = wait.last_check
        if last is None:
            return activity + quiet, "watchdog"
        if last >= activity:
            # Silent since the last look: keep looking, gently.
            due = last + max(quiet, self.schedule.interval(wait.last_check_age))
        else:
            due = activity + quiet
        # Frames or not, never too long without a look.
        overdue = last + health.policy.ceiling(wait.last_check_age, health.typical_duration)
        return (overdue, "overdue") if overdue < due else (due, "watchdog")

    async def _until_due(self, watch: Watch | None, wait: _Wait) -> str:
        """Sleep until the next status request is due; re-plan whenever the watch is poked."""
        while True:
            if watch is not None:
                watch.event.clear()
            due, why = self._next_check(watch, wait)
            delay = due - time.monotonic()
            if delay <= 0.001:
                return why
            if watch is None:
                await asyncio.sleep(delay)
                return why
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watch.event.wait(), delay)

    async def wait_terminal(
        self,
        taskid: str,
        tasktoken: str,
        *,
        submitted_at: float,
        on_status: Callable[[Task], Awaitable[None]] | None = None,
    ) -> Task:
        """Return the task's record once its status is terminal."""
        feed = self.feed if tasktoken else None
        if self.feed is None:
            self.health.announce_off()
        watch = await feed.watch(tasktoken) if feed is not None else None
        age = max(0.0, time.time() - submitted_at)
        wait = _Wait(submitted_at, time.monotonic() + max(0.0, self.schedule.first - age))
        first_error: float | None = None
        errors_in_row = 0
        last_status = ""
        why = ""
        try:
            while True:
                if why != "retry":
                    why = await self._until_due(watch, wait)
                live = watch is not None and feed is not None and feed.is_live(watch)
                generation = watch.generation if watch is not None else 0
                after_final = watch is not None and watch.final
                self.checks[why] += 1
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
                    why = "retry"
                    continue
                first_error, errors_in_row = None, 0
                self.last_errors.pop(taskid, None)
                wait.last_check, wait.last_check_age = time.monotonic(), wait.age()
                wait.next_poll = None
                if watch is not None:
                    if after_final:
                        wait.checks_after_final += 1
                    if live and watch.generation == generation:
                        # This look covers whatever happened before the subscription.
                        watch.needs_check = False
                        watch.confirmed = watch.confirmed or not task.is_terminal
                if task.status != last_status:
                    last_status = task.status
                    if on_status is not None:
                        await on_status(task)
                if task.is_terminal:
                    self.health.task_ended(watch, wait.age())
                    return task
                why = ""
        finally:
            if feed is not None:
                feed.unwatch(tasktoken)
