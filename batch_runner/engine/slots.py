"""The account's concurrency slots, as seen from this runner.

``SlotGate`` admits at most ``limit`` tasks in flight on the service. The limit starts at
``--concurrency``; code 96 means the service's own limit is lower, so the gate shrinks to
what is in flight now (never below 1) and grows back by one after a quiet period, probing
for freed capacity (several workers may share one account).
"""

from __future__ import annotations

import asyncio
import time


class SlotGate:
    """An adjustable semaphore for tasks in flight on the service."""

    def __init__(self, limit: int, *, regrow_after: float = 10.0) -> None:
        if limit < 1:
            raise ValueError(f"concurrency must be at least 1, not {limit}")
        self.configured = limit
        self.limit = limit
        self.in_flight = 0
        self.regrow_after = regrow_after
        self._last_shrink = 0.0
        self._changed = asyncio.Condition()
        self.shrinks = 0

    async def acquire(self) -> None:
        """Wait for a free slot and take it."""
        async with self._changed:
            await self._wait_for_room()
            self.in_flight += 1

    async def _wait_for_room(self) -> None:
        """Return (holding the condition's lock) once a slot is free under the limit."""
        while True:
            self._maybe_regrow()
            if self.in_flight < self.limit:
                return
            timeout = self.regrow_after if self.limit < self.configured else None
            try:
                await asyncio.wait_for(self._changed.wait(), timeout)
            except TimeoutError:
                continue

    async def requeue(self) -> None:
        """Give the caller's slot back and wait for one under the current limit.

        After code 96 the limit drops below what is in flight; a refused submission that
        kept its slot while it waited to try again would keep the old concurrency alive.
        Cancelled while waiting, the caller still holds a slot (its own release balances).
        """
        async with self._changed:
            self.in_flight = max(0, self.in_flight - 1)
            self._changed.notify_all()
            try:
                await self._wait_for_room()
            finally:
                self.in_flight += 1

    async def release(self) -> None:
        """Give a slot back (the task is terminal, or was never created)."""
        async with self._changed:
            self.in_flight = max(0, self.in_flight - 1)
            self._changed.notify_all()

    async def shrink(self) -> None:
        """The service said code 96: our limit is above the account's."""
        async with self._changed:
            # The slot of the refused submission is still counted in ``in_flight``.
            self.limit = max(1, min(self.limit, self.in_flight - 1))
            self._last_shrink = time.monotonic()
            self.shrinks += 1

    def _maybe_regrow(self) -> None:
        if (
            self.limit < self.configured
            and time.monotonic() - self._last_shrink >= self.regrow_after
        ):
            self.limit += 1
            self._last_shrink = time.monotonic()
