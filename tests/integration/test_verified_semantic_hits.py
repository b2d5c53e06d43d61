"""End to end: with the real local embedder and the rules verifier, a semantic cache serves
paraphrases and refuses prompts whose answer differs (negation, number, direction)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.outputs import Generation

from llmemo.langchain import InMemorySemanticCache, LangChainCache, RedisSemanticCache
from llmemo.verify import RulesVerifier

pytestmark = pytest.mark.model

CASES = [
    (
        "How can I change my account password?",
        ["How do I change the password of my account?"],
        [],
    ),
    (
        "Do you ship orders over $100 for free?",
        ["Are orders above $100 shipped for free?"],
        ["Do you ship orders over $50 for free?", "Do you ship orders under $100 for free?"],
    ),
    (
        "Can I cancel my order after it has shipped?",
        ["Is it possible to cancel my order after it shipped?"],
        [
            "Can I cancel my order before it has shipped?",
            "Can't I cancel my order after it has shipped?",
        ],
    ),
    (
        "How do I migrate from MySQL to Postgres?",
        ["How can I move from MySQL to Postgres?"],
        ["How do I migrate from Postgres to MySQL?"],
    ),
    # Issue 17 item 7 (the notebook's example): "city" after "capital" is no detail.
    (
        "What is the capital of France?",
        ["Tell me the capital city of France", "Can you tell me the capital city of France?"],
        ["What is the former capital of France?", "What was the capital of France in 1900?"],
    ),
]


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redisearch", marks=[pytest.mark.redis, pytest.mark.redisearch]),
        pytest.param("vectorset", marks=[pytest.mark.redis, pytest.mark.vectorset]),
    ]
)
def cache(
    request: pytest.FixtureRequest, local_embeddings: Any, unique_prefix: str
) -> Iterator[LangChainCache]:
    made: LangChainCache
    if request.param == "memory":
        # Defaults: threshold 0.35 and the RulesVerifier.
        made = InMemorySemanticCache(local_embeddings)
    else:
        made = RedisSemanticCache(
            local_embeddings,
            request.getfixturevalue("redis_url"),
            name=unique_prefix,
            prefix=unique_prefix,
            vector_backend=request.param,
        )  # defaults: langchain-redis' threshold (0.2) and the RulesVerifier
    yield made
    made.clear()
    if request.param == "redisearch":
        import redis

        with redis.Redis.from_url(request.getfixturevalue("redis_url")) as client:
            with contextlib.suppress(redis.ResponseError):
                client.execute_command("FT.DROPINDEX", f"{unique_prefix}:v1:ix")


@pytest.mark.parametrize("cached, paraphrases, different", CASES)
def test_paraphrases_are_served_and_different_questions_are_not(
    cache: LangChainCache, cached: str, paraphrases: list[str], different: list[str]
) -> None:
    answer = [Generation(text=f"answer to: {cached}")]
    cache.update(cached, "llm", answer)
    for prompt in paraphrases:
        hit = cache.lookup_hit(prompt, "llm")
        assert hit is not None, prompt
        assert hit.value == answer and hit.kind == "semantic"
        assert hit.verdict is not None and hit.verdict.accepted
        assert hit.verdict.verifier == RulesVerifier().name  # on by default
    for prompt in different:
        assert cache.lookup(prompt, "llm") is None, prompt
    assert cache.stats.verifier_rejections >= len(different)
