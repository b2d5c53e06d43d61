"""Redis faults under a LangChain model: the model's answer always comes back, in time.

Each scenario runs on a private server (or a dead port, or behind a black-holing proxy;
see ``tests/fault_injection.py``) and goes: healthy → fault → recovery. Through a real
LangChain chat model with the cache in ``cache=``, on the async face (``ainvoke`` on one
event loop for the whole scenario) and the sync face (``invoke`` from a plain thread):

* every call returns the model's answer and no exception escapes;
* every lookup and write returns within the budget plus slack (a semantic lookup makes
  two store calls, the exact probe and the vector query; the sync face of ``RedisCache``
  is bounded by the socket timeout, which its one retry makes twice the budget);
* the breaker opens during the fault, and closes on the first call after recovery;
* hits resume after recovery; the counters add up.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from langchain_core.outputs import Generation

import llmemo
from echo_model import EchoChatModel, answer_to, invoker
from fault_injection import (
    BlackholedConnection,
    DeadPort,
    Fault,
    KilledServer,
    PausedServer,
    SleepingServer,
)
from llmemo import FailurePolicy
from llmemo.errors import BackendTimeoutError, BackendUnavailableError
from llmemo.langchain import RedisCache, RedisSemanticCache

from fakes import ConceptEmbeddings

pytestmark = pytest.mark.redis

BUDGET = FailurePolicy().operation_timeout or 0.0  # the default, 0.1 s
# What a call may take beyond its budget here: these tests assert that every call is
# bounded (a stall would last a socket, write or setup timeout: 2 s or more), not how
# precisely the budget holds (benchmarks/faults.py measures that); a loaded CI machine
# has starved one call of a dead-port scenario for ~0.4 s beyond its budget, and one
# write for ~1.0 s at a load average of 6 on 2 cores. 1.5 s still tells any of those
# stalls (>= 2 s) from a slow but bounded call.
SLACK = 1.5
RESET = 0.3  # breaker_reset for these tests: short, so that recovery is quick
# The scenarios give writes the read budget: the default write budget (2 s) would outlast
# the timed outages; that writes have their own breaker is checked below all the same.
SCENARIO_POLICY = FailurePolicy(breaker_reset=RESET, write_timeout=BUDGET)
THRESHOLD = FailurePolicy().breaker_threshold
CALLS_DURING_FAULT = 8  # > THRESHOLD / 2 + 1 lookups and writes: the breaker must open
FACES = ["async", "sync"]
FAILURE_COUNTERS = {"errors_timeout", "errors_unavailable", "errors_backend"}


# Set while a timed call runs: the sync face of a cache without a sync core calls its
# own async method, which must not be recorded a second time.
_timing = contextvars.ContextVar("_timing", default=False)


class _Timed:
    """Records how long each lookup and write of a LangChain cache took (both faces)."""

    timings: list[tuple[str, float]]

    def _record(self, operation: str, started: float) -> None:
        self.timings.append((operation, time.perf_counter() - started))

    @contextlib.contextmanager
    def _timed(self, operation: str) -> Iterator[None]:
        if _timing.get():
            yield
            return
        token = _timing.set(True)
        started = time.perf_counter()
        try:
            yield
        finally:
            self._record(operation, started)
            _timing.reset(token)

    def lookup(self, prompt: str, llm_string: str) -> Any:
        with self._timed("lookup"):
            return super().lookup(prompt, llm_string)  # type: ignore[misc]

    async def alookup(self, prompt: str, llm_string: str) -> Any:
        with self._timed("lookup"):
            return await super().alookup(prompt, llm_string)  # type: ignore[misc]

    def update(self, prompt: str, llm_string: str, return_val: Any) -> None:
        with self._timed("write"):
            super().update(prompt, llm_string, return_val)  # type: ignore[misc]

    async def aupdate(self, prompt: str, llm_string: str, return_val: Any) -> None:
        with self._timed("write"):
            await super().aupdate(prompt, llm_string, return_val)  # type: ignore[misc]


class TimedRedisCache(_Timed, RedisCache):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timings = []


class TimedRedisSemanticCache(_Timed, RedisSemanticCache):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timings = []


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    """The counters that changed, and by how much."""
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


def warning_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "llmemo"]


def run_scenario(
    fault: Fault,
    cache: TimedRedisCache | TimedRedisSemanticCache,
    face: str,
    caplog: pytest.LogCaptureFixture,
    *,
    store_calls_per_lookup: int = 1,
) -> None:
    """healthy → fault → recovery through a LangChain model; asserts as it goes."""
    caplog.set_level(logging.WARNING, logger="llmemo")
    chat = EchoChatModel(cache=cache)
    stats = cache.stats
    lookup_bound = store_calls_per_lookup * BUDGET + SLACK
    with invoker(face, chat) as invoke:
        # 1. Healthy (unless the server was never started): a miss, then a hit.
        if fault.healthy_first:
            assert invoke("before") == answer_to("before")
            assert invoke("before") == answer_to("before")
            assert chat.calls == 1
            assert stats.exact_hits == 1
            assert stats.errors == 0

        # 2. The fault: every call still answers, each cache operation is bounded.
        fault.begin()
        before, calls, cache.timings = stats.as_dict(), chat.calls, []
        for i in range(CALLS_DURING_FAULT):
            assert invoke(f"during {i}") == answer_to(f"during {i}")
        assert fault.in_force, f"the {fault.name} outage ended before the fault phase did"
        assert chat.calls - calls == CALLS_DURING_FAULT
        changed = delta(stats.as_dict(), before)
        lookups = [t for op, t in cache.timings if op == "lookup"]
        writes = [t for op, t in cache.timings if op == "write"]
        assert len(lookups) == len(writes) == CALLS_DURING_FAULT
        assert max(lookups) <= lookup_bound, lookups
        assert max(writes) <= BUDGET + SLACK, writes
        # The fault's own kind of failure. (On a starved machine a refused connection can
        # also overrun its budget first: then some land in errors_timeout.)
        kinds = {k: n for k, n in changed.items() if k in FAILURE_COUNTERS}
        assert kinds.get(fault.counter, 0) >= 1, changed
        assert "errors_backend" not in kinds, changed
        if fault.counter == "errors_timeout":
            assert kinds.keys() == {"errors_timeout"}, changed
        failed = sum(kinds.values())
        skipped = changed.get("breaker_skips", 0)
        assert failed >= THRESHOLD
        assert changed.get("breaker_opens", 0) >= 1
        assert skipped >= 1  # the open circuit skipped calls (at no cost)
        # Each lookup made store_calls_per_lookup store calls, each write one: every one
        # of them either failed or was skipped.
        assert failed + skipped == CALLS_DURING_FAULT * (store_calls_per_lookup + 1), str(changed)
        assert changed["misses"] == CALLS_DURING_FAULT
        assert changed["writes_dropped"] == CALLS_DURING_FAULT
        assert "writes" not in changed
        assert "exact_hits" not in changed
        assert "semantic_hits" not in changed
        # Warnings: rate limited to one per kind of failure and guard (reads, writes),
        # plus one per breaker: reads and writes each have their own.
        messages = warning_messages(caplog)
        failed_lines = sum("failed" in m for m in messages)
        assert len(kinds) <= failed_lines <= 2 * len(kinds), messages
        assert any("store lookup failed" in m for m in messages), messages
        assert any("store (writes) write failed" in m for m in messages), messages
        assert sum("circuit opened" in m for m in messages) == 2, messages
        snapshot = cache.runtime.snapshot()
        open_breakers = sum(
            snapshot[name] != "closed" for name in ("store_breaker", "write_breaker")
        )
        assert open_breakers == 2, snapshot

        # 3. Recovery: after breaker_reset, the first call probes, closes the circuit,
        #    and its answer is stored; the next identical call is a hit.
        fault.end()
        time.sleep(RESET + 0.1)
        before, calls = stats.as_dict(), chat.calls
        assert invoke("after") == answer_to("after")
        assert invoke("after") == answer_to("after")
        assert chat.calls - calls == 1
        if fault.keeps_data and fault.healthy_first:
            assert invoke("before") == answer_to("before")
            assert chat.calls - calls == 1  # served from the entry written before the fault
        changed = delta(stats.as_dict(), before)
        assert changed["breaker_closes"] == 2  # the read probe and the write probe
        assert changed["writes"] == 1
        assert changed["exact_hits"] == (2 if fault.keeps_data and fault.healthy_first else 1)
        assert not FAILURE_COUNTERS & changed.keys(), changed
        assert any("circuit closed" in m for m in warning_messages(caplog))


FAULT_KINDS = [DeadPort, KilledServer, PausedServer, SleepingServer, BlackholedConnection]


def make_fault(kind: type[Fault], face: str) -> Fault:
    """A fault; outages that end by themselves last long enough for the fault phase (the
    sync face waits twice the budget per failure: see the module docstring)."""
    if issubclass(kind, (PausedServer, SleepingServer)):
        return kind(seconds=1.2 if face == "async" else 2.0)
    return kind()


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("fault_kind", FAULT_KINDS, ids=lambda kind: kind.name)
def test_redis_cache_survives_fault(
    fault_kind: type[Fault], face: str, unique_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    with make_fault(fault_kind, face) as fault:
        cache = TimedRedisCache(fault.url, prefix=unique_prefix, policy=SCENARIO_POLICY)
        try:
            run_scenario(fault, cache, face, caplog)
        finally:
            cache.close()


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("fault_kind", [DeadPort, PausedServer], ids=lambda kind: kind.name)
def test_redis_semantic_cache_survives_fault(
    fault_kind: type[Fault], face: str, unique_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    # vector_backend="auto": the backend probe itself runs under the policy too.
    with make_fault(fault_kind, face) as fault:
        cache = TimedRedisSemanticCache(
            ConceptEmbeddings(),
            fault.url,
            prefix=unique_prefix,
            name=unique_prefix,
            policy=SCENARIO_POLICY,
        )
        run_scenario(fault, cache, face, caplog, store_calls_per_lookup=1)
        assert cache.vector_backend == "vectorset"  # resolved once the server was back


async def test_a_burst_on_a_hung_server_pays_the_budget_once(unique_prefix: str) -> None:
    # Ten times more concurrent lookups than the pool has connections (64, admitted 64 at
    # a time): only the first wave waits for its budget; the circuit is open by the time
    # the others get a connection, so the burst does not queue wave after wave.
    burst = 640
    with PausedServer(seconds=1.5) as fault:
        cache = TimedRedisCache(fault.url, prefix=unique_prefix)
        assert await cache.alookup("warm", "llm") is None
        fault.begin()
        cache.timings = []
        started = time.perf_counter()
        found = await asyncio.gather(*(cache.alookup(f"p{i}", "llm") for i in range(burst)))
        elapsed = time.perf_counter() - started
        assert fault.in_force
        assert found == [None] * burst
        assert cache.stats.errors_timeout + cache.stats.breaker_skips == burst
        assert THRESHOLD <= cache.stats.errors_timeout <= 2 * 64
        # Ten waves of the budget would take 1 s; one wave plus the CPU time of 640
        # lookups takes ~0.2 s (0.35 s on a busy machine).
        assert elapsed <= 0.6
        assert max(t for _, t in cache.timings) <= 0.6


# ---------------------------------------------------------------------------------------
# errors="raise": the typed error reaches the caller
# ---------------------------------------------------------------------------------------


# A refused connection is an unavailable server whatever the budget; a generous budget
# keeps a starved machine from turning it into a timeout first.
RAISE = FailurePolicy(errors="raise", operation_timeout=2.0)


async def test_errors_raise_on_a_dead_port_async(unique_prefix: str) -> None:
    with DeadPort() as fault:
        cache = RedisCache(fault.url, prefix=unique_prefix, policy=RAISE)
        chat = EchoChatModel(cache=cache)
        with pytest.raises(BackendUnavailableError) as raised:
            await cache.alookup("p", "llm")
        assert isinstance(raised.value.__cause__, redis.ConnectionError)
        with pytest.raises(BackendUnavailableError):
            await cache.aupdate("p", "llm", [Generation(text="answer")])
        with pytest.raises(BackendUnavailableError):
            await chat.ainvoke("hello")
        assert chat.calls == 0
        for _ in range(THRESHOLD):
            with pytest.raises(BackendUnavailableError):
                await cache.alookup("p", "llm")
        # The circuit is open now: the error comes at once, without touching the network.
        with pytest.raises(BackendUnavailableError, match="circuit is open"):
            await cache.alookup("p", "llm")
        assert cache.stats.breaker_opens == 1
        assert cache.stats.breaker_skips >= 1


def test_errors_raise_on_a_dead_port_sync(unique_prefix: str) -> None:
    with DeadPort() as fault:
        cache = RedisCache(fault.url, prefix=unique_prefix, policy=RAISE)
        try:
            chat = EchoChatModel(cache=cache)
            with pytest.raises(BackendUnavailableError) as raised:
                cache.lookup("p", "llm")
            assert isinstance(raised.value.__cause__, redis.ConnectionError)
            with pytest.raises(BackendUnavailableError):
                chat.invoke("hello")
            assert chat.calls == 0
            assert cache.stats.errors_unavailable == 2
        finally:
            cache.close()


@pytest.mark.parametrize("face", FACES)
def test_errors_raise_on_a_paused_server_is_a_timeout(face: str, unique_prefix: str) -> None:
    with PausedServer(seconds=0.6) as fault:
        cache = RedisCache(fault.url, prefix=unique_prefix, errors="raise")
        chat = EchoChatModel(cache=cache)
        try:
            with invoker(face, chat) as invoke:
                assert invoke("warm") == answer_to("warm")
                fault.begin()
                started = time.perf_counter()
                with pytest.raises(BackendTimeoutError):
                    invoke("hello")
                assert time.perf_counter() - started <= BUDGET + SLACK
                fault.end()
            assert chat.calls == 1
            assert cache.stats.errors_timeout == 1
        finally:
            cache.close()


async def test_errors_raise_for_the_semantic_cache(unique_prefix: str) -> None:
    with DeadPort() as fault:
        cache = RedisSemanticCache(
            ConceptEmbeddings(), fault.url, prefix=unique_prefix, name=unique_prefix,
            vector_backend="vectorset", policy=RAISE,
        )  # fmt: skip
        with pytest.raises(BackendUnavailableError):
            await cache.alookup("What is the capital of France?", "llm")
        with pytest.raises(BackendUnavailableError):
            await EchoChatModel(cache=cache).ainvoke("What is the capital of France?")


# ---------------------------------------------------------------------------------------
# Bounds that do not depend on the client's own timeouts; cancellation
# ---------------------------------------------------------------------------------------


async def test_async_budget_holds_even_with_long_socket_timeouts(unique_prefix: str) -> None:
    with PausedServer(seconds=0.6) as fault:
        cache = RedisCache(
            fault.url,
            prefix=unique_prefix,
            client_kwargs={"socket_timeout": 10, "socket_connect_timeout": 10},
        )
        assert await cache.alookup("p", "llm") is None
        fault.begin()
        try:
            started = time.perf_counter()
            assert await cache.alookup("p", "llm") is None
            assert time.perf_counter() - started <= BUDGET + SLACK
            assert cache.stats.errors_timeout == 1
        finally:
            fault.end()


async def test_cancellation_is_never_swallowed(unique_prefix: str) -> None:
    with PausedServer(seconds=0.6) as fault:
        policy = FailurePolicy(operation_timeout=5.0)
        cache = RedisCache(fault.url, prefix=unique_prefix, policy=policy)
        assert await cache.alookup("p", "llm") is None
        fault.begin()
        try:
            task = asyncio.create_task(cache.alookup("p", "llm"))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # Not counted as a failure of the backend, and the breaker stays closed.
            assert cache.stats.errors == 0
            assert cache.runtime.store_guard.breaker.state == "closed"
        finally:
            fault.end()


async def test_options_bypass_costs_nothing_while_the_server_is_down(
    unique_prefix: str,
) -> None:
    with DeadPort() as fault:
        cache = RedisCache(fault.url, prefix=unique_prefix, errors="raise")
        async with llmemo.options(bypass_read=True, bypass_write=True):
            assert await cache.alookup("p", "llm") is None  # no I/O, so nothing raised
            assert await EchoChatModel(cache=cache).ainvoke("q") is not None
        assert cache.stats.errors == 0
        assert cache.stats.bypassed_reads == 2
        assert cache.stats.bypassed_writes == 1


async def test_a_repeated_prompt_costs_one_store_call_per_lookup_on_a_hung_server(
    unique_prefix: str,
) -> None:
    with PausedServer(seconds=1.0) as fault:
        # Keep the circuits closed; writes within the read budget (the outage is short).
        policy = FailurePolicy(breaker_threshold=100, write_timeout=BUDGET)
        cache = TimedRedisCache(fault.url, prefix=unique_prefix, policy=policy)
        chat = EchoChatModel(cache=cache)
        assert await chat.ainvoke("warm") is not None
        fault.begin()
        before = cache.stats.as_dict()
        for _ in range(3):
            assert (await chat.ainvoke("same")).content == answer_to("same")
        changed = delta(cache.stats.as_dict(), before)
        assert fault.in_force
        assert changed["misses"] == 3
        assert changed["errors_timeout"] == 6  # one lookup and one write per call
        assert max(t for op, t in cache.timings if op == "lookup") < 2 * BUDGET
