"""RetryPolicy: which errors it retries, how long it waits, and where it stops.

The errors are the client's real classes; the end-to-end tests drive the real client against
the sandbox with gateway faults switched on. Delays are tiny so the file runs in a second or
two.
"""

from __future__ import annotations

import functools
import math
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from batch_runner.errors import (
    ApiError,
    AuthError,
    ConcurrencyLimitError,
    DownloadError,
    InsufficientBalanceError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
    ProtocolError,
    RateLimitedError,
    ServerError,
    TransportError,
    UnsafeDownloadError,
    UsageError,
)
from batch_runner.sandbox import FaultConfig, Sandbox, SandboxConfig
from batch_runner.wiro.client import WiroClient
from batch_runner.wiro.retry import RetryPolicy

FAST = RetryPolicy(max_attempts=5, max_elapsed=10.0, base_delay=0.001, max_delay=0.01)
MODEL = "PixVerse/image-to-video-v5"
INPUTS = {"inputImageUrl": "https://example.com/a.png", "prompt": "a cat surfing"}


class Flaky:
    """An async callable that raises the given errors in turn, then returns ``"ok"``."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.times: list[float] = []

    async def __call__(self) -> str:
        self.calls += 1
        self.times.append(time.monotonic())
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


class Always:
    """An async callable that raises a fresh copy of the same error on every call."""

    def __init__(self, make: Any) -> None:
        self.make = make
        self.calls = 0
        self.raised: list[BaseException] = []

    async def __call__(self) -> str:
        self.calls += 1
        exc = self.make()
        self.raised.append(exc)
        raise exc


def transport(may_have_created: bool = False) -> TransportError:
    return TransportError(
        "connection dropped", endpoint="/Run/x/y", may_have_created=may_have_created
    )


def server(may_have_created: bool = False) -> ServerError:
    return ServerError("HTTP 502", status=502, may_have_created=may_have_created)


def rate_limited(retry_after: float | None = None) -> RateLimitedError:
    return RateLimitedError("HTTP 429", status=429, retry_after=retry_after)


# -- what is retried -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        transport,
        server,
        rate_limited,
        lambda: ServerError("HTTP 408", status=408),
        lambda: ProtocolError("odd shape"),
        lambda: ConcurrencyLimitError("code 96", code=96),
        lambda: IntegrityError("cut short"),
    ],
    ids=["transport", "5xx", "429", "408", "protocol", "96", "download-integrity"],
)
async def test_transient_errors_are_retried_until_success(make: Any) -> None:
    fn = Flaky(make(), make())
    retries: list[tuple[str, int, float]] = []
    result = await FAST.call(fn, on_retry=lambda e, n, d: retries.append((type(e).__name__, n, d)))
    assert result == "ok" and fn.calls == 3
    assert [n for _, n, _ in retries] == [1, 2]
    assert all(0 <= d <= FAST.max_delay + 0.1 for _, _, d in retries)


async def test_plain_callables_returning_awaitables_are_awaited_and_retried() -> None:
    """``lambda: client.detail(...)`` is how callers use it: not a coroutine function."""
    fn = Flaky(transport(), server())
    assert await FAST.call(lambda: fn()) == "ok" and fn.calls == 3
    fn = Flaky(transport())
    assert await FAST.call_run(functools.partial(fn.__call__)) == "ok" and fn.calls == 2


@pytest.mark.parametrize(
    "error",
    [
        AuthError("Project authorization is not valid.", status=401),
        InvalidInputError("Request parameter [prompt] required", code=0, status=400),
        NotFoundError("There is no task yet.", code=1, status=404),
        InsufficientBalanceError("Insufficient balance", code=97, status=400),
        ApiError("code 42: something new", code=42),
        UnsafeDownloadError("redirect to file://"),
        UsageError("bad flag"),
        ValueError("not ours"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_final_errors_are_never_retried(error: BaseException) -> None:
    fn = Flaky(error)
    retries: list[Any] = []
    with pytest.raises(type(error)) as info:
        await FAST.call(fn, on_retry=lambda *a: retries.append(a))
    assert info.value is error  # re-raised unchanged, not wrapped in tenacity's RetryError
    assert fn.calls == 1 and retries == []
    with pytest.raises(type(error)):
        await FAST.call_run(Flaky(error))


async def test_call_run_never_retries_what_may_have_created_a_task() -> None:
    for error in (
        transport(may_have_created=True),
        server(may_have_created=True),
        ProtocolError("200 without a task id", may_have_created=True),
        ConcurrencyLimitError("code 96", code=96),  # the engine lowers its concurrency instead
    ):
        fn = Flaky(error)
        with pytest.raises(type(error)) as info:
            await FAST.call_run(fn)
        assert info.value is error and fn.calls == 1
    # what certainly created nothing is retried
    fn = Flaky(transport(False), rate_limited(0.001), server(False))
    assert await FAST.call_run(fn) == "ok" and fn.calls == 4
    # and plain call() does retry an ambiguous error (for endpoints other than /Run)
    assert await FAST.call(Flaky(transport(True))) == "ok"


def test_retryable_predicates() -> None:
    assert RetryPolicy.is_retryable(transport()) and RetryPolicy.is_retryable(IntegrityError("x"))
    assert not RetryPolicy.is_retryable(AuthError("x"))
    assert not RetryPolicy.is_retryable(UnsafeDownloadError("x"))
    assert RetryPolicy.is_retryable(DownloadError("x"))
    assert not RetryPolicy.is_retryable(RuntimeError("x"))
    assert RetryPolicy.is_retryable_run(transport(False))
    assert not RetryPolicy.is_retryable_run(transport(True))
    assert not RetryPolicy.is_retryable_run(ConcurrencyLimitError("x"))


# -- how long it waits -----------------------------------------------------------------------


async def test_retry_after_is_honoured() -> None:
    fn = Flaky(rate_limited(0.05), rate_limited(0.05))
    delays: list[float] = []
    policy = RetryPolicy(max_attempts=5, base_delay=0.001, max_delay=0.001)
    assert await policy.call(fn, on_retry=lambda e, n, d: delays.append(d)) == "ok"
    assert all(0.05 <= d <= 0.15 for d in delays) and len(delays) == 2
    gaps = [b - a for a, b in zip(fn.times, fn.times[1:], strict=False)]
    assert all(gap >= 0.045 for gap in gaps), gaps  # it really slept, not just reported it
    # without Retry-After a 429 falls back to the (tiny) exponential backoff
    fn = Flaky(rate_limited(None), rate_limited(None))
    delays.clear()
    assert await policy.call(fn, on_retry=lambda e, n, d: delays.append(d)) == "ok"
    assert all(d <= 0.001 for d in delays)


async def test_retry_after_is_capped_by_max_retry_after() -> None:
    policy = RetryPolicy(base_delay=0.001, max_retry_after=0.01)
    assert 0.01 <= policy.delay_for(rate_limited(3600), 1) <= 0.11
    started = time.monotonic()
    assert await policy.call(Flaky(rate_limited(3600))) == "ok"
    assert time.monotonic() - started < 1
    # a Retry-After on a 503 or a code 96 counts too; without one, the backoff applies
    policy = RetryPolicy(base_delay=0.001)
    assert 0.02 <= policy.delay_for(ServerError("x", retry_after=0.02), 1) <= 0.12
    assert 0.03 <= policy.delay_for(ConcurrencyLimitError("x", retry_after=0.03), 1) <= 0.13
    assert 0 <= policy.delay_for(ConcurrencyLimitError("x"), 1) <= 0.001


def test_full_jitter_stays_within_bounds() -> None:
    policy = RetryPolicy(base_delay=0.01, max_delay=0.5)
    random.seed(1234)
    for attempt in range(1, 15):
        ceiling = min(0.5, 0.01 * 2 ** (attempt - 1))
        samples = [policy.backoff(attempt) for _ in range(400)]
        assert all(0 <= s <= ceiling for s in samples), attempt
        # full jitter: spread over the whole range, not clustered near the ceiling
        assert min(samples) < ceiling * 0.1 and max(samples) > ceiling * 0.9
    for attempt in (0, -3, 1100, 10**6):  # odd attempt numbers neither crash nor overflow
        assert 0 <= policy.backoff(attempt) <= 0.5
    assert 0 <= policy.delay_for(None, 2) <= 0.02
    assert 0 <= policy.delay_for(transport(), 3) <= 0.04


# -- where it stops --------------------------------------------------------------------------


async def test_max_attempts_bounds_the_calls() -> None:
    for attempts in (1, 2, 4):
        fn = Always(server)
        policy = RetryPolicy(max_attempts=attempts, base_delay=0.001, max_delay=0.001)
        with pytest.raises(ServerError) as info:
            await policy.call(fn)
        assert fn.calls == attempts
        assert info.value is fn.raised[-1]  # the last error, unchanged


async def test_max_elapsed_bounds_the_whole_call() -> None:
    fn = Always(transport)
    policy = RetryPolicy(max_attempts=10_000, max_elapsed=0.3, base_delay=0.01, max_delay=0.02)
    started = time.monotonic()
    with pytest.raises(TransportError):
        await policy.call(fn)
    elapsed = time.monotonic() - started
    assert 0.2 <= elapsed < 0.6 and 5 < fn.calls < 10_000


async def test_max_elapsed_covers_a_long_retry_after() -> None:
    """A Retry-After longer than the time left ends the call now, not after the wait."""
    fn = Always(lambda: rate_limited(5.0))
    policy = RetryPolicy(max_attempts=10, max_elapsed=0.5, base_delay=0.001)
    started = time.monotonic()
    with pytest.raises(RateLimitedError) as info:
        await policy.call(fn)
    assert time.monotonic() - started < 0.4 and fn.calls == 1
    assert info.value.retry_after == 5.0  # the caller still learns how long to stay away
    # max_elapsed=0: one attempt, no retry at all
    fn = Always(transport)
    with pytest.raises(TransportError):
        await RetryPolicy(max_elapsed=0, base_delay=0.001).call(fn)
    assert fn.calls == 1


@pytest.mark.parametrize(
    ("kwargs", "shown"),
    [
        ({"max_attempts": 0}, "0"),
        ({"max_attempts": -2}, "-2"),
        ({"max_elapsed": -1.5}, "-1.5"),
        ({"max_elapsed": math.nan}, "nan"),
        ({"base_delay": -0.25}, "-0.25"),
        ({"max_delay": -7}, "-7"),
        ({"max_retry_after": -3}, "-3"),
        ({"base_delay": math.nan}, "nan"),
    ],
)
def test_invalid_policy_arguments(kwargs: dict[str, float], shown: str) -> None:
    name = next(iter(kwargs))
    with pytest.raises(UsageError) as info:
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
    assert name in str(info.value) and shown in str(info.value)


def test_defaults_are_sane() -> None:
    policy = RetryPolicy()
    assert policy.max_attempts >= 3 and 10 <= policy.max_elapsed <= 600
    assert 0 < policy.base_delay <= policy.max_delay <= policy.max_retry_after
    assert RetryPolicy(max_elapsed=math.inf).max_elapsed == math.inf  # "no time bound" is fine


# -- end to end against the sandbox ----------------------------------------------------------


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[Sandbox, WiroClient]]:
    config = SandboxConfig(seed=3, queue_seconds=5, run_seconds=(1, 1))
    async with (
        Sandbox(config) as sb,
        WiroClient(sb.api_key, sb.api_secret, base_url=sb.base_url) as client,
    ):
        yield sb, client


async def test_detail_through_http_500_faults(sandbox: tuple[Sandbox, WiroClient]) -> None:
    sb, client = sandbox
    started = await client.run(MODEL, INPUTS)
    sb.set_faults(FaultConfig(http_500=0.5))
    policy = RetryPolicy(max_attempts=20, base_delay=0.001, max_delay=0.005)
    retried: list[BaseException] = []
    for _ in range(10):
        task = await policy.call(
            lambda: client.detail(taskid=started.taskid),
            on_retry=lambda e, n, d: retried.append(e),
        )
        assert task.id == started.taskid
    injected = sb.stats()["faults_injected"]["http_500"]
    assert injected >= 3 and len(retried) == injected
    assert all(isinstance(e, ServerError) and e.status == 500 for e in retried)


async def test_run_through_429s_creates_each_task_once(
    sandbox: tuple[Sandbox, WiroClient],
) -> None:
    sb, client = sandbox
    sb.set_faults(FaultConfig(http_429=0.5))
    policy = RetryPolicy(max_attempts=20, base_delay=0.001, max_retry_after=0.01)
    for i in range(5):
        await policy.call_run(lambda i=i: client.run(MODEL, {**INPUTS, "prompt": f"p{i}"}))
    stats = sb.stats()
    assert stats["tasks_created"] == 5 and stats["duplicate_tasks"] == 0
    assert stats["faults_injected"]["http_429"] >= 1


async def test_run_is_not_retried_after_a_5xx(sandbox: tuple[Sandbox, WiroClient]) -> None:
    sb, client = sandbox
    sb.set_faults(FaultConfig(http_502=1.0))
    with pytest.raises(ServerError) as info:
        await FAST.call_run(lambda: client.run(MODEL, INPUTS))
    assert info.value.may_have_created
    assert sb.stats()["requests"]["Run"] == 1
    sb.set_faults(FaultConfig(drop_after_create=1.0))
    with pytest.raises(TransportError) as dropped:
        await FAST.call_run(lambda: client.run(MODEL, INPUTS))
    assert dropped.value.may_have_created
    assert sb.stats()["requests"]["Run"] == 2 and sb.stats()["tasks_created"] == 1


async def test_the_happy_path_builds_no_retry_machinery(monkeypatch: pytest.MonkeyPatch) -> None:
    """A call that succeeds at once never constructs tenacity's state; one that fails in a
    retryable way does, and still counts the first try as attempt 1."""
    import batch_runner.wiro.retry as retry_module

    built: list[object] = []
    real = retry_module.AsyncRetrying

    def counting(*args: object, **kwargs: object) -> object:
        built.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(retry_module, "AsyncRetrying", counting)
    policy = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0)

    async def fine() -> str:
        return "ok"

    assert [await policy.call(fine) for _ in range(50)] == ["ok"] * 50
    assert built == []
    tries: list[int] = []
    seen: list[int] = []

    async def flaky() -> str:
        tries.append(1)
        if len(tries) < 3:
            raise ServerError("HTTP 502", status=502)
        return "late"

    assert await policy.call(flaky, on_retry=lambda e, n, d: seen.append(n)) == "late"
    assert len(tries) == 3 and seen == [1, 2] and len(built) == 1
