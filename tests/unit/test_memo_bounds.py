"""The semantic cache's in-process memos are bounded by bytes as well as by count, and a
huge prompt is never kept as a memo key (counted by the memos' own accounting)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from llmemo._lru import LRU
from llmemo.caches.semantic import MEMO_MAX_TEXT_CHARS, SemanticCache
from llmemo.config import DEFAULT_EMBEDDING_MEMO_BYTES
from llmemo.errors import ConfigurationError
from llmemo.stores.memory import MemoryVectorStore

LLM = "fake-llm"


class CountingEmbedder:
    """An llmemo ``Embedder``: an 8-dimensional vector from each text, calls counted."""

    def __init__(self) -> None:
        self.calls = 0

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += len(texts)
        return [[1.0, *(float((hash(t) >> i) & 7) for i in range(7))] for t in texts]


def test_lru_evicts_by_bytes_and_refuses_an_entry_heavier_than_the_bound() -> None:
    memo = LRU[bytes](100, max_bytes=10, weigh=lambda key, value: len(value))
    memo.put("a", b"xxxx")
    memo.put("b", b"xxxx")
    memo.put("c", b"xxxx")  # 12 > 10: "a" goes
    assert [memo.get(k) for k in "abc"] == [None, b"xxxx", b"xxxx"]
    assert memo.total_bytes == 8
    memo.put("b", b"x" * 11)  # heavier than the bound: not kept, its old value dropped
    assert (memo.get("b"), memo.get("c"), memo.total_bytes) == (None, b"xxxx", 4)
    with pytest.raises(ValueError, match="together"):
        LRU[bytes](1, max_bytes=1)


async def test_the_embedding_memo_holds_at_most_its_bytes_after_many_large_prompts() -> None:
    limit = 2**20
    cache = SemanticCache(MemoryVectorStore(), CountingEmbedder(), embedding_memo_bytes=limit)
    for n in range(200):  # ~6 MB of distinct prompts, each memoisable on its own
        prompt = f"{n} " + "x" * (MEMO_MAX_TEXT_CHARS - 8)
        await cache.aupdate(prompt, LLM, "answer")
    assert 0 < cache._memo.total_bytes <= limit
    assert 0 < cache._signatures.total_bytes <= limit
    assert len(cache._memo) < 200


async def test_the_memos_are_bounded_by_bytes_by_default() -> None:
    cache = SemanticCache(MemoryVectorStore(), CountingEmbedder())
    assert cache.config.embedding_memo_bytes == DEFAULT_EMBEDDING_MEMO_BYTES
    assert cache._memo.max_bytes == DEFAULT_EMBEDDING_MEMO_BYTES
    assert cache._signatures.max_bytes == DEFAULT_EMBEDDING_MEMO_BYTES
    await cache.aclear()
    assert cache._memo.max_bytes == DEFAULT_EMBEDDING_MEMO_BYTES


async def test_a_huge_prompt_is_not_memoised() -> None:
    embedder = CountingEmbedder()
    cache = SemanticCache(MemoryVectorStore(), embedder)
    huge = "Why? " * (2 * 2**20)  # a 10 MB prompt
    assert await cache.alookup(huge, LLM) is None
    assert await cache.aupdate(huge, LLM, "because") is True
    assert embedder.calls == 2  # not memoised: the update embedded it again
    assert (len(cache._memo), cache._memo.total_bytes) == (0, 0)
    assert (len(cache._signatures), cache._signatures.total_bytes) == (0, 0)
    assert len(cache._located) == 0
    hit = await cache.alookup(huge, LLM)
    assert hit is not None and hit.value == "because"

    short = "Why is the sky blue?"
    assert await cache.alookup(short, LLM) is None
    assert await cache.aupdate(short, LLM, "scattering") is True
    assert embedder.calls == 3  # memoised: the update reused the lookup's vector


@pytest.mark.parametrize("bad", [0, -1, None, 1.5, True])
def test_embedding_memo_bytes_is_validated(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="embedding_memo_bytes"):
        SemanticCache(
            MemoryVectorStore(),
            CountingEmbedder(),
            embedding_memo_bytes=bad,  # type: ignore[arg-type]
        )
