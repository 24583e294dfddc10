"""The slot gate: the runner's view of the account's concurrency limit."""

from __future__ import annotations

import asyncio

import pytest

from batch_runner.engine.slots import SlotGate


async def test_code_96_requeue_makes_the_lowered_limit_hold() -> None:
    """Refused submissions give their slots back and wait under the new limit, so what is
    in flight really drops to what the account allows."""
    gate = SlotGate(4, regrow_after=60)
    for _ in range(4):
        await gate.acquire()
    await gate.shrink()  # one refusal with 4 in flight: the account takes at most 3
    assert gate.limit == 3
    waiting = asyncio.create_task(gate.requeue())
    await asyncio.sleep(0.01)
    assert gate.in_flight == 3 and not waiting.done()  # 3 >= limit 3: it waits its turn
    await gate.release()  # a task elsewhere finished
    await asyncio.wait_for(waiting, 1)
    assert gate.in_flight == 3


async def test_a_cancelled_requeue_leaves_the_slot_with_its_caller() -> None:
    gate = SlotGate(2, regrow_after=60)
    await gate.acquire()
    await gate.acquire()
    await gate.shrink()
    waiting = asyncio.create_task(gate.requeue())
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert gate.in_flight == 2  # the caller's own release will balance it
    await gate.release()
    await gate.release()
    assert gate.in_flight == 0


async def test_the_limit_grows_back_after_a_quiet_period() -> None:
    gate = SlotGate(3, regrow_after=0.05)
    for _ in range(3):
        await gate.acquire()
    await gate.shrink()
    assert gate.limit == 2
    await gate.release()
    await gate.release()
    await asyncio.sleep(0.06)
    await gate.acquire()
    assert gate.limit == 3
