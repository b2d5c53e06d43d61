"""Single-flight: concurrent identical misses make one model call, through LangChain."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from fault_injection import BlackholedConnection
from llmemo.langchain import (
    InMemoryCache,
    InMemorySemanticCache,
    LangChainCache,
    RedisCache,
    RedisSemanticCache,
)

from fakes import ConceptEmbeddings


class CountingChatModel(BaseChatModel):
    """A real LangChain chat model that counts calls, sleeps, and can fail."""

    latency: float = 0.05
    calls: int = 0
    fail_first: int = 0
    lock: Any = None
    gate: Any = None  # an asyncio.Event: async calls wait for it instead of sleeping

    @property
    def _llm_type(self) -> str:
        return "counting"

    def _answer(self) -> ChatResult:
        with self.lock:
            self.calls += 1
            failing = self.calls <= self.fail_first
        if failing:
            raise RuntimeError("model failed")
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="answer"))])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        time.sleep(self.latency)
        return self._answer()

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.gate is not None:
            await self.gate.wait()
        else:
            await asyncio.sleep(self.latency)
        return self._answer()


def model(cache: LangChainCache, **kwargs: Any) -> CountingChatModel:
    return CountingChatModel(cache=cache, lock=threading.Lock(), **kwargs)


@pytest.fixture(
    params=[
        "memory",
        "memory-semantic",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("redis-semantic", marks=[pytest.mark.redis, pytest.mark.redisearch]),
    ]
)
def cache(request: pytest.FixtureRequest, unique_prefix: str) -> Iterator[LangChainCache]:
    made: LangChainCache
    if request.param == "memory":
        made = InMemoryCache()
    elif request.param == "memory-semantic":
        made = InMemorySemanticCache(ConceptEmbeddings())
    elif request.param == "redis":
        made = RedisCache(request.getfixturevalue("redis_url"), prefix=unique_prefix)
    else:
        made = RedisSemanticCache(
            ConceptEmbeddings(),
            request.getfixturevalue("redis_url"),
            name=unique_prefix,
            prefix=unique_prefix,
            vector_backend="redisearch",
        )
    yield made
    made.clear()
    if request.param == "redis-semantic":
        import redis

        with redis.Redis.from_url(request.getfixturevalue("redis_url")) as client:
            # No index if every write was dropped (a burst can exceed the 100 ms budget).
            with contextlib.suppress(redis.ResponseError):
                client.execute_command("FT.DROPINDEX", f"{unique_prefix}:v1:ix")


async def wait_for_waiters(cache: LangChainCache, count: int, seconds: float = 30.0) -> bool:
    """Whether ``count`` callers wait for a flight within ``seconds`` (the counter is the
    cache's own: polled, there is no event to wait for)."""
    for _ in range(int(seconds / 0.005)):
        if cache.stats.singleflight_waits >= count:
            return True
        await asyncio.sleep(0.005)
    return False


async def test_a_thousand_concurrent_ainvokes_make_one_model_call(cache: LangChainCache) -> None:
    # A real model call outlasts a burst's lookups; a 50 ms fake on a loaded machine may
    # not, and then the test would measure the machine. So the model answers once every
    # other caller waits for it (or after 30 s, when late callers must still be served
    # through the recent-value path, not by a second model call).
    gate = asyncio.Event()
    chat = model(cache, gate=gate)

    async def open_gate() -> None:
        await wait_for_waiters(cache, 999)
        gate.set()

    opener = asyncio.create_task(open_gate())
    answers = await asyncio.gather(*(chat.ainvoke("same prompt") for _ in range(1000)))
    await opener
    assert chat.calls == 1
    assert {a.content for a in answers} == {"answer"}
    # Everyone else waited for the leader, or read the cache once its update landed.
    assert cache.stats.singleflight_waits + cache.stats.hits >= 999
    assert cache.stats.singleflight_shared == cache.stats.singleflight_waits


def test_fifty_threads_on_the_sync_path_make_one_model_call(cache: LangChainCache) -> None:
    chat = model(cache, latency=0.2)
    barrier = threading.Barrier(50)
    answers: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait(timeout=10)
            answers.append(str(chat.invoke("same prompt").content))
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert answers == ["answer"] * 50
    assert chat.calls == 1


async def test_a_failing_model_call_releases_the_waiters(cache: LangChainCache) -> None:
    chat = model(cache, fail_first=1)
    started = time.monotonic()
    results = await asyncio.gather(
        *(chat.ainvoke("same prompt") for _ in range(20)), return_exceptions=True
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert [str(f) for f in failures] == ["model failed"]  # only the leader's own call
    assert all(getattr(r, "content", None) == "answer" for r in results if r not in failures)
    # Released at once (not after the 30 s wait bound); one of them led the next flight.
    assert time.monotonic() - started < 5
    assert chat.calls == 2


async def test_different_prompts_do_not_wait_for_each_other(cache: LangChainCache) -> None:
    chat = model(cache)
    await asyncio.gather(*(chat.ainvoke(f"prompt {i}") for i in range(20)))
    assert chat.calls == 20
    assert cache.stats.singleflight_waits == 0


async def test_single_flight_can_be_switched_off() -> None:
    chat = model(InMemoryCache(single_flight=False))
    await asyncio.gather(*(chat.ainvoke("same prompt") for _ in range(10)))
    assert chat.calls == 10


@pytest.mark.redis
async def test_cross_process_single_flight_through_a_redis_lease(
    redis_url: str, unique_prefix: str
) -> None:
    """Two caches with separate in-process state stand for two processes."""
    first = RedisCache(redis_url, prefix=unique_prefix, cross_process_wait=5.0)
    second = RedisCache(redis_url, prefix=unique_prefix, cross_process_wait=5.0)
    model_a, model_b = model(first, latency=0.3), model(second, latency=0.3)
    a_task = asyncio.create_task(model_a.ainvoke("same prompt"))
    await asyncio.sleep(0.05)  # the first process takes the lease and calls its model
    b_answer = await model_b.ainvoke("same prompt")
    a_answer = await a_task
    assert a_answer.content == b_answer.content == "answer"
    assert (model_a.calls, model_b.calls) == (1, 0)
    assert second.stats.singleflight_shared == 1
    await first.aclear()


@pytest.mark.redis
def test_cross_process_wait_is_bounded_when_the_lease_holder_never_writes(
    redis_url: str, unique_prefix: str
) -> None:
    holder = RedisCache(redis_url, prefix=unique_prefix, cross_process_wait=0.5)
    waiter = RedisCache(redis_url, prefix=unique_prefix, cross_process_wait=0.5)
    assert holder.lookup("p", "llm") is None  # takes the lease, never updates
    started = time.monotonic()
    assert waiter.lookup("p", "llm") is None  # waits for the holder, then gives up
    assert 0.4 < time.monotonic() - started < 3
    assert waiter.stats.singleflight_waits == 1


@pytest.mark.redis
@pytest.mark.parametrize("face", ["async", "sync"])
async def test_a_late_caller_that_cannot_read_the_cache_is_served_the_landed_answer(
    face: str,
) -> None:
    # A burst can run lookups over their time budget (and open the circuit) just after
    # the leader's answer landed. A caller that missed then is told to read the cache
    # again; when that read fails too, the answer shared with the flight's waiters
    # moments ago still serves it, instead of a second model call.
    with BlackholedConnection() as fault:
        cache = RedisCache(fault.url, prefix="late")
        chat = model(cache, latency=0.3)
        leader = asyncio.create_task(chat.ainvoke("same prompt"))
        await asyncio.sleep(0.05)  # the leader calls its model; the next caller waits
        waited = await chat.ainvoke("same prompt")
        assert (await leader).content == waited.content == "answer"
        assert (chat.calls, cache.stats.singleflight_shared) == (1, 1)

        fault.begin()  # every read now runs over its budget
        if face == "async":
            late = await chat.ainvoke("same prompt")
        else:
            late = await asyncio.to_thread(chat.invoke, "same prompt")
        assert late.content == "answer"
        assert chat.calls == 1
        # Both reads of the late caller failed: the lookup, then the read again.
        assert cache.stats.errors_timeout + cache.stats.breaker_skips == 2
        assert cache.stats.singleflight_shared == 2
        fault.end()
        await cache.aclear()


async def share_one_answer(cache: LangChainCache, chat: CountingChatModel) -> None:
    """A leader and one waiter: the answer is shared (so it is kept for late callers)."""
    chat.gate = asyncio.Event()
    leader = asyncio.create_task(chat.ainvoke("same prompt"))
    waiter = asyncio.create_task(chat.ainvoke("same prompt"))
    assert await wait_for_waiters(cache, 1)
    chat.gate.set()
    assert (await leader).content == (await waiter).content == "answer"
    assert (chat.calls, cache.stats.singleflight_shared) == (1, 1)


@pytest.mark.parametrize("face", ["async", "sync"])
async def test_after_clear_the_answer_of_a_recent_flight_is_not_served(face: str) -> None:
    cache = InMemoryCache()
    chat = model(cache)
    await share_one_answer(cache, chat)
    if face == "async":
        await cache.aclear()
    else:
        cache.clear()
    await chat.ainvoke("same prompt")
    assert chat.calls == 2  # the cleared answer was not served from the flight's memory


@pytest.mark.parametrize("ttl_from", ["cache", "options"])
async def test_the_answer_of_a_recent_flight_is_not_served_past_its_ttl(ttl_from: str) -> None:
    import llmemo

    ttl = 0.5  # far below the 5 s a landed answer is otherwise kept
    cache = InMemoryCache(ttl=ttl) if ttl_from == "cache" else InMemoryCache()
    chat = model(cache)
    if ttl_from == "cache":
        await share_one_answer(cache, chat)
    else:
        async with llmemo.options(ttl=ttl):
            await share_one_answer(cache, chat)
    await asyncio.sleep(ttl + 0.1)  # the entry has expired
    await chat.ainvoke("same prompt")
    assert chat.calls == 2


@pytest.mark.redis
async def test_a_late_caller_is_served_the_answer_whose_write_was_dropped() -> None:
    # In a burst the leader's write can run over its budget (or meet an open circuit)
    # and be dropped: the late callers of that burst, who cannot read the cache either,
    # are served the answer the flight shared rather than calling the model again.
    with BlackholedConnection() as fault:
        cache = RedisCache(fault.url, prefix="dropped")
        chat = model(cache)
        chat.gate = asyncio.Event()
        leader = asyncio.create_task(chat.ainvoke("same prompt"))
        waiter = asyncio.create_task(chat.ainvoke("same prompt"))
        assert await wait_for_waiters(cache, 1)
        fault.begin()  # the leader's write now runs over its budget
        chat.gate.set()
        assert (await leader).content == (await waiter).content == "answer"
        assert cache.stats.writes_dropped == 1
        late = await chat.ainvoke("same prompt")
        assert late.content == "answer"
        assert chat.calls == 1
        fault.end()
        await cache.aclear()
