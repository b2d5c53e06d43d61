"""The guard's circuit breakers: one per scope (e.g. per Redis Cluster node)."""

from __future__ import annotations

import asyncio
import time

import pytest

from llmemo.caches.base import CacheStats
from llmemo.errors import BackendUnavailableError
from llmemo.policy import FailurePolicy, Guard


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def failing() -> str:
    raise BackendUnavailableError("down")


async def working() -> str:
    return "ok"


async def test_a_failing_scope_opens_only_its_own_circuit() -> None:
    clock = Clock()
    stats = CacheStats()
    guard = Guard(FailurePolicy(breaker_threshold=3, breaker_reset=1.0), "store", stats, clock)
    for _ in range(3):
        assert await guard.call("lookup", failing, "miss", "node-a") == "miss"
    assert guard.breaker_for("node-a").state == "open"
    assert stats.breaker_opens == 1
    # Another node, and the unscoped breaker, still serve.
    assert await guard.call("lookup", working, "miss", "node-b") == "ok"
    assert await guard.call("lookup", working, "miss") == "ok"
    # node-a is skipped without being called until its reset, then probed and closed.
    assert await guard.call("lookup", working, "miss", "node-a") == "miss"
    assert stats.breaker_skips == 1
    clock.now += 1.0
    assert await guard.call("lookup", working, "miss", "node-a") == "ok"
    assert guard.breaker_for("node-a").state == "closed"
    assert stats.breaker_closes == 1


# Budgets: one timer per loop (llmemo.policy._Deadlines) instead of asyncio.timeout per call.


def budget_guard(seconds: float = 0.05) -> Guard:
    return Guard(FailurePolicy(operation_timeout=seconds), "store", CacheStats())


async def test_a_call_over_budget_is_a_counted_timeout_and_the_task_lives_on() -> None:
    guard = budget_guard()

    async def slow() -> str:
        await asyncio.sleep(10)
        return "late"

    started = time.monotonic()
    assert await guard.call("lookup", slow, "fallback") == "fallback"
    assert 0.04 <= time.monotonic() - started < 1.0
    assert guard.stats.errors_timeout == 1
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0  # our cancellation was withdrawn
    await asyncio.sleep(0)  # and no stray cancellation is pending either
    assert await guard.call("lookup", working, "fallback") == "ok"


async def test_calls_within_budget_leave_nothing_behind() -> None:
    guard = budget_guard(0.02)
    for _ in range(100):
        assert await guard.call("lookup", working, "fallback") == "ok"
    await asyncio.sleep(0.05)  # the loop's timer fires and finds nothing to cancel
    assert guard.stats.errors_timeout == 0


