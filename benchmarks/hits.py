"""Cache hits on Redis against the raw Redis floor, in one run.

* exact, async: llmemo ``RedisCache.alookup`` (LangChain face) and ``ExactCache.alookup``
  (core) vs a raw ``redis.asyncio`` GET of the same stored bytes;
* exact, sync: ``RedisCache.lookup`` vs a raw sync redis-py GET;
* semantic, embedding excluded (a precomputed-vector embedder), at each size: the store's
  vector query (``search``), the full ``SemanticCache.alookup`` threshold only (with and
  without the exact-first probe) and in its default configuration (``RulesVerifier``),
  vs the raw ``FT.SEARCH`` KNN / ``VSIM`` on the same index or set.

Payload: a ``ChatGeneration`` with a 500-character ``AIMessage``, ``response_metadata`` and
``usage_metadata``, under a realistic chat-model ``llm_string``.
"""

from __future__ import annotations

import asyncio
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._measure import Series, measure_async, measure_sync, table

DIMENSION = 384
LLM_STRING = (
    '{"id": ["langchain", "chat_models", "openai", "ChatOpenAI"], "kwargs": {"model_name": '
    '"gpt-4o-mini", "temperature": 0.0}, "lc": 1, "type": "constructor"}---'
    "[('_type', 'openai-chat'), ('model', 'gpt-4o-mini'), ('stop', None), "
    "('temperature', 0.0)]"
)


def chat_payload(variant: int | None = None) -> list[Any]:
    """The value chat models cache: one ChatGeneration, 500-character answer (``variant``
    makes the text distinct, same length)."""
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration

    text = ("Paris is the capital and largest city of France. " * 11)[:500]
    if variant is not None:
        text = f"[{variant}] {text}"[:500]
    message = AIMessage(
        content=text,
        response_metadata={
            "model_name": "gpt-4o-mini-2024-07-18",
            "finish_reason": "stop",
            "system_fingerprint": "fp_0123456789",
        },
        usage_metadata={"input_tokens": 25, "output_tokens": 110, "total_tokens": 135},
        id="run-00000000-0000-0000-0000-000000000000-0",
    )
    return [ChatGeneration(message=message, generation_info={"finish_reason": "stop"})]


class PrecomputedEmbedder:
    """A free, deterministic embedder: looks the vector up (embedding cost excluded)."""

    def __init__(self) -> None:
        self.vectors: dict[str, list[float]] = {}

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self.vectors[t] for t in texts]


