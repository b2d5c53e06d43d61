"""The ``context`` policy of semantic caches on chat prompts (issue 18).

``exact`` (the default) serves an answer only after the same conversation; ``tolerant``
also serves a standalone final question after an unrelated conversation, and never a
follow-up ("how do I unblock it?") whose conversation differs. Memory and Redis alike.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import Generation

from llmemo import ConfigurationError
from llmemo.langchain import InMemorySemanticCache, LangChainCache, RedisSemanticCache

from fakes import ConceptEmbeddings

LLM = "chat-model"
QUESTION = "Is PulseFit open on Christmas Day?"
FOLLOW_UP = "and if I find it again, how do I unblock it?"


def chat(*messages: BaseMessage) -> str:
    return dumps(list(messages))


TOWEL = chat(
    HumanMessage("can I bring my own towel?"), AIMessage("Please bring your own."),
    HumanMessage(QUESTION),
)  # fmt: skip
LOST_PROPERTY = chat(
    HumanMessage("is there a lost property at the Leeds club?"),
    AIMessage("Yes, reception keeps it for 30 days."),
    HumanMessage(QUESTION),
)
CARD = chat(
    HumanMessage("I lost my Harbour Bank debit card."), AIMessage("I've frozen the card."),
    HumanMessage(FOLLOW_UP),
)  # fmt: skip
SIM = chat(
    HumanMessage("I lost my Kestrel Mobile phone."), AIMessage("I've barred the SIM."),
    HumanMessage(FOLLOW_UP),
)  # fmt: skip


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redisearch)])
def make_cache(request: pytest.FixtureRequest, unique_prefix: str) -> Iterator[object]:
    made: list[LangChainCache] = []

    def make(context: str) -> LangChainCache:
        name = f"{unique_prefix}{len(made)}"
        if request.param == "memory":
            cache: LangChainCache = InMemorySemanticCache(
                ConceptEmbeddings(), namespace=name, context=context
            )
        else:
            cache = RedisSemanticCache(
                ConceptEmbeddings(), request.getfixturevalue("redis_url"), prefix=name,
                name=name, vector_backend="redisearch", context=context,
            )  # fmt: skip
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.clear()
    if request.param == "redis":
        with redis.Redis.from_url(request.getfixturevalue("redis_url")) as admin:
            for i in range(len(made)):
                admin.execute_command("FT.DROPINDEX", f"{unique_prefix}{i}:v1:ix")


def test_tolerant_serves_a_standalone_question_after_another_conversation(
    make_cache: object,
) -> None:
    for context, served in (("exact", False), ("tolerant", True)):
        cache = make_cache(context)  # type: ignore[operator]
        cache.update(TOWEL, LLM, [Generation(text="Closed on Christmas Day.")])
        hit = cache.lookup(LOST_PROPERTY, LLM)
        assert (hit == [Generation(text="Closed on Christmas Day.")]) is served, context
        # Another model configuration, or a system prompt, still keeps entries apart.
        assert cache.lookup(LOST_PROPERTY, "another-model") is None
        assert cache.lookup(chat(SystemMessage("Be brief."), HumanMessage(QUESTION)), LLM) is None


def test_tolerant_never_serves_a_follow_up_after_another_conversation(make_cache: object) -> None:
    cache = make_cache("tolerant")  # type: ignore[operator]
    cache.update(CARD, LLM, [Generation(text="Unfreeze it in the Harbour app.")])
    assert cache.lookup(SIM, LLM) is None
    assert cache.lookup(CARD, LLM) == [Generation(text="Unfreeze it in the Harbour app.")]


def test_unknown_context_policy_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="context"):
        InMemorySemanticCache(ConceptEmbeddings(), context="loose")
    with pytest.raises(ConfigurationError, match="context"):
        RedisSemanticCache(ConceptEmbeddings(), "redis://localhost:1", context="loose")