async def test_concurrent_calls_each_get_their_own_budget() -> None:
    guard = budget_guard(0.05)

    async def sleeps(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "ok"

    results = await asyncio.gather(
        guard.call("lookup", lambda: sleeps(0.001), "fallback"),
        guard.call("lookup", lambda: sleeps(10), "fallback"),
        guard.call("lookup", lambda: sleeps(0.01), "fallback"),
    )
    assert results == ["ok", "fallback", "ok"]
    assert guard.stats.errors_timeout == 1


async def test_a_cancellation_from_outside_is_not_turned_into_a_miss() -> None:
    guard = budget_guard(5.0)

    async def slow() -> str:
        await asyncio.sleep(10)
        return "late"

    task = asyncio.create_task(guard.call("lookup", slow, "fallback"))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert guard.stats.errors_timeout == 0


def test_loop_free_calls_have_no_timer() -> None:
    # llmemo's sync faces drive coroutines without a loop: the socket timeouts bound them.
    guard = budget_guard()
    coroutine = guard.call("lookup", working, "fallback")
    with pytest.raises(StopIteration) as done:
        coroutine.send(None)
    assert done.value.value == "ok"


def test_loops_closed_by_asyncio_run_are_not_kept_alive() -> None:
    # The per-loop deadlines must not hold their loop: apps call asyncio.run repeatedly.
    import gc
    import weakref

    guard = budget_guard(0.05)
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def one_call() -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        assert await guard.call("lookup", working, "fallback") == "ok"

    for _ in range(3):
        asyncio.run(one_call())  # the loop closes with a timer still pending
    gc.collect()
    assert [ref() for ref in loops] == [None, None, None]


# Item 14 of issue 15: the breaker logs once per state change; only the probe closes it.


async def test_calls_in_flight_when_the_circuit_opened_neither_close_it_nor_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    stats = CacheStats()
    guard = Guard(FailurePolicy(breaker_threshold=2, breaker_reset=1.0), "store", stats, clock)
    release = asyncio.Event()

    async def slow_success() -> str:
        await release.wait()
        return "ok"

    # 50 calls enter while the circuit is closed and stay in flight ...
    in_flight = [
        asyncio.ensure_future(guard.call("lookup", slow_success, "miss")) for _ in range(50)
    ]
    await asyncio.sleep(0)
    # ... then two failures open it.
    for _ in range(2):
        assert await guard.call("lookup", failing, "miss") == "miss"
    assert guard.breaker.state == "open"
    caplog.clear()
    with caplog.at_level("WARNING", logger="llmemo"):
        release.set()
        assert await asyncio.gather(*in_flight) == ["ok"] * 50
        # The late successes did not close it: calls are still skipped.
        assert guard.breaker.state == "open"
        assert await guard.call("lookup", working, "miss") == "miss"
        assert stats.breaker_closes == 0
        # The probe, after the reset time, closes it: one line, once.
        clock.now += 1.0
        assert await guard.call("lookup", working, "miss") == "ok"
        assert guard.breaker.state == "closed"
        assert await guard.call("lookup", working, "miss") == "ok"
    closed = [r for r in caplog.records if "circuit closed" in r.getMessage()]
    assert len(closed) == 1
    assert stats.breaker_closes == 1


async def test_a_call_in_flight_failing_while_the_probe_runs_does_not_reopen_it() -> None:
    clock = Clock()
    stats = CacheStats()
    guard = Guard(FailurePolicy(breaker_threshold=2, breaker_reset=1.0), "store", stats, clock)
    release = asyncio.Event()

    async def slow_failure() -> str:
        await release.wait()
        raise BackendUnavailableError("down")

    old = asyncio.ensure_future(guard.call("lookup", slow_failure, "miss"))
    await asyncio.sleep(0)
    for _ in range(2):
        await guard.call("lookup", failing, "miss")
    clock.now += 1.0
    probe_gate = asyncio.Event()

    async def probe() -> str:
        await probe_gate.wait()
        return "ok"

    probing = asyncio.ensure_future(guard.call("lookup", probe, "miss"))
    await asyncio.sleep(0)
    assert guard.breaker.state == "half-open"
    release.set()
    assert await old == "miss"  # an old call's failure is not the probe's
    probe_gate.set()
    assert await probing == "ok"
    assert guard.breaker.state == "closed"
    assert stats.breaker_opens == 1


# Issue 15 item 8: one-time setup runs before the budget, shared by concurrent callers.


async def test_setup_runs_outside_the_budget_once_for_concurrent_callers() -> None:
    from llmemo.caches.base import OneTimeSetup

    runs = 0

    async def slow_setup() -> None:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.3)  # three budgets: must not count against the call

    setup = OneTimeSetup(slow_setup)
    guard = Guard(FailurePolicy(operation_timeout=0.1), "store", CacheStats())
    results = await asyncio.gather(
        *(guard.call("lookup", working, "miss", setup=setup) for _ in range(4))
    )
    assert results == ["ok"] * 4
    assert runs == 1
    assert setup.done
    assert guard.stats.errors == 0


async def test_a_failed_setup_is_the_calls_failure_and_is_tried_again() -> None:
    from llmemo.caches.base import OneTimeSetup

    attempts = 0

    async def flaky_setup() -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise BackendUnavailableError("refused")

    setup = OneTimeSetup(flaky_setup)
    stats = CacheStats()
    guard = Guard(FailurePolicy(), "store", stats)
    assert await guard.call("lookup", working, "miss", setup=setup) == "miss"
    assert stats.errors_unavailable == 1
    assert not setup.done
    assert await guard.call("lookup", working, "miss", setup=setup) == "ok"
    assert attempts == 2 and setup.done


async def test_a_setup_over_its_own_bound_is_a_timeout() -> None:
    from llmemo.caches.base import OneTimeSetup

    async def hung_setup() -> None:
        await asyncio.sleep(10)

    setup = OneTimeSetup(hung_setup)
    stats = CacheStats()
    guard = Guard(FailurePolicy(setup_timeout=0.05), "store", stats)
    assert await guard.call("lookup", working, "miss", setup=setup) == "miss"
    assert stats.errors_timeout == 1


async def test_writes_have_their_own_budget_and_breaker() -> None:
    from llmemo.caches.base import CacheRuntime

    runtime = CacheRuntime(FailurePolicy(operation_timeout=0.05, write_timeout=1.0))

    async def slow_write() -> str:
        await asyncio.sleep(0.2)  # over the read budget, within the write budget
        return "stored"

    assert await runtime.write_guard.call("write", slow_write, "dropped") == "stored"
    for _ in range(5):
        await runtime.write_guard.call("write", failing, "dropped")
    assert runtime.write_guard.breaker.state == "open"
    assert runtime.store_guard.breaker.state == "closed"
    assert await runtime.store_guard.call("lookup", working, "miss") == "ok"
    snapshot = runtime.snapshot()
    assert snapshot["write_breaker"] == "open" and snapshot["store_breaker"] == "closed"
