"""Single-flight never stalls: a failed or abandoned leader releases its waiters at once.

Each case makes a leader that will never update (its model call raised, or it only
looked the cache up), then times the next caller of the same prompt from another thread
or task. The caches are built with ``single_flight_timeout=60``: a waiter released by the
leader's failure answers in well under 5 s, one that waits for the timeout would take 60 s
(180 s before the fix, which joined three times); every wait here is cut off by a 15 s
watchdog so that a regression fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.language_models.llms import LLM
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from llmemo.adapters import _singleflight
from llmemo.langchain import (
    InMemoryCache,
    InMemorySemanticCache,
    LangChainCache,
    RedisCache,
    RedisSemanticCache,
)

from fakes import ConceptEmbeddings

TIMEOUT = 60.0  # single_flight_timeout of every cache here
RELEASED = 5.0  # a released waiter answers within this (a timed-out one takes TIMEOUT)
WATCHDOG = 15.0


class _Failing:
    """Shared by both fakes: the first ``fail_first`` calls raise; with a ``gate`` (a
    ``threading.Event``) every call first waits for it."""

    def _next(self) -> str:
        if self.gate is not None:  # type: ignore[attr-defined]
            assert self.gate.wait(WATCHDOG)  # type: ignore[attr-defined]
        with self.lock:  # type: ignore[attr-defined]
            self.calls += 1  # type: ignore[attr-defined]
            failing = self.calls <= self.fail_first  # type: ignore[attr-defined]
        if failing:
            raise RuntimeError("model failed")
        return "answer"


class FailingChat(_Failing, BaseChatModel):
    """A LangChain chat model whose first ``fail_first`` calls raise."""

    calls: int = 0
    fail_first: int = 1
    lock: Any = None
    gate: Any = None

    @property
    def _llm_type(self) -> str:
        return "failing-chat"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=self._next()))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        answer = await asyncio.to_thread(self._next)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=answer))])


class FailingLLM(_Failing, LLM):
    """A LangChain completion model (``BaseLLM``) whose first ``fail_first`` calls raise."""

    calls: int = 0
    fail_first: int = 1
    lock: Any = None
    gate: Any = None

    @property
    def _llm_type(self) -> str:
        return "failing-llm"

    def _call(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> str:
        return self._next()

    async def _acall(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> str:
        return await asyncio.to_thread(self._next)


def make_model(kind: str, cache: LangChainCache) -> Any:
    cls = FailingChat if kind == "chat" else FailingLLM
    return cls(cache=cache, lock=threading.Lock())


def text(result: Any) -> str:
    return str(getattr(result, "content", result))


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
        made = InMemoryCache(single_flight_timeout=TIMEOUT)
    elif request.param == "memory-semantic":
        made = InMemorySemanticCache(ConceptEmbeddings(), single_flight_timeout=TIMEOUT)
    elif request.param == "redis":
        made = RedisCache(
            request.getfixturevalue("redis_url"),
            prefix=unique_prefix,
            single_flight_timeout=TIMEOUT,
        )
    else:
        made = RedisSemanticCache(
            ConceptEmbeddings(),
            request.getfixturevalue("redis_url"),
            name=unique_prefix,
            prefix=unique_prefix,
            vector_backend="redisearch",
            single_flight_timeout=TIMEOUT,
        )
    yield made
    made.clear()
    if request.param == "redis-semantic":
        import redis

        with redis.Redis.from_url(request.getfixturevalue("redis_url")) as client:
            with contextlib.suppress(redis.ResponseError):
                client.execute_command("FT.DROPINDEX", unique_prefix)


def timed_in_thread(call: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``call`` in a new thread; its result and seconds taken (fails after WATCHDOG)."""
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(call())
        except BaseException as exc:  # re-raised below
            box.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(WATCHDOG)
    elapsed = time.monotonic() - started
    assert box, f"still waiting after {WATCHDOG} s: the flight was not released"
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0], elapsed


