"""The per-loop limiter of concurrent operations (``max_in_flight``) of the LangChain
adapters: a slot per operation, FIFO waiters, nothing lost on cancellation."""

from __future__ import annotations

import asyncio

import pytest

from llmemo.adapters.langchain import _Limiter


async def test_at_most_limit_holders_at_once_and_waiters_in_order() -> None:
    limiter = _Limiter(2)
    holding = 0
    most = 0
    order: list[int] = []

    async def worker(n: int) -> None:
        nonlocal holding, most
        async with limiter:
            holding += 1
            most = max(most, holding)
            order.append(n)
            await asyncio.sleep(0.001)
            holding -= 1

    await asyncio.gather(*(worker(n) for n in range(10)))
    assert most == 2
    assert order == list(range(10))  # first come, first served
    assert limiter.try_acquire() and limiter.try_acquire() and not limiter.try_acquire()


async def test_a_cancelled_waiter_gives_its_slot_on() -> None:
    limiter = _Limiter(1)
    assert limiter.try_acquire()
    first = asyncio.create_task(limiter.acquire())
    second = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    limiter.release()  # the slot is handed to `first` ...
    first.cancel()  # ... which is cancelled before it runs: `second` must get it
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, timeout=1)
    assert not limiter.try_acquire()  # `second` holds the only slot
    limiter.release()
    assert limiter.try_acquire()


async def test_a_waiter_cancelled_while_queued_leaves_no_trace() -> None:
    limiter = _Limiter(1)
    assert limiter.try_acquire()
    queued = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    limiter.release()
    assert limiter.try_acquire()  # the slot came back; no dead waiter kept it


async def test_a_cancelled_waiter_dropped_by_a_release_still_raises_cancelled() -> None:
    limiter = _Limiter(1)
    assert limiter.try_acquire()
    queued = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    queued.cancel()  # its future is cancelled now; the task has not run yet ...
    limiter.release()  # ... and this release drops the cancelled waiter, freeing the slot
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert limiter.try_acquire()
