"""An answer the codec cannot store never fails a call whose model was already paid for.

A model's output can carry metadata that is not JSON data (a set, bytes, an object of
the provider's SDK). With ``errors="open"`` (the default) the write is dropped and
counted (``writes_unencodable`` and ``writes_dropped``), the caller gets the model's
answer, and nothing is stored; with ``errors="raise"`` the ``SerializationError``
propagates, as every other failure does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from langchain_core.caches import BaseCache
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from llmemo import FailurePolicy, SerializationError
from llmemo.langchain import InMemoryCache, InMemorySemanticCache, RedisCache, RedisSemanticCache

from fakes import ConceptEmbeddings

QUESTION = "What is the capital of France?"


def odd_answers() -> Iterator[AIMessage]:
    # Metadata that is not JSON data: the codec refuses it.
    while True:
        yield AIMessage(content="Paris", response_metadata={"seen": {1, 2}})


Factory = Callable[[FailurePolicy | None], BaseCache]


@pytest.fixture(params=["memory", "memory-semantic", "redis", "redis-semantic"])
def make_cache(request: pytest.FixtureRequest, unique_prefix: str) -> Iterator[Factory]:
    made: list[BaseCache] = []

    def make(policy: FailurePolicy | None) -> BaseCache:
        kind = request.param
        if kind == "memory":
            cache: BaseCache = InMemoryCache(policy=policy)
        elif kind == "memory-semantic":
            cache = InMemorySemanticCache(ConceptEmbeddings(), policy=policy)
        else:
            url = request.getfixturevalue("redis_url")
            if kind == "redis":
                cache = RedisCache(url, prefix=unique_prefix, policy=policy)
            else:
                cache = RedisSemanticCache(
                    ConceptEmbeddings(), url, prefix=unique_prefix, name=unique_prefix,
                    policy=policy,
                )  # fmt: skip
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.clear()


def test_a_sync_call_gets_its_answer_and_the_write_is_counted(make_cache: Factory) -> None:
    cache = make_cache(None)
    model = GenericFakeChatModel(messages=odd_answers(), cache=cache)
    assert model.invoke(QUESTION).content == "Paris"
    assert model.invoke(QUESTION).content == "Paris"  # not stored: the model answers again
    stats = cache.stats  # type: ignore[attr-defined]
    assert stats.writes == 0
    assert stats.writes_unencodable == 2
    assert stats.writes_dropped == 2
    assert stats.hits == 0


async def test_an_async_call_gets_its_answer_and_the_write_is_counted(
    make_cache: Factory,
) -> None:
    cache = make_cache(None)
    model = GenericFakeChatModel(messages=odd_answers(), cache=cache)
    assert (await model.ainvoke(QUESTION)).content == "Paris"
    stats = cache.stats  # type: ignore[attr-defined]
    assert (stats.writes, stats.writes_unencodable, stats.writes_dropped) == (0, 1, 1)


def test_errors_raise_still_raises(make_cache: Factory) -> None:
    cache = make_cache(FailurePolicy(errors="raise", operation_timeout=10.0))
    model = GenericFakeChatModel(messages=odd_answers(), cache=cache)
    with pytest.raises(SerializationError):
        model.invoke(QUESTION)
