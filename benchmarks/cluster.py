"""Cache hits on a Redis Cluster against the raw cluster floor, in one run.

``python -m benchmarks cluster`` starts a throwaway 3-primary cluster (RediSearch loaded in
every node, as the tests do) unless ``--redis-url`` names a node of one.

* exact, async: llmemo ``RedisCache.alookup`` (LangChain face, ``cluster=True``) and
  ``ExactCache.alookup`` (core) vs a raw ``redis.asyncio`` ``RedisCluster`` GET of the same
  stored bytes; the prompts' keys cover all three shards and each variant cycles over them;
* exact, sync: ``RedisCache.lookup`` (a sync ``RedisCluster``) vs a raw sync cluster GET;
* semantic, embedding excluded, entries in partitions covering all three shards, each
  variant cycling over the partitions:

  - RediSearch: floor = the raw ``FT.SEARCH`` KNN sent to the primary owning the
    partition (distances only: RediSearch 2.10 without a coordinator cannot return the
    payloads of documents outside its index name's slot); llmemo's search is one
    ``EVALSHA`` on that primary (the same KNN plus ``HGET`` of the payload);
  - vector sets: floor = raw ``VSIM`` (routed by its key); llmemo's search is one
    ``EVALSHA`` (``VSIM`` + ``GET`` of the payloads).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import _contenders as C
from benchmarks._measure import Series, measure_async, measure_sync, table
from benchmarks.hits import (
    DIMENSION,
    LLM_STRING,
    PrecomputedEmbedder,
    _unit_rows,
    chat_payload,
    versions,
)

HERE = Path(__file__).resolve().parent
#: Partitions (model configurations) per shard in the semantic runs.
PARTITIONS_PER_SHARD = 2
#: Prompts in the exact runs (their keys spread over every shard).
EXACT_PROMPTS = 30


@contextlib.contextmanager
def cluster_url(given: str | None) -> Iterator[str]:
    """``given`` (a node of a cluster), or a throwaway 3-primary cluster's first node."""
    if given:
        yield given
        return
    sys.path.insert(0, str(HERE.parent / "tests"))
    from redis_server import RedisClusterServer

    with RedisClusterServer(masters=3, modules=True) as cluster:
        yield cluster.url