def _unit_rows(count: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(count, DIMENSION)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


async def exact_async(url: str, rounds: int, ops: int) -> dict[str, Series]:
    import redis.asyncio as aioredis

    from llmemo import ExactCache
    from llmemo.langchain import RedisCache
    from llmemo.stores.redis.keystore import RedisKeyStore

    prompt = "What is the capital of France?"
    cache = RedisCache(url, prefix="bench-x")
    await cache.aupdate(prompt, LLM_STRING, chat_payload())
    raw = aioredis.Redis.from_url(url)
    core_client = aioredis.Redis.from_url(url)
    core = ExactCache(RedisKeyStore(core_client), namespace="bench-x")
    key = core.key(prompt, LLM_STRING)
    assert await raw.get(key) is not None
    try:
        return await measure_async(
            {
                "raw redis.asyncio GET": lambda: raw.get(key),
                "llmemo ExactCache.alookup (core)": lambda: core.alookup(prompt, LLM_STRING),
                "llmemo RedisCache.alookup (LangChain)": lambda: cache.alookup(prompt, LLM_STRING),
            },
            rounds,
            ops,
        )
    finally:
        await cache.aclear()
        await raw.aclose()
        await core_client.aclose()


def exact_sync(url: str, rounds: int, ops: int) -> dict[str, Series]:
    import redis

    from llmemo.langchain import RedisCache

    prompt = "What is the capital of France?"
    cache = RedisCache(url, prefix="bench-xs")
    cache.update(prompt, LLM_STRING, chat_payload())
    key = asyncio.run(_exact_key(prompt))
    raw = redis.Redis.from_url(url)
    assert raw.get(key) is not None
    try:
        return measure_sync(
            {
                "raw redis-py GET (sync)": lambda: raw.get(key),
                "llmemo RedisCache.lookup (sync)": lambda: cache.lookup(prompt, LLM_STRING),
            },
            rounds,
            ops,
        )
    finally:
        cache.clear()
        raw.close()


async def _exact_key(prompt: str) -> str:
    from llmemo import ExactCache, MemoryKeyStore

    return ExactCache(MemoryKeyStore(), namespace="bench-xs").key(prompt, LLM_STRING)


async def semantic(
    url: str, backend: str, size: int, rounds: int, ops: int, progress: Any
) -> dict[str, Series]:
    import redis.asyncio as aioredis

    from llmemo import FailurePolicy, SemanticCache, keys, text

    name = f"bench-s-{backend}-{size}"
    client = aioredis.Redis.from_url(url)
    raw = aioredis.Redis.from_url(url)
    store = _store(client, backend, name)
    embedder = PrecomputedEmbedder()
    # Threshold only (the machinery, as the raw query), and the default configuration
    # (RulesVerifier checks the candidate; its signatures are stored with each entry).
    cache = SemanticCache(store, embedder, namespace=name, distance_threshold=0.2, verifier=None)
    cache_no_probe = SemanticCache(
        store, embedder, namespace=name, distance_threshold=0.2, exact_first=False, verifier=None
    )
    cache_verified = SemanticCache(store, embedder, namespace=name, distance_threshold=0.2)
    # Loading is not measured: a generous budget, and errors raise (no silent gaps: 64
    # concurrent writes to a 10k vector set can outlast the default 100 ms budget).
    loader = SemanticCache(
        store,
        embedder,
        namespace=name,
        distance_threshold=0.2,
        policy=FailurePolicy(errors="raise", operation_timeout=30.0),
    )
    vectors = _unit_rows(size, seed=size)
    payload = chat_payload()
    started = time.monotonic()
    for start in range(0, size, 64):
        batch = range(start, min(size, start + 64))
        for i in batch:
            embedder.vectors[f"prompt {i}"] = vectors[i].tolist()
        await asyncio.gather(*(loader.aupdate(f"prompt {i}", LLM_STRING, payload) for i in batch))
        if (start // 64) % 40 == 39:
            progress(f"  loading {backend} {size:,}: {min(size, start + 64):,} entries")
    progress(f"  loaded {size:,} entries in {time.monotonic() - started:.1f} s")

    target = size // 2
    noise = np.random.default_rng(1).normal(size=DIMENSION).astype(np.float32)
    query = vectors[target] + 0.15 * noise / np.linalg.norm(noise)
    # Same words as the stored "prompt {target}", another string (so no exact hit): the
    # verifier has something to accept.
    query_prompt = f"Prompt {target}?"
    # Reworded, so that the verifier compares two different signatures in full (the
    # first query has the stored prompt's features, which it recognises at once).
    reworded_prompt = f"Could you answer prompt {target}?"
    embedder.vectors[query_prompt] = query.tolist()
    embedder.vectors[reworded_prompt] = query.tolist()
    partition = keys.partition_id(name, LLM_STRING, text.split_prompt(query_prompt).context)
    for each, prompt in (
        (cache, query_prompt),
        (cache_verified, query_prompt),
        (cache_verified, reworded_prompt),
    ):
        hit = await each.alookup(prompt, LLM_STRING)
        assert hit is not None and hit.kind == "semantic", hit
    blob = query.astype(np.float32).tobytes()

    if backend == "redisearch":
        from benchmarks import _contenders as C  # imports this module: not at the top

        # The query the store sends: vectors of the index's type (FLOAT16 by default),
        # and its hybrid plan for a one-partition index of this size.
        plan = C.llmemo_plan(size, size)
        knn = f"(@partition:{{$p}})=>[KNN 1 @vec $blob{plan} AS dist]"
        raw_args = (
            "FT.SEARCH",
            f"{name}:v1:ix",  # the cache's index (see llmemo.stores.redis.search)
            knn,
            "PARAMS",
            4,
            "p",
            partition,
            "blob",
            C.index_blob(query),
            "RETURN",
            2,
            "payload",
            "dist",
            "SORTBY",
            "dist",
            "LIMIT",
            0,
            1,
            "DIALECT",
            2,
        )
        floor = "raw FT.SEARCH KNN (payload returned)"
    else:
        raw_args = ("VSIM", f"{name}:v1:vs:{{{partition}}}", "FP32", blob, "WITHSCORES", "COUNT", 1)
        floor = "raw VSIM (no payload)"
    assert await raw.execute_command(*raw_args)
    try:
        return await measure_async(
            {
                floor: lambda: raw.execute_command(*raw_args),
                "llmemo store.search (vector query + payload)": lambda: store.search(
                    partition, query, k=1, max_distance=0.2
                ),
                "llmemo SemanticCache.alookup, exact_first=False": lambda: cache_no_probe.alookup(
                    query_prompt, LLM_STRING
                ),
                "llmemo SemanticCache.alookup (exact probe + query)": lambda: cache.alookup(
                    query_prompt, LLM_STRING
                ),
                "llmemo SemanticCache.alookup, default RulesVerifier": lambda: (
                    cache_verified.alookup(query_prompt, LLM_STRING)
                ),
                "llmemo SemanticCache.alookup, default RulesVerifier, reworded prompt": lambda: (
                    cache_verified.alookup(reworded_prompt, LLM_STRING)
                ),
            },
            rounds,
            ops,
        )
    finally:
        await cache.aclear()
        if backend == "redisearch":
            await raw.execute_command("FT.DROPINDEX", f"{name}:v1:ix")
        await client.aclose()
        await raw.aclose()


def _store(client: Any, backend: str, name: str) -> Any:
    if backend == "redisearch":
        from llmemo.stores.redis.search import RedisSearchVectorStore

        return RedisSearchVectorStore(client, name)
    from llmemo.stores.redis.vectorset import RedisVectorSetStore

    return RedisVectorSetStore(client, name)


def versions() -> str:
    from importlib.metadata import version

    names = ["llmemo", "redis", "hiredis", "langchain-core", "numpy"]
    return ", ".join(f"{n} {version(n)}" for n in names)


def run(url: str, sizes: list[int], rounds: int, ops: int, out: Path | None) -> str:
    def progress(message: str) -> None:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()

    progress("exact, async ...")
    sections = [
        table(
            "Exact hit, async", asyncio.run(exact_async(url, rounds, ops)), "raw redis.asyncio GET"
        )
    ]
    progress("exact, sync ...")
    sections.append(
        table("Exact hit, sync", exact_sync(url, rounds, ops), "raw redis-py GET (sync)")
    )
    for backend in ("redisearch", "vectorset"):
        for size in sizes:
            progress(f"semantic, {backend}, {size:,} entries ...")
            series = asyncio.run(semantic(url, backend, size, rounds, ops, progress))
            floor = next(iter(series))
            sections.append(
                table(
                    f"Semantic hit, {backend} (HNSW), {size:,} entries, embedding excluded",
                    series,
                    floor,
                )
            )
    header = (
        f"### llmemo hits vs the Redis floor — {time.strftime('%Y-%m-%d %H:%M')}\n\n"
        f"Machine: {platform.node()}, {platform.machine()}, Python {platform.python_version()}; "
        f"{versions()}.\nRounds: {rounds} x {ops} operations per variant, interleaved.\n"
    )
    report = header + "\n" + "\n".join(sections)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report)
    return report
