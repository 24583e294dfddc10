"""Whether push can be trusted: the run's tracking mode, decided in one place and announced
once per change.

The run tracks completion by push while the socket is connected and its final frames
arrive; otherwise by polling. Two things take push away:

* the connection: a refused or failing socket (:class:`~batch_runner.wiro.feed.FeedState`
  ``UNAVAILABLE``), "push unavailable (HTTP 404 from the socket URL); tracking by polling".
  The feed retries with backoff; when it connects again, "push reconnected". A working
  connection that drops and comes straight back is not a change worth a line.
* the frames: a socket that connects but lets :attr:`PushPolicy.unreliable_after` tasks in
  a row end without their final frame (each one caught by the watchdog instead) is not
  trusted; polling takes over until ``prove`` tasks in a row bring theirs again. ``prove``
  starts at :attr:`PushPolicy.prove_first` and doubles every time trust is lost again, so
  a socket that delivers only some final frames cannot fill the log.

Only tasks whose end happened while they were subscribed on a live connection count (a
status request after the subscription saw them running): a task found finished at its
first look, or one whose subscription crossed a reconnect, says nothing about the socket.

:class:`PushPolicy` also holds the per-task watchdog's rule (:meth:`PushPolicy.quiet`),
fed with what is normal in this run: the gaps before final frames that did arrive.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError
from ..wiro.feed import FeedState, TaskFeed, Watch

#: How many final-frame gaps of this run the watchdog learns from (the newest).
TYPICAL_WINDOW = 64


@dataclass(frozen=True)
class PushPolicy:
    """How far push is trusted, and when a silent task is looked at anyway.

    The watchdog: a subscribed task that has shown no sign of life (a frame, or its
    subscription) for ``quiet`` seconds gets a ``/Task/Detail``, where ::

        quiet = min(quiet_cap, max(quiet_min,
                                   gap_factor * the largest of its last 4 frame gaps,
                                   typical_factor * this run's typical final-frame gap))

    (the typical gap: the 90th percentile of the gaps before the last 64 final frames that
    did arrive). While it stays silent after such a check, the next ones follow
    ``max(quiet, PollSchedule.interval(age))``. Frames that keep coming without an end (a
    final frame under another name, with progress chatter) cannot hide a task for long
    either: it is looked at when :meth:`ceiling` has passed since the last look, which
    grows with the task's age, so a healthy long task costs only a few more requests. A
    final frame whose ``/Task/Detail`` does not show the end yet is looked at again after
    ``settle_first``, doubling, at most ``quiet_min`` apart. ``reconnect_base`` and
    ``reconnect_cap`` shape the socket's backoff.
    """

    quiet_min: float = 5.0
    gap_factor: float = 3.0
    typical_factor: float = 1.5
    quiet_cap: float = 60.0
    ceiling_min: float = 120.0
    overdue_factor: float = 2.0
    settle_first: float = 0.5
    unreliable_after: int = 3
    prove_first: int = 2
    prove_max: int = 32
    reconnect_base: float = 1.0
    reconnect_cap: float = 60.0

    def __post_init__(self) -> None:
        for name in ("quiet_min", "gap_factor", "typical_factor", "settle_first"):
            value = getattr(self, name)
            if not value > 0:
                raise UsageError(f"PushPolicy.{name} must be positive, not {value!r}.")
        if not self.ceiling_min > 0 or not self.overdue_factor > 0:
            raise UsageError("PushPolicy.ceiling_min and overdue_factor must be positive.")
        if not self.quiet_cap >= self.quiet_min:
            raise UsageError("PushPolicy.quiet_cap must be at least quiet_min.")
        if not 0 < self.reconnect_base <= self.reconnect_cap:
            raise UsageError("PushPolicy needs 0 < reconnect_base <= reconnect_cap.")
        for name in ("unreliable_after", "prove_first", "prove_max"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise UsageError(f"PushPolicy.{name} must be a whole number of at least 1.")

    def quiet(self, gaps: Iterable[float], typical_final_gap: float | None = None) -> float:
        """Seconds of silence after which a subscribed task is looked at (see the class)."""
        largest = max(gaps, default=0.0)
        typical = typical_final_gap or 0.0
        base = max(self.quiet_min, self.gap_factor * largest, self.typical_factor * typical)
        return min(self.quiet_cap, base)

    def ceiling(self, age: float, typical_duration: float | None = None) -> float:
        """Longest time a subscribed task of ``age`` seconds (at the last look) goes without
        a look, frames or not: ``max(ceiling_min, age, 2 x the run's typical duration)``, so
        the looks at a task whose end never shows come at about 120, 240, 480 s..."""
        typical = self.overdue_factor * (typical_duration or 0.0)
        return max(self.ceiling_min, age, typical)

    def settle_delay(self, checks_after_final: int) -> float:
        """Seconds before looking again at a task whose final frame came but whose record
        does not show the end yet (after ``checks_after_final`` such looks)."""
        return min(self.quiet_min, self.settle_first * 2.0 ** max(0, checks_after_final - 1))


@dataclass(frozen=True)
class TrackingMode:
    """What completion is tracked by (``push`` or ``polling``), why, and since when."""

    by: str
    reason: str
    message: str
    level: str = "info"
    since: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"by": self.by, "reason": self.reason, "message": self.message,
                "since": round(self.since, 3)}  # fmt: skip


class PushHealth:
    """The run's tracking mode from the feed's connection state and the tasks' final frames.

    ``on_change(mode)`` is called once per change of :attr:`mode` (push or polling). With no
    feed, :meth:`announce_off` says once why the run polls (``off_reason``).
    """

    def __init__(
        self,
        policy: PushPolicy | None = None,
        feed: TaskFeed | None = None,
        *,
        off_reason: str = "",
        on_change: Callable[[TrackingMode], None] | None = None,
    ) -> None:
        self.policy = policy or PushPolicy()
        self.feed = feed
        self.off_reason = off_reason
        self.on_change = on_change
        self.mode: TrackingMode | None = None
        #: False while the socket's final frames are not trusted (polling takes over)
        self.trusted = True
        self.misses_in_row = 0
        self.hits_in_row = 0
        self.prove = self.policy.prove_first
        self.times_distrusted = 0
        self.final_frames = 0
        self.missed_finals = 0
        self._gaps: deque[float] = deque(maxlen=TYPICAL_WINDOW)
        self.typical_final_gap: float | None = None
        self._durations: deque[float] = deque(maxlen=TYPICAL_WINDOW)
        #: the 90th percentile of how long the last 64 finished tasks took (5 at least)
        self.typical_duration: float | None = None
        self._connected_before = False
        if feed is not None:
            feed.on_state = self._feed_changed

    @property
    def push_usable(self) -> bool:
        """True while a waiter should rely on push (watchdog) rather than poll."""
        return self.feed is not None and self.feed.connected and self.trusted

    def announce_off(self) -> None:
        """Say once that this run polls, and why (no feed)."""
        if self.feed is None and self.mode is None:
            why = self.off_reason or "no socket"
            self._announce("polling", why, f"tracking by polling ({why})")

    def _announce(self, by: str, reason: str, message: str, level: str = "info") -> None:
        if self.mode is not None and self.mode.by == by:
            return
        self.mode = TrackingMode(by, reason, message, level)
        if self.on_change is not None:
            self.on_change(self.mode)

    def _feed_changed(self, state: FeedState, reason: str) -> None:
        feed = self.feed
        if state is FeedState.CONNECTED:
            again = self._connected_before or self.mode is not None
            self._connected_before = True
            if self.trusted:
                word = "reconnected" if again else "connected"
                self._announce("push", "socket connected", f"push {word}; tracking by push")
        elif state is FeedState.UNAVAILABLE:
            message = f"push unavailable ({reason}); tracking by polling"
            self._announce("polling", reason, message, "warning")
        if feed is not None:
            feed.poke_all()

    def task_ended(self, watch: Watch | None, age: float | None = None) -> None:
        """A task was seen finished by ``/Task/Detail`` at ``age`` seconds after its
        submission: did its final frame come?"""
        if age is not None:
            self._durations.append(age)
            if len(self._durations) >= 5:
                self.typical_duration = _p90(self._durations)
        if watch is None:
            return
        if watch.final:
            self.final_frames += 1
            if watch.final_gap is not None:
                self._learn(watch.final_gap)
            self.misses_in_row = 0
            if not self.trusted:
                self.hits_in_row += 1
                if self.hits_in_row >= self.prove:
                    self.trusted, self.hits_in_row = True, 0
                    if self.feed is not None and self.feed.connected:
                        message = "push final frames arriving again; tracking by push"
                        self._announce("push", "final frames arriving", message)
                    self._poke()
            return
        if not watch.confirmed:
            return  # it ended before or across a (re)subscription: not the socket's fault
        self.missed_finals += 1
        self.hits_in_row = 0
        self.misses_in_row += 1
        if self.trusted and self.misses_in_row >= self.policy.unreliable_after:
            self.trusted = False
            if self.times_distrusted:
                self.prove = min(self.policy.prove_max, self.prove * 2)
            self.times_distrusted += 1
            count = self.misses_in_row
            message = (
                f"push delivered no final frame for {count} tasks in a row; tracking by polling"
            )
            self._announce("polling", "no final frames", message, "warning")
            self._poke()

    def _learn(self, gap: float) -> None:
        self._gaps.append(gap)
        self.typical_final_gap = _p90(self._gaps)

    def _poke(self) -> None:
        if self.feed is not None:
            self.feed.poke_all()


def _p90(values: Iterable[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