async def exact_async(url: str, rounds: int, ops: int) -> dict[str, Series]:
    from redis.asyncio.cluster import RedisCluster

    from llmemo import ExactCache
    from llmemo.langchain import RedisCache
    from llmemo.stores.redis.keystore import RedisKeyStore

    prompts = [f"What is the capital of country {i}?" for i in range(EXACT_PROMPTS)]
    cache = RedisCache(url, prefix="bench-cx", cluster=True)
    raw = RedisCluster.from_url(url)
    await raw.initialize()
    core_client = RedisCluster.from_url(url)
    core = ExactCache(RedisKeyStore(core_client), namespace="bench-cx")
    for prompt in prompts:
        await core.aupdate(prompt, LLM_STRING, chat_payload())
    keys = [core.key(prompt, LLM_STRING) for prompt in prompts]
    shards = {raw.get_node_from_key(key).name for key in keys}
    assert len(shards) == 3, shards
    assert all([await raw.get(key) for key in keys])
    assert await cache.alookup(prompts[0], LLM_STRING) is not None
    raw_keys, core_prompts, lc_prompts = (itertools.cycle(x) for x in (keys, prompts, prompts))
    try:
        return await measure_async(
            {
                "raw RedisCluster GET (asyncio)": lambda: raw.get(next(raw_keys)),
                "llmemo ExactCache.alookup (core)": lambda: core.alookup(
                    next(core_prompts), LLM_STRING
                ),
                "llmemo RedisCache.alookup (LangChain)": lambda: cache.alookup(
                    next(lc_prompts), LLM_STRING
                ),
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

    from llmemo import ExactCache, MemoryKeyStore
    from llmemo.langchain import RedisCache

    prompts = [f"What is the capital of country {i}?" for i in range(EXACT_PROMPTS)]
    cache = RedisCache(url, prefix="bench-cxs", cluster=True)
    for prompt in prompts:
        cache.update(prompt, LLM_STRING, chat_payload())
    namer = ExactCache(MemoryKeyStore(), namespace="bench-cxs")
    keys = [namer.key(prompt, LLM_STRING) for prompt in prompts]
    raw = redis.RedisCluster.from_url(url)
    assert all(raw.get(key) for key in keys)
    raw_keys, lc_prompts = itertools.cycle(keys), itertools.cycle(prompts)
    try:
        return measure_sync(
            {
                "raw RedisCluster GET (sync)": lambda: raw.get(next(raw_keys)),
                "llmemo RedisCache.lookup (sync)": lambda: cache.lookup(
                    next(lc_prompts), LLM_STRING
                ),
            },
            rounds,
            ops,
        )
    finally:
        cache.clear()
        raw.close()


async def semantic(
    url: str, backend: str, size: int, rounds: int, ops: int, progress: Any
) -> dict[str, Series]:
    from redis.asyncio.cluster import RedisCluster

    from llmemo import SemanticCache, keys, text
    from llmemo.policy import FailurePolicy
    from llmemo.stores.redis.search import RedisSearchVectorStore
    from llmemo.stores.redis.vectorset import RedisVectorSetStore

    name = f"bench-cs-{backend}-{size}"
    client = RedisCluster.from_url(url)
    raw = RedisCluster.from_url(url)
    await raw.initialize()
    store: Any = (
        RedisSearchVectorStore(client, name)
        if backend == "redisearch"
        else RedisVectorSetStore(client, name)
    )
    embedder = PrecomputedEmbedder()
    cache = SemanticCache(store, embedder, namespace=name, distance_threshold=0.2, verifier=None)
    # Loading is not measured: a generous budget, and errors raise (no silent gaps).
    loader = SemanticCache(
        store,
        embedder,
        namespace=name,
        distance_threshold=0.2,
        verifier=None,
        policy=FailurePolicy(errors="raise", operation_timeout=30.0),
    )
    cache_no_probe = SemanticCache(
        store, embedder, namespace=name, distance_threshold=0.2, exact_first=False, verifier=None
    )
    # Model configurations whose partitions cover every shard, PARTITIONS_PER_SHARD each.
    by_shard: dict[str, list[str]] = {}
    for i in itertools.count():
        llm = f"{LLM_STRING}#{i}"
        node = raw.get_node_from_key(f"{{{keys.partition_id(name, llm)}}}").name
        if len(by_shard.setdefault(node, [])) < PARTITIONS_PER_SHARD:
            by_shard[node].append(llm)
        if len(by_shard) == 3 and all(len(v) == PARTITIONS_PER_SHARD for v in by_shard.values()):
            break
    llms = [llm for group in by_shard.values() for llm in group]
    per_partition = max(1, size // len(llms))
    vectors = _unit_rows(per_partition, seed=size)
    payload = chat_payload()
    started = time.monotonic()
    for i in range(per_partition):
        embedder.vectors[f"prompt {i}"] = vectors[i].tolist()
    for llm in llms:
        for start in range(0, per_partition, 64):
            batch = range(start, min(per_partition, start + 64))
            await asyncio.gather(*(loader.aupdate(f"prompt {i}", llm, payload) for i in batch))
    loaded = per_partition * len(llms)
    elapsed = time.monotonic() - started
    progress(f"  loaded {loaded:,} entries in {len(llms)} partitions in {elapsed:.1f} s")

    target = per_partition // 2
    noise = np.random.default_rng(1).normal(size=DIMENSION).astype(np.float32)
    query = vectors[target] + 0.15 * noise / np.linalg.norm(noise)
    query_prompt = "a paraphrase of prompt target"
    embedder.vectors[query_prompt] = query.tolist()
    blob = query.astype(np.float32).tobytes()
    index_blob = C.index_blob(query)  # RediSearch: in the index's type (llmemo's default)
    context = text.split_prompt(query_prompt).context
    partitions = [keys.partition_id(name, llm, context) for llm in llms]
    for llm in llms:
        hit = await cache.alookup(query_prompt, llm)
        assert hit is not None and hit.kind == "semantic", hit

    raw_calls: list[Any] = []
    for partition in partitions:
        if backend == "redisearch":
            node = raw.get_node_from_key(f"{{{partition}}}")
            # The store's index on that primary: "<name>:v1:ix:{<tag>}" (see search.py).
            names = await raw.execute_command("FT._LIST", target_nodes=node)
            [index] = [n for n in map(bytes.decode, names) if n.startswith(f"{name}:v1:ix:")]
            args = (
                "FT.SEARCH", index, "(@partition:{$p})=>[KNN 1 @vec $blob AS dist]",
                "PARAMS", 4, "p", partition, "blob", index_blob,
                "RETURN", 1, "dist", "SORTBY", "dist", "LIMIT", 0, 1, "DIALECT", 2,
            )  # fmt: skip
            raw_calls.append((args, {"target_nodes": node}))
        else:
            args = ("VSIM", f"{name}:v1:vs:{{{partition}}}", "FP32", blob, "WITHSCORES", "COUNT", 1)
            raw_calls.append((args, {}))
    floor = (
        "raw FT.SEARCH KNN on the owning primary (distances only)"
        if backend == "redisearch"
        else "raw VSIM (no payload)"
    )
    for args, kwargs in raw_calls:
        assert await raw.execute_command(*args, **kwargs)
    cycles = [itertools.cycle(range(len(llms))) for _ in range(4)]

    def raw_op() -> Any:
        args, kwargs = raw_calls[next(cycles[0])]
        return raw.execute_command(*args, **kwargs)

    try:
        return await measure_async(
            {
                floor: raw_op,
                "llmemo store.search (vector query + payload)": lambda: store.search(
                    partitions[next(cycles[1])], query, k=1, max_distance=0.2
                ),
                "llmemo SemanticCache.alookup, exact_first=False": lambda: cache_no_probe.alookup(
                    query_prompt, llms[next(cycles[2])]
                ),
                "llmemo SemanticCache.alookup (exact probe + query)": lambda: cache.alookup(
                    query_prompt, llms[next(cycles[3])]
                ),
            },
            rounds,
            ops,
        )
    finally:
        await cache.aclear()
        if backend == "redisearch":
            await store.drop_index()
        await client.aclose()
        await raw.aclose()


def run(url: str, sizes: list[int], rounds: int, ops: int, out: Path | None) -> str:
    """Measure everything on the cluster at ``url``; return (and write to ``out``) Markdown."""

    def progress(message: str) -> None:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()

    progress("cluster: exact, async ...")
    sections = [
        table(
            "Cluster: exact hit, async (keys on all three shards)",
            asyncio.run(exact_async(url, rounds, ops)),
            "raw RedisCluster GET (asyncio)",
        )
    ]
    progress("cluster: exact, sync ...")
    sections.append(
        table(
            "Cluster: exact hit, sync (keys on all three shards)",
            exact_sync(url, rounds, ops),
            "raw RedisCluster GET (sync)",
        )
    )
    for backend in ("redisearch", "vectorset"):
        for size in sizes:
            progress(f"cluster: semantic, {backend}, {size:,} entries ...")
            series = asyncio.run(semantic(url, backend, size, rounds, ops, progress))
            sections.append(
                table(
                    f"Cluster: semantic hit, {backend} (HNSW), {size:,} entries in "
                    f"{3 * PARTITIONS_PER_SHARD} partitions over 3 shards, embedding excluded",
                    series,
                    next(iter(series)),
                )
            )
    header = (
        f"### llmemo hits on a 3-primary Redis Cluster vs the raw cluster floor — "
        f"{time.strftime('%Y-%m-%d %H:%M')}\n\n"
        f"Machine: {platform.node()}, {platform.machine()}, Python {platform.python_version()}; "
        f"{versions()}.\nRounds: {rounds} x {ops} operations per variant, interleaved; each "
        "variant cycles over keys / partitions on all three shards.\n"
    )
    report = header + "\n" + "\n".join(sections)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report)
    return report
