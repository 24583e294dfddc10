"""The pure parts of tracking: the polling schedule, the socket's backoff, the watchdog's rule,
push health (trust in the socket's final frames, one announcement per change) and the
feed's handling of frames. No network here; ``test_push_health.py`` runs them for real."""

from __future__ import annotations

import random
from collections.abc import Iterator

import orjson
import pytest

from batch_runner.engine.pushhealth import PushHealth, PushPolicy, TrackingMode
from batch_runner.engine.track import PollSchedule
from batch_runner.errors import UsageError
from batch_runner.wiro.feed import FeedState, TaskFeed, Watch, describe_failure, reconnect_delay

# -- the polling schedule ----------------------------------------------------------------------


def test_schedule_formula_and_documented_sample_points() -> None:
    schedule = PollSchedule()
    assert schedule.interval(0) == 1.0
    assert schedule.interval(10) == pytest.approx(5.0)
    assert schedule.interval(72.5) == pytest.approx(30.0)
    assert schedule.interval(1000) == 30.0  # the cap (--poll-max)
    ages = schedule.check_ages(130)
    documented = [1, 2.4, 4.4, 7.1, 10.9, 16.3, 23.9, 34.4, 49.2, 69.8, 98.7, 128.7]
    assert [round(a, 1) for a in ages[: len(documented)]] == documented


@pytest.mark.parametrize(
    ("low", "high", "most"),
    [(0.5, 2.0, 2), (5, 8, 5), (12, 12, 6), (20, 25, 8), (110, 130, 13), (600, 600, 28)],
)
def test_schedule_request_counts(low: float, high: float, most: int) -> None:
    """Issue 15: a 20-25 s task needs at most 8 requests, a 120 s task about 12."""
    schedule = PollSchedule()
    steps = 50
    counts = [len(schedule.check_ages(low + (high - low) * i / steps)) for i in range(steps + 1)]
    assert max(counts) <= most
    assert len(schedule.check_ages(120)) == 12


def test_schedule_lag_is_a_bounded_share_of_the_task_age() -> None:
    schedule = PollSchedule()
    lags = []
    for tenth in range(30, 3000):
        duration = tenth / 10
        seen = schedule.check_ages(duration)[-1]
        lag = seen - duration
        # never more than one interval, i.e. first + fraction x age
        assert lag <= schedule.interval(duration) + 1e-9
        lags.append(lag / duration)
    assert max(lags) < 0.62 and sum(lags) / len(lags) < 0.22


def test_schedule_is_scale_free_under_the_cap() -> None:
    """Scaling first and cap by k scales every check age by k: a test may run the 120 s
    case as a 12 s one (first 0.1 s, cap 3 s) and see the same request count."""
    fast = PollSchedule(first=0.1, cap=3.0)
    normal = PollSchedule()
    for duration in (2.2, 2.5, 12.0, 60.0):
        assert len(fast.check_ages(duration / 10)) == len(normal.check_ages(duration))


def test_schedule_jitter_and_validation() -> None:
    schedule = PollSchedule(jitter=0.1)
    rng = random.Random(3)
    draws = [schedule.delay(20, rng) for _ in range(2000)]
    assert min(draws) >= 9 * 0.9 and max(draws) <= 9 * 1.1
    assert max(draws) - min(draws) > 1.0  # spread, not a constant
    with pytest.raises(UsageError, match="positive"):
        PollSchedule(first=0)
    with pytest.raises(UsageError, match="at least the first"):
        PollSchedule(first=5, cap=2)
    with pytest.raises(UsageError, match="jitter"):
        PollSchedule(jitter=1.5)


# -- the socket's backoff -------------------------------------------------------------------------


def test_reconnect_delay_doubles_up_to_the_cap_with_jitter() -> None:
    rng = random.Random(7)
    assert reconnect_delay(0, rng=rng) == 0.0
    for failures, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8), (6, 32), (7, 60), (50, 60)]:
        draws = [reconnect_delay(failures, rng=rng) for _ in range(500)]
        assert ceiling / 2 <= min(draws) and max(draws) <= ceiling
        assert max(draws) - min(draws) > ceiling / 5  # jittered
    assert reconnect_delay(10_000, base=0.1, cap=2.0, rng=rng) <= 2.0


def test_a_refused_socket_is_retried_a_handful_of_times_per_ten_minutes() -> None:
    """The old feed retried every few seconds for the whole run; now about 14 attempts
    in the first ten minutes, then one a minute or less."""
    rng = random.Random(1)
    elapsed, attempts = 0.0, 1
    while True:
        elapsed += reconnect_delay(attempts, rng=rng)
        if elapsed > 600:
            break
        attempts += 1
    assert 10 <= attempts <= 22


