"""The retry policy: one object, applied to every API call by what its error class says.

Retried, with exponential backoff and full jitter: transport errors, HTTP 5xx and 408,
replies of the wrong shape. Retried honouring ``Retry-After`` when present: HTTP 429 and
code 96. Never retried: auth, validation, not-found, code 97. A ``/Run`` is retried only
when it certainly created nothing (``may_have_created`` is False); otherwise the caller
reconciles through ``/Task/List`` instead of paying twice.

Built on tenacity; task code never sleeps or loops on errors itself.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_any,
)
from tenacity.stop import stop_base

from ..errors import ApiError, ConcurrencyLimitError, DownloadError, UsageError

T = TypeVar("T")


class _StopBeforeOverrun(stop_base):
    """Stop when the next wait would end past ``limit`` seconds: the bound covers waits.

    tenacity's ``stop_after_delay`` only looks at the time already spent, so one long
    ``Retry-After`` could overrun the bound by a whole wait. (``upcoming_sleep`` is set
    before the stop check since tenacity 8.3; older versions degrade to ``stop_after_delay``.)
    """

    def __init__(self, limit: float) -> None:
        self.limit = limit

    def __call__(self, retry_state: RetryCallState) -> bool:
        spent = retry_state.seconds_since_start or 0.0
        upcoming = float(getattr(retry_state, "upcoming_sleep", 0.0) or 0.0)
        return spent + upcoming >= self.limit


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a failing call.

    ``max_attempts`` counts the first try; ``max_elapsed`` bounds the whole call including
    waits; ``base_delay`` and ``max_delay`` shape the exponential backoff (full jitter:
    a uniform wait between 0 and ``min(max_delay, base_delay * 2**n)``). A server's
    ``Retry-After`` is honoured up to ``max_retry_after`` seconds.
    """

    max_attempts: int = 6
    max_elapsed: float = 120.0
    base_delay: float = 0.5
    max_delay: float = 20.0
    max_retry_after: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise UsageError(f"max_attempts must be at least 1, not {self.max_attempts}.")
        for name in ("max_elapsed", "base_delay", "max_delay", "max_retry_after"):
            value = getattr(self, name)
            if not value >= 0:  # also refuses NaN, which compares false to everything
                raise UsageError(f"{name} must be a number of seconds >= 0, not {value}.")

    @staticmethod
    def is_retryable(exc: BaseException) -> bool:
        """True for errors whose class says a later attempt may succeed."""
        if isinstance(exc, ApiError | DownloadError):
            return bool(exc.retryable)
        return False

    @classmethod
    def is_retryable_run(cls, exc: BaseException) -> bool:
        """For ``/Run``: retry only what certainly created no task.

        Code 96 is left to the caller too: it means "fewer tasks at once", which the run
        engine handles by lowering its concurrency rather than by hammering the service.
        """
        if isinstance(exc, ConcurrencyLimitError):
            return False
        if isinstance(exc, ApiError) and exc.may_have_created:
            return False
        return cls.is_retryable(exc)

    def backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff for the given attempt number (1-based)."""
        # 2**n past ~1023 no longer converts to float: cap the exponent (2**64 is plenty).
        ceiling = min(self.max_delay, self.base_delay * (2 ** min(max(0, attempt - 1), 64)))
        return random.uniform(0, ceiling)

    def delay_for(self, exc: BaseException | None, attempt: int) -> float:
        """The wait before the next attempt: ``Retry-After`` when given, else backoff."""
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int | float) and retry_after >= 0:
            return min(float(retry_after), self.max_retry_after) + random.uniform(0, 0.1)
        return self.backoff(attempt)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        return self.delay_for(exc, state.attempt_number)

    async def call(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        retry_if: Callable[[BaseException], bool] | None = None,
        on_retry: Callable[[BaseException, int, float], None] | None = None,
    ) -> T:
        """Run ``fn`` until it succeeds, fails for good, or the policy's limits are hit.

        The last error is re-raised unchanged, so callers still see the class that says
        what to do. ``on_retry(error, attempt, delay)`` is told about each retry.

        The first attempt runs bare: the retry machinery (tenacity's state, its stop and wait
        strategies) is built only once a call has failed in a way worth retrying, so the
        happy path of thousands of calls per second costs one await.
        """
        predicate = retry_if or self.is_retryable
        started = time.monotonic()
        try:
            return await fn()
        except Exception as exc:
            if self.max_attempts <= 1 or not predicate(exc):
                raise
            first: list[BaseException] = [exc]

        def before_sleep(state: RetryCallState) -> None:
            if on_retry is not None and state.outcome is not None:
                exc = state.outcome.exception()
                if exc is not None:
                    delay = state.next_action.sleep if state.next_action else 0.0
                    on_retry(exc, state.attempt_number, delay)

        spent = time.monotonic() - started
        retrying = AsyncRetrying(
            stop=stop_any(
                stop_after_attempt(self.max_attempts),
                _StopBeforeOverrun(max(0.0, self.max_elapsed - spent)),
            ),
            wait=self._wait,
            retry=retry_if_exception(predicate),
            before_sleep=before_sleep,
            reraise=True,
        )

        async def attempt() -> T:
            # Attempt 1 already happened above: hand its error to tenacity, which then waits
            # and retries. (tenacity awaits only what it recognises as a coroutine *function*;
            # wrapping makes every Callable[[], Awaitable[T]] work.)
            if first:
                raise first.pop()
            return await fn()

        result: T = await retrying(attempt)
        return result

    async def call_run(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        on_retry: Callable[[BaseException, int, float], None] | None = None,
    ) -> T:
        """Like :meth:`call` for ``/Run``: never retries what may have created a task."""
        return await self.call(fn, retry_if=self.is_retryable_run, on_retry=on_retry)