class SyncLeader:
    """A thread that runs ``lead`` and then idles (or exits) until told to stop."""

    def __init__(self, lead: Callable[[], Any], *, exits: bool) -> None:
        self.led = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self._lead = lead
        self.thread = threading.Thread(target=self._run, args=(exits,), daemon=True)

    def _run(self, exits: bool) -> None:
        try:
            self._lead()
        except Exception as exc:  # the model's failure: the leader carries on
            self.error = exc
        self.led.set()
        if not exits:
            self.stop.wait(WATCHDOG * 2)  # idles: alive, never updates

    def __enter__(self) -> SyncLeader:
        self.thread.start()
        assert self.led.wait(WATCHDOG)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.thread.join(WATCHDOG)


# --- a leader whose model call raised ---------------------------------------------------


@pytest.mark.parametrize("exits", [False, True], ids=["idles", "exits"])
@pytest.mark.parametrize("kind", ["chat", "llm"])
def test_sync_leader_whose_model_raised_releases_the_next_caller(
    cache: LangChainCache, kind: str, exits: bool
) -> None:
    model = make_model(kind, cache)
    with SyncLeader(lambda: model.invoke("same prompt"), exits=exits) as leader:
        if exits:
            leader.thread.join(WATCHDOG)
        assert str(leader.error) == "model failed"
        result, elapsed = timed_in_thread(lambda: model.invoke("same prompt"))
    assert text(result) == "answer"
    assert elapsed < RELEASED
    assert model.calls == 2


@pytest.mark.parametrize("kind", ["chat", "llm"])
async def test_async_leader_whose_model_raised_in_a_long_lived_task_releases_the_next_caller(
    cache: LangChainCache, kind: str
) -> None:
    model = make_model(kind, cache)
    failed = asyncio.Event()
    stop = asyncio.Event()

    async def leader() -> None:
        with contextlib.suppress(RuntimeError):
            await model.ainvoke("same prompt")
        failed.set()
        await stop.wait()  # the task lives on, never updates

    task = asyncio.create_task(leader())
    await asyncio.wait_for(failed.wait(), WATCHDOG)
    started = time.monotonic()
    try:
        result = await asyncio.wait_for(model.ainvoke("same prompt"), WATCHDOG)
    finally:
        stop.set()
        await task
    assert text(result) == "answer"
    assert time.monotonic() - started < RELEASED
    assert model.calls == 2


@pytest.mark.parametrize("kind", ["chat", "llm"])
async def test_a_successful_async_leader_in_a_long_lived_task_serves_the_next_caller(
    cache: LangChainCache, kind: str
) -> None:
    model = make_model(kind, cache)
    model.fail_first = 0
    assert text(await model.ainvoke("same prompt")) == "answer"
    started = time.monotonic()
    result = await asyncio.wait_for(model.ainvoke("same prompt"), WATCHDOG)
    assert text(result) == "answer"
    assert time.monotonic() - started < RELEASED
    assert model.calls == 1


# --- a leader inside its model run is waited for past the grace ------------------------


@pytest.mark.parametrize("face", ["sync", "async"])
@pytest.mark.parametrize("kind", ["chat", "llm"])
async def test_a_leader_in_its_model_run_is_waited_for_past_the_grace(
    kind: str, face: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Chat models look the cache up inside their run, completion models just before it:
    # either way the flight is tied to the run, and a waiter does not give up on it after
    # the grace meant for bare lookups (it would call the model a second time).
    monkeypatch.setattr(_singleflight, "UNCONFIRMED_GRACE", 0.2)
    cache = InMemoryCache(single_flight_timeout=TIMEOUT)
    model = make_model(kind, cache)
    model.fail_first = 0
    model.gate = threading.Event()
    invoke = (
        (lambda: asyncio.to_thread(model.invoke, "same prompt"))
        if face == "sync"
        else (lambda: model.ainvoke("same prompt"))
    )
    leader = asyncio.create_task(invoke())
    while not len(cache._flights or ()):  # noqa: ASYNC110  (the leader's flight opens)
        await asyncio.sleep(0.01)
    waiter = asyncio.create_task(invoke())
    while cache.stats.singleflight_waits < 1:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.5)  # well past the grace
    model.gate.set()
    assert [text(r) for r in await asyncio.gather(leader, waiter)] == ["answer", "answer"]
    assert model.calls == 1