def test_failure_reasons_name_the_cause_without_the_url() -> None:
    import aiohttp
    from yarl import URL

    info = aiohttp.RequestInfo(URL("ws://127.0.0.1:9/socket?token=SECRET"), "GET", {})  # type: ignore[arg-type]
    refused = aiohttp.WSServerHandshakeError(info, (), status=404, message="Not Found")
    assert describe_failure(refused) == "HTTP 404 from the socket URL"
    assert "without upgrading" in describe_failure(
        aiohttp.WSServerHandshakeError(info, (), status=200, message="OK")
    )
    import errno
    import socket

    from aiohttp.client_reqrep import ConnectionKey

    key = ConnectionKey("127.0.0.1", 9, False, True, None, None, None)
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('127.0.0.1', 9)")
    assert describe_failure(aiohttp.ClientConnectorError(key, refused)) == (
        "cannot connect to the socket URL (Connection refused)"
    )
    unknown = socket.gaierror(-2, "Name or service not known")
    assert describe_failure(aiohttp.ClientConnectorError(key, unknown)) == (
        "cannot connect to the socket URL (Name or service not known)"
    )
    assert describe_failure(TimeoutError()) == "the socket URL did not answer in time"
    assert describe_failure(ValueError("bad")) == "the socket URL is not valid"
    for exc in (refused, TimeoutError(), ValueError("x")):
        assert "SECRET" not in describe_failure(exc) and "127.0.0.1" not in describe_failure(exc)


# -- the watchdog's rule ---------------------------------------------------------------------------


def test_watchdog_quiet_adapts_to_normal_gaps() -> None:
    policy = PushPolicy()
    assert policy.quiet([]) == 5.0  # no frames yet: the floor
    assert policy.quiet([0.2, 0.3, 0.1]) == 5.0  # quick frames: still the floor
    assert policy.quiet([1.0, 2.5]) == pytest.approx(7.5)  # 3 x the largest recent gap
    assert policy.quiet([0.5], typical_final_gap=8.0) == pytest.approx(12.0)  # run's normal
    assert policy.quiet([100.0]) == 60.0  # capped
    assert [policy.settle_delay(k) for k in (1, 2, 3, 4, 5, 9)] == [0.5, 1, 2, 4, 5, 5]
    assert policy.ceiling(0) == 120.0 and policy.ceiling(300) == 300.0
    assert policy.ceiling(10, typical_duration=90.0) == 180.0
    with pytest.raises(UsageError, match="quiet_min"):
        PushPolicy(quiet_min=0)
    with pytest.raises(UsageError, match="reconnect_base"):
        PushPolicy(reconnect_base=5, reconnect_cap=1)


# -- push health -------------------------------------------------------------------------------


class FakeFeed:
    """Just what PushHealth reads from a feed."""

    def __init__(self) -> None:
        self.state = FeedState.IDLE
        self.on_state = None
        self.pokes = 0

    @property
    def connected(self) -> bool:
        return self.state is FeedState.CONNECTED

    def poke_all(self) -> None:
        self.pokes += 1

    def set(self, state: FeedState, reason: str = "") -> None:
        self.state = state
        assert self.on_state is not None
        self.on_state(state, reason)


def health_with(
    policy: PushPolicy | None = None,
) -> tuple[PushHealth, FakeFeed, list[TrackingMode]]:
    said: list[TrackingMode] = []
    feed = FakeFeed()
    health = PushHealth(policy, feed, on_change=said.append)  # type: ignore[arg-type]
    return health, feed, said


def ended(*, final: bool, confirmed: bool = True, gap: float | None = 0.2) -> Watch:
    watch = Watch("tok")
    watch.final, watch.confirmed = final, confirmed
    watch.final_gap = gap if final else None
    return watch


def test_connection_changes_are_announced_once_each() -> None:
    _health, feed, said = health_with()
    feed.set(FeedState.CONNECTING)
    assert said == []
    feed.set(FeedState.CONNECTED)
    feed.set(FeedState.CONNECTING, "the connection dropped")  # a drop that comes straight back
    feed.set(FeedState.CONNECTED)
    assert [m.message for m in said] == ["push connected; tracking by push"]
    feed.set(FeedState.UNAVAILABLE, "HTTP 404 from the socket URL")
    feed.set(FeedState.UNAVAILABLE, "cannot connect to the socket URL (Connection refused)")
    feed.set(FeedState.CONNECTING)
    feed.set(FeedState.UNAVAILABLE, "HTTP 404 from the socket URL")
    feed.set(FeedState.CONNECTED)
    assert [m.message for m in said[1:]] == [
        "push unavailable (HTTP 404 from the socket URL); tracking by polling",
        "push reconnected; tracking by push",
    ]
    assert [m.level for m in said] == ["info", "warning", "info"]
    assert said[1].to_dict()["by"] == "polling" and said[1].reason.startswith("HTTP 404")


def test_unavailable_from_the_start_then_reconnected() -> None:
    health, feed, said = health_with()
    feed.set(FeedState.CONNECTING)
    feed.set(FeedState.UNAVAILABLE, "HTTP 502 from the socket URL")
    assert not health.push_usable
    feed.set(FeedState.CONNECTED)
    assert health.push_usable
    assert [m.message for m in said] == [
        "push unavailable (HTTP 502 from the socket URL); tracking by polling",
        "push reconnected; tracking by push",
    ]


