"""The guard's circuit breakers: one per scope (e.g. per Redis Cluster node)."""

from __future__ import annotations

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