# --- a bare lookup, never followed by an update -----------------------------------------


@pytest.mark.parametrize("exits", [False, True], ids=["idles", "exits"])
def test_a_bare_sync_lookup_does_not_stall_the_next_caller(
    cache: LangChainCache, exits: bool
) -> None:
    with SyncLeader(lambda: cache.lookup("bare prompt", "llm"), exits=exits):
        result, elapsed = timed_in_thread(lambda: cache.lookup("bare prompt", "llm"))
    assert result is None
    assert elapsed < RELEASED


async def test_a_bare_async_lookup_does_not_stall_the_next_caller(cache: LangChainCache) -> None:
    looked = asyncio.Event()
    stop = asyncio.Event()

    async def leader() -> None:
        assert await cache.alookup("bare prompt", "llm") is None
        looked.set()
        await stop.wait()

    task = asyncio.create_task(leader())
    await asyncio.wait_for(looked.wait(), WATCHDOG)
    started = time.monotonic()
    try:
        result = await asyncio.wait_for(cache.alookup("bare prompt", "llm"), WATCHDOG)
    finally:
        stop.set()
        await task
    assert result is None
    assert time.monotonic() - started < RELEASED


# --- the run watcher leaves the user's own callback handlers alone -----------------------


async def test_a_users_non_inline_handlers_still_see_every_model_event() -> None:
    # LangChain's AsyncCallbackManager.on_llm_start skips every non-inline handler when
    # some handler is inline (langchain-ai/langchain#39633); llmemo's watcher is inline
    # elsewhere but must not hide the user's handlers there.
    from langchain_core.callbacks import AsyncCallbackHandler

    class Counting(AsyncCallbackHandler):
        def __init__(self) -> None:
            self.events: list[str] = []

        async def on_llm_start(self, *args: Any, **kwargs: Any) -> None:
            self.events.append("llm_start")

        async def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
            self.events.append("chat_start")

        async def on_llm_end(self, *args: Any, **kwargs: Any) -> None:
            self.events.append("end")

    cache = InMemoryCache()  # installs the watcher
    handler = Counting()
    llm = make_model("llm", cache)
    llm.fail_first = 0
    await llm.ainvoke("a prompt", config={"callbacks": [handler]})
    chat = make_model("chat", cache)
    chat.fail_first = 0
    await chat.ainvoke("a prompt", config={"callbacks": [handler]})
    assert handler.events == ["llm_start", "end", "chat_start", "end"]


@pytest.mark.parametrize(
    "make",
    [
        lambda t: InMemoryCache(single_flight_timeout=t),
        lambda t: InMemorySemanticCache(ConceptEmbeddings(), single_flight_timeout=t),
        lambda t: RedisCache("redis://127.0.0.1:1", single_flight_timeout=t),
        lambda t: RedisSemanticCache(
            ConceptEmbeddings(), "redis://127.0.0.1:1", single_flight_timeout=t
        ),
    ],
    ids=["memory", "memory-semantic", "redis", "redis-semantic"],
)
def test_single_flight_timeout_is_checked_at_construction(make: Any) -> None:
    from llmemo.errors import ConfigurationError

    for bad in (0, -1.0, "30"):
        with pytest.raises(ConfigurationError, match="single_flight_timeout"):
            make(bad)
    cache = make(2.5)
    assert cache._flights is not None and cache._flights.timeout == 2.5