def test_missing_final_frames_take_trust_away_and_frames_win_it_back() -> None:
    health, feed, said = health_with()
    feed.set(FeedState.CONNECTED)
    for _ in range(2):
        health.task_ended(ended(final=False))
    health.task_ended(ended(final=True))  # a hit resets the count
    health.task_ended(ended(final=False, confirmed=False))  # ended before it was seen running
    for _ in range(2):
        health.task_ended(ended(final=False))
    assert health.trusted and health.push_usable
    health.task_ended(ended(final=False))
    assert not health.trusted and not health.push_usable
    assert said[-1].message == (
        "push delivered no final frame for 3 tasks in a row; tracking by polling"
    )
    health.task_ended(ended(final=False))  # already distrusted: nothing more is said
    health.task_ended(ended(final=True))
    assert not health.trusted  # prove_first = 2 in a row
    health.task_ended(ended(final=True))
    assert health.trusted and said[-1].message == (
        "push final frames arriving again; tracking by push"
    )
    assert [m.by for m in said] == ["push", "polling", "push"]
    assert feed.pokes >= 3  # every waiter re-plans at each change


def test_a_flapping_socket_needs_ever_longer_proof() -> None:
    health, feed, said = health_with()
    feed.set(FeedState.CONNECTED)
    proofs = []
    for _ in range(7):
        for _ in range(3):
            health.task_ended(ended(final=False))
        assert not health.trusted
        proofs.append(health.prove)
        while not health.trusted:
            health.task_ended(ended(final=True))
    assert proofs == [2, 4, 8, 16, 32, 32, 32]
    assert len(said) == 1 + 2 * 7


def test_typical_final_gap_is_learned_from_frames_that_came() -> None:
    health, feed, _said = health_with()
    feed.set(FeedState.CONNECTED)
    assert health.typical_final_gap is None
    for gap in [0.1] * 50 + [9.0] * 10:
        health.task_ended(ended(final=True, gap=gap))
    assert health.typical_final_gap == 9.0  # the 90th percentile of the last 64
    for _ in range(64):
        health.task_ended(ended(final=True, gap=0.3))
    assert health.typical_final_gap == 0.3


def test_typical_duration_needs_five_tasks() -> None:
    health, _feed, _said = health_with()
    for age in (10.0, 11.0, 12.0, 13.0):
        health.task_ended(None, age)
    assert health.typical_duration is None
    health.task_ended(None, 30.0)
    assert health.typical_duration == 30.0


def test_without_a_feed_polling_is_said_once() -> None:
    said: list[TrackingMode] = []
    health = PushHealth(None, None, off_reason="push turned off", on_change=said.append)
    health.announce_off()
    health.announce_off()
    assert [m.message for m in said] == ["tracking by polling (push turned off)"]
    assert not health.push_usable


# -- frames ------------------------------------------------------------------------------------


def frame(kind: object, token: object = "tok") -> bytes:
    return orjson.dumps(
        {"type": kind, "id": "1", "tasktoken": token, "message": "", "result": True}
    )


@pytest.fixture
def feed() -> Iterator[TaskFeed]:
    yield TaskFeed(None, "ws://127.0.0.1:9/")  # type: ignore[arg-type]


def test_frames_garbage_duplicates_and_foreign_tokens(feed: TaskFeed) -> None:
    watch = feed._watches["tok"] = Watch("tok")
    junk = [b"not json", b"[]", b"5", b'{"type": 5, "tasktoken": "tok"}', b"{}"]
    junk += [frame("task_start", token=None), frame("task_postprocess_end", "other")]
    for data in junk:
        feed._on_frame(data)
    assert watch.frames == 0 and not watch.final and not watch.event.is_set()
    feed._on_frame(frame("task_start"))
    feed._on_frame(frame("task_output"))
    feed._on_frame(frame("task_end"))  # not final: the task may still be post-processing
    assert not watch.final and not watch.event.is_set() and len(watch.gaps) == 2
    feed._on_frame(frame("task_postprocess_end"))
    assert watch.final and watch.event.is_set() and watch.final_gap is not None
    watch.event.clear()
    feed._on_frame(frame("task_postprocess_end"))  # a duplicate wakes nobody
    feed._on_frame(frame("task_output"))  # a late, out-of-order frame changes nothing
    assert watch.final and not watch.event.is_set()


@pytest.mark.parametrize(
    "kind", ["task_postprocess_end", "task_cancel", "task_error", "task_error_full"]
)
def test_final_frame_types(feed: TaskFeed, kind: str) -> None:
    watch = feed._watches["tok"] = Watch("tok")
    feed._on_frame(frame(kind))
    assert watch.final and watch.final_gap is None  # the first frame: no gap before it
