"""The in-memory LangChain caches through LangChain's real code paths and fake models."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from langchain_core.globals import set_llm_cache
from langchain_core.language_models import FakeListLLM
from langchain_core.language_models.fake_chat_models import (
    FakeListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, Generation

from llmemo.errors import ConfigurationError
from llmemo.langchain import InMemoryCache, InMemorySemanticCache

from fakes import AsyncConceptEmbeddings, ConceptEmbeddings

FRANCE = "What is the capital of France?"
FRANCE_PARAPHRASE = "Can you tell me the capital city of France?"
BREAD = "How do I bake bread?"


@pytest.fixture
def global_cache() -> Iterator[None]:
    yield
    set_llm_cache(None)


def tool_call_message() -> AIMessage:
    return AIMessage(
        content="Let me look that up.",
        tool_calls=[{"name": "get_weather", "args": {"city": "Paris", "days": 3}, "id": "call_1"}],
        response_metadata={"model_name": "fake-1", "finish_reason": "tool_calls"},
        usage_metadata={"input_tokens": 12, "output_tokens": 7, "total_tokens": 19},
        id="run-abc",
    )


def test_second_identical_call_is_served_via_set_llm_cache(global_cache: None) -> None:
    set_llm_cache(InMemoryCache())
    model = FakeListChatModel(responses=["first", "second"])
    assert model.invoke("hello").content == "first"
    assert model.invoke("hello").content == "first"
    assert model.i == 1  # the model answered once


async def test_second_identical_async_call_is_served(global_cache: None) -> None:
    set_llm_cache(InMemoryCache())
    model = FakeListChatModel(responses=["first", "second"])
    assert (await model.ainvoke("hello")).content == "first"
    assert (await model.ainvoke("hello")).content == "first"
    assert model.i == 1


def test_model_level_cache_parameter() -> None:
    cache = InMemoryCache()
    model = FakeListChatModel(responses=["first", "second"], cache=cache)
    model.invoke("hello")
    assert model.invoke("hello").content == "first"
    assert cache.stats.exact_hits == 1


def test_llm_models_are_cached_too() -> None:
    cache = InMemoryCache()
    llm = FakeListLLM(responses=["one", "two"], cache=cache)
    assert llm.invoke("x") == "one"
    assert llm.invoke("x") == "one"
    assert llm.invoke("y") == "two"


def test_tool_calls_come_back_equal() -> None:
    cache = InMemoryCache()
    model = GenericFakeChatModel(messages=iter([tool_call_message()]), cache=cache)
    first = model.invoke("weather in Paris?")
    second = model.invoke("weather in Paris?")  # the iterator is exhausted: must be the cache
    assert second.tool_calls == first.tool_calls == tool_call_message().tool_calls
    assert second.content == first.content
    assert second.response_metadata == tool_call_message().response_metadata


def test_chat_generation_with_everything_round_trips_through_update() -> None:
    cache = InMemoryCache()
    generations = [
        ChatGeneration(message=tool_call_message(), generation_info={"finish_reason": "stop"}),
        ChatGeneration(message=AIMessage(content="second candidate")),
    ]
    cache.update("prompt", "llm", generations)
    assert cache.lookup("prompt", "llm") == generations


def test_same_prompt_under_two_llm_strings_keeps_both_answers(global_cache: None) -> None:
    set_llm_cache(InMemoryCache())
    model_a = FakeListChatModel(responses=["A", "A2"])
    model_b = FakeListChatModel(responses=["B", "B2"])
    assert model_a._get_llm_string() != model_b._get_llm_string()
    assert model_a.invoke("same prompt").content == "A"
    assert model_b.invoke("same prompt").content == "B"
    assert model_a.invoke("same prompt").content == "A"
    assert model_b.invoke("same prompt").content == "B"


def test_semantic_paraphrase_hit_and_far_miss(global_cache: None) -> None:
    cache = InMemorySemanticCache(ConceptEmbeddings(), distance_threshold=0.2)
    set_llm_cache(cache)
    model = FakeListChatModel(responses=["Paris", "Knead the dough", "unused"])
    assert model.invoke(FRANCE).content == "Paris"
    assert model.invoke(FRANCE_PARAPHRASE).content == "Paris"
    assert model.i == 1
    assert model.invoke(BREAD).content == "Knead the dough"
    assert cache.stats.semantic_hits == 1


async def test_semantic_async_with_native_async_embeddings(global_cache: None) -> None:
    set_llm_cache(InMemorySemanticCache(AsyncConceptEmbeddings()))
    model = FakeListChatModel(responses=["Paris", "other"])
    assert (await model.ainvoke(FRANCE)).content == "Paris"
    assert (await model.ainvoke(FRANCE_PARAPHRASE)).content == "Paris"
    assert model.i == 1


def test_semantic_chat_differing_only_in_an_earlier_turn_misses() -> None:
    cache = InMemorySemanticCache(ConceptEmbeddings())
    model = FakeListChatModel(responses=["Paris", "Arr, Paris", "x"], cache=cache)
    geographer = [SystemMessage("You are a geographer."), HumanMessage(FRANCE)]
    pirate = [SystemMessage("You are a pirate."), HumanMessage(FRANCE)]
    assert model.invoke(geographer).content == "Paris"
    assert model.invoke(pirate).content == "Arr, Paris"
    paraphrase = [SystemMessage("You are a geographer."), HumanMessage(FRANCE_PARAPHRASE)]
    assert model.invoke(paraphrase).content == "Paris"
    history_a = [HumanMessage("hi"), AIMessage("hello"), HumanMessage(FRANCE)]
    history_b = [HumanMessage("bye"), AIMessage("hello"), HumanMessage(FRANCE)]
    cache.update(
        __import__("langchain_core.load", fromlist=["dumps"]).dumps(history_a),
        model._get_llm_string(),
        [ChatGeneration(message=AIMessage("cached for history a"))],
    )
    assert model.invoke(history_b).content == "x"


@pytest.mark.parametrize(
    "bad, error, match",
    [
        ("a string", TypeError, "return_val"),
        ([1, 2], TypeError, r"return_val\[0\]"),
        ([Generation(text="ok"), "nope"], TypeError, r"return_val\[1\]"),
        ([], ConfigurationError, "return_val"),
        (None, TypeError, "return_val"),
    ],
)
def test_bad_return_val_is_refused_and_nothing_stored(
    bad: object, error: type[Exception], match: str
) -> None:
    cache = InMemoryCache()
    with pytest.raises(error, match=match):
        cache.update("p", "llm", bad)  # type: ignore[arg-type]
    assert cache.lookup("p", "llm") is None
    assert cache.stats.writes == 0


def test_non_string_prompt_is_refused() -> None:
    cache = InMemoryCache()
    with pytest.raises(TypeError, match="prompt"):
        cache.update(123, "llm", [Generation(text="x")])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="llm_string"):
        cache.lookup("p", None)  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs", [{"ttl": -1}, {"maxsize": 0}, {"namespace": "a b"}])
def test_bad_constructor_arguments_name_the_parameter(kwargs: dict[str, object]) -> None:
    name = next(iter(kwargs))
    with pytest.raises(ConfigurationError, match="max_entries" if name == "maxsize" else name):
        InMemoryCache(**kwargs)  # type: ignore[arg-type]


def test_semantic_threshold_is_validated() -> None:
    with pytest.raises(ConfigurationError, match="distance_threshold"):
        InMemorySemanticCache(ConceptEmbeddings(), distance_threshold=2.5)


def test_lookups_return_lists() -> None:
    cache = InMemoryCache()
    cache.update("p", "llm", (Generation(text="a"), Generation(text="b")))
    value = cache.lookup("p", "llm")
    assert isinstance(value, list)
    assert [g.text for g in value] == ["a", "b"]


def test_ttl_expiry() -> None:
    cache = InMemoryCache(ttl=0.05)
    cache.update("p", "llm", [Generation(text="x")])
    assert cache.lookup("p", "llm") is not None
    threading.Event().wait(0.1)
    assert cache.lookup("p", "llm") is None


def test_sync_and_async_share_entries_across_loops() -> None:
    cache = InMemorySemanticCache(ConceptEmbeddings())
    cache.update(FRANCE, "llm", [Generation(text="Paris")])

    async def read() -> list[Generation] | None:
        return await cache.alookup(FRANCE_PARAPHRASE, "llm")  # type: ignore[return-value]

    for _ in range(3):  # a new event loop every time, as users of asyncio.run do
        assert asyncio.run(read()) == [Generation(text="Paris")]


def test_sync_calls_inside_a_running_loop_neither_deadlock_nor_stall_it() -> None:
    """A sync LangChain call made from async code (e.g. ``model.invoke`` inside an async
    agent) completes, and the loop's other tasks keep running afterwards."""
    cache = InMemorySemanticCache(ConceptEmbeddings())
    model = FakeListChatModel(responses=["Paris", "other"], cache=cache)
    outcome: dict[str, object] = {}

    async def scenario() -> None:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0.01)
        outcome["first"] = model.invoke(FRANCE).content  # sync, inside the loop
        outcome["second"] = model.invoke(FRANCE_PARAPHRASE).content
        cache.clear()
        outcome["after_clear"] = cache.lookup(FRANCE, model._get_llm_string())
        before = ticks
        await asyncio.sleep(0.05)
        outcome["ticks_after"] = ticks - before
        task.cancel()

    runner = threading.Thread(target=lambda: asyncio.run(scenario()), daemon=True)
    runner.start()
    runner.join(timeout=20)
    assert not runner.is_alive(), "sync call inside a running loop deadlocked"
    assert outcome["first"] == outcome["second"] == "Paris"
    assert outcome["after_clear"] is None
    assert isinstance(outcome["ticks_after"], int) and outcome["ticks_after"] > 5


def test_threads_share_one_cache() -> None:
    cache = InMemoryCache(maxsize=10_000)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(50):
                cache.update(f"p{worker}-{i}", "llm", [Generation(text=str(i))])
                assert cache.lookup(f"p{worker}-{i}", "llm") == [Generation(text=str(i))]
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert cache.stats.writes == 400
    assert cache.stats.exact_hits == 400
