"""FLOAT32 against FLOAT16 vectors on RediSearch, in one run: memory per entry, hits, and
the latency of the same near-duplicate lookups.

Why: issue 6 asks for semantic entries at <= 0.4x langchain-redis' memory; issue 3 made
FLOAT32 the default vector type, whose two copies of each vector (the hash field and the
index's own) already take ~0.36x of langchain-redis' bytes at 384 dimensions. This mode
puts numbers on the alternative.

Both caches are ``RedisSemanticCache`` drop-ins with llmemo's defaults (HNSW,
``EF_RUNTIME 100``, threshold only as in the suite), differing only in ``dtype``; both
are loaded through ``aupdate`` with the suite's corpus (random 384-dimension unit vectors,
a 500-character ``ChatGeneration`` under a realistic ``llm_string``). Memory: the
server's ``used_memory`` delta per entry. Lookups: the suite's near-duplicate queries
(cosine distance ~0.01 from their entry), each a prompt never seen before, interleaved
with the raw ``FT.SEARCH`` KNN 1 (``EF_RUNTIME 100``, the query in the index's own type)
in a shuffled order; hits are counted over every lookup, warm-up included (a miss is
HNSW's approximation: the entry was not reached at this search breadth).
"""

from __future__ import annotations

import asyncio
import itertools
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import _contenders as C
from benchmarks._embedders import DIMENSION
from benchmarks._measure import Series, measure_async, table
from benchmarks._probes import used_memory, wait_indexed

TYPES = ("FLOAT32", "FLOAT16")
_NUMPY_TYPES = {"FLOAT32": "<f4", "FLOAT16": "<f2"}
# Distinct entries the lookups ask about (cycled): enough that no one entry's graph
# neighbourhood dominates, few enough to stay in the corpus at --quick sizes.
_TARGETS = 300


def _progress(message: str) -> None:
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


async def measure(
    url: str, size: int, rounds: int, ops: int
) -> tuple[dict[str, Series], dict[str, dict[str, float]]]:
    """Load one cache per vector type, then measure; return the latency series and, per
    type, ``bytes_per_entry``, ``load_seconds``, ``hits`` and ``lookups``."""
    import redis
    import redis.asyncio as aioredis

    corpus = C.Corpus(size)
    raw = aioredis.Redis.from_url(url)
    admin = redis.Redis.from_url(url)
    caches: dict[str, C.Semantic] = {}
    facts: dict[str, dict[str, float]] = {}
    try:
        for dtype in TYPES:
            namespace = C.namespace(f"dtype-{dtype.lower()}")
            cache = C.llmemo_redis(
                url, corpus, namespace, "redisearch", label=dtype, floor=None, dtype=dtype
            )
            caches[dtype] = cache
            before = used_memory(admin)
            started = time.perf_counter()
            assert cache.load is not None
            await cache.load(0, size)
            await wait_indexed(raw, C.llmemo_index(namespace))
            seconds = time.perf_counter() - started
            facts[dtype] = {
                "bytes_per_entry": (used_memory(admin) - before) / size,
                "load_seconds": seconds,
                "hits": 0,
                "lookups": 0,
            }
            _progress(f"loaded {dtype}: {size:,} entries in {seconds:.0f} s")

        targets = [
            int(t) for t in np.random.default_rng(3).choice(size, min(size, _TARGETS), False)
        ]
        serials = itertools.count(1)
        variants: dict[str, Any] = {}
        for dtype, cache in caches.items():
            namespace = cache.extra["namespace"]
            partition = C.llmemo_partition(namespace, corpus.prompts.query(0, 0))
            commands = itertools.cycle(
                [
                    C.knn_args(
                        C.llmemo_index(namespace),
                        np.asarray(
                            corpus.embeddings.query_vector(t), dtype=_NUMPY_TYPES[dtype]
                        ).tobytes(),
                        partition=partition,
                        returned="payload",
                        ef_runtime=100,
                    )
                    for t in targets
                ]
            )
            variants[f"raw FT.SEARCH KNN EF_RUNTIME 100, {dtype} index"] = (
                lambda commands=commands: raw.execute_command(*next(commands))
            )
            variants[f"llmemo RedisSemanticCache, dtype={dtype}"] = _counting_lookup(
                cache, corpus, targets, serials, facts[dtype]
            )
        _progress(f"measuring: {rounds} rounds x {ops} operations per variant ...")
        series = await measure_async(variants, rounds, ops)
        return series, facts
    finally:
        for cache in caches.values():
            await cache.close()
        await raw.aclose()
        admin.close()


def _counting_lookup(
    cache: C.Semantic,
    corpus: C.Corpus,
    targets: list[int],
    serials: itertools.count[int],
    facts: dict[str, float],
) -> Any:
    """A lookup of a new prompt about the next target that counts its hits in ``facts``."""
    cycle = itertools.cycle(targets)

    async def lookup() -> Any:
        hit = await cache.lookup(corpus.prompts.query(next(cycle), next(serials)))
        facts["lookups"] += 1
        facts["hits"] += hit is not None
        return hit

    return lookup


def report(
    size: int,
    rounds: int,
    ops: int,
    series: dict[str, Series],
    facts: dict[str, dict[str, float]],
    command: str,
) -> str:
    """The Markdown report: memory and hits per type, then the latency table."""
    base = facts["FLOAT32"]["bytes_per_entry"]
    lines = [
        f"### FLOAT32 vs FLOAT16 vectors on RediSearch — {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        f"Command: `{command}`. Machine: {platform.node()}, {platform.machine()}, "
        f"Python {platform.python_version()}; {size:,} entries of {DIMENSION} dimensions "
        f"per index; {rounds} x {ops} operations per variant, interleaved in a shuffled "
        "order.",
        "",
        "| dtype | bytes/entry | x FLOAT32 | hits (new near-duplicate prompts) | load s |",
        "|---|---:|---:|---:|---:|",
    ]
    for dtype, fact in facts.items():
        lookups = int(fact["lookups"])
        share = fact["hits"] / lookups if lookups else 0.0
        lines.append(
            f"| {dtype} | {fact['bytes_per_entry']:,.0f} | "
            f"{fact['bytes_per_entry'] / base:.2f}x | {int(fact['hits']):,} / {lookups:,} "
            f"({share:.1%}) | {fact['load_seconds']:.0f} |"
        )
    floor = next(iter(series))
    latency = table("Lookup latency, embedding excluded", series, floor)
    return "\n".join(lines) + "\n\n" + latency


def run(url: str, size: int, rounds: int, ops: int, out: Path | None, command: str) -> str:
    """Measure and report; write the report to ``out`` when given."""
    series, facts = asyncio.run(measure(url, size, rounds, ops))
    text = report(size, rounds, ops, series, facts, command)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return text
