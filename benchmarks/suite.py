"""``python -m benchmarks all``: llmemo against every alternative and the Redis floor, in one run.

Sections, in the order they run (each interleaves its variants round by round, and gives
every figure as a ratio to a floor measured in the same rounds):

1. exact: raw GET / SET PX floors (async and sync) and redis-benchmark; llmemo
   ``RedisCache`` and ``InMemoryCache``; langchain-redis ``RedisCache`` (sync, and its
   executor-based async); langchain-core ``InMemoryCache``; GPTCache's exact map — hits,
   misses, updates; throughput with 1/16/64 tasks; round trips and server time; memory per
   entry;
2. semantic, embedding excluded, at each size (entries added incrementally): llmemo on
   RediSearch HNSW and FLAT, on vector sets, in memory; langchain-redis
   ``RedisSemanticCache``; redisvl ``SemanticCache``; GPTCache sqlite+faiss; raw
   ``FT.SEARCH`` KNN and ``VSIM`` on the same indexes; load rates and memory per entry;
   throughput; round trips;
3. the same hits with a realistic embedder: a fixed sleep (an embedding API), and the real
   all-MiniLM-L6-v2 when installed;
4. ``import`` time of each library (fresh interpreters).

The payload is a ``ChatGeneration`` with a 500-character ``AIMessage`` (see
``benchmarks.hits.chat_payload``), the prompt LangChain's ``dumps`` of a system message and
one user turn, the ``llm_string`` that of a ChatOpenAI model. Every cache has a 1-hour TTL
(GPTCache has none).
"""

from __future__ import annotations

import asyncio
import itertools
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import _contenders as C
from benchmarks._embedders import ChatPrompts
from benchmarks._measure import (
    Row,
    Series,
    measure_async,
    measure_sync,
    measure_throughput,
    rows,
    rows_table,
)
from benchmarks._probes import (
    RoundTrips,
    commandstats,
    import_times,
    redis_benchmark,
    redis_benchmark_path,
    server_usec,
    stats_delta,
    used_memory,
    wait_indexed,
)
from benchmarks.hits import LLM_STRING, chat_payload

RAW_GET = "raw redis.asyncio GET"
RAW_GET_SYNC = "raw redis-py GET (sync)"
EMBED_DELAY_SECONDS = 0.020
#: HNSW search breadth of the LangChain drop-in's default (``RedisSemanticCache``), which
#: its floors use too; ``F_HNSW`` is the same query at RediSearch's default (10).
#: (Checked against llmemo's constant when the contenders are built: llmemo is imported
#: late, so that import times are measured on a cold interpreter.)
EF_RUNTIME = 100
CONCURRENCY = [1, 16, 64]
IMPORT_MODULES = [
    "llmemo",
    "llmemo.langchain",
    "langchain_core.caches",
    "langchain_redis",
    "redisvl.extensions.cache.llm",
    "gptcache.adapter.api",
    "redis",
]


HNSW = "llmemo RediSearch HNSW"
FLAT = "llmemo RediSearch FLAT"
VSET = "llmemo vector set"
MEM = "llmemo in memory"
LCR = "langchain-redis RedisSemanticCache"
RVL = "redisvl SemanticCache"
GPT = "GPTCache sqlite+faiss"
F_HNSW = "raw FT.SEARCH KNN (server default EF_RUNTIME), llmemo HNSW index"
F_HNSW_EF = f"raw FT.SEARCH KNN EF_RUNTIME {EF_RUNTIME}, llmemo HNSW index"
HNSW_EF = f"llmemo RediSearch HNSW, ef_runtime={EF_RUNTIME} (core API)"
F_FLAT = "raw FT.SEARCH KNN, llmemo FLAT index"
RAW_SET_SAME = "raw SET PX, llmemo's bytes under a 64-hex key"
RAW_SET_JSON = "raw SET PX, LangChain JSON under a 64-hex key"
F_VSIM = f"raw VSIM EF {EF_RUNTIME} NOTHREAD, llmemo vector set (no payload)"
F_VSIM_THREADED = f"raw VSIM EF {EF_RUNTIME} (threaded, Redis default), same set"
F_LCR = "raw FT.SEARCH KNN, langchain-redis index"
F_RVL = "raw FT.SEARCH KNN, redisvl index"


@dataclass
class Settings:
    """What one run measures (``--quick`` shrinks every count)."""

    url: str
    sizes: list[int]
    rounds: int
    ops: int
    quick: bool
    command: str
    throughput_ops: int = 2000
    memory_entries: int = 5000
    import_runs: int = 5
    minilm_entries: int = 300

    @classmethod
    def make(
        cls, url: str, *, quick: bool, sizes: list[int], rounds: int, ops: int, command: str
    ) -> Settings:
        if quick:
            return cls(url, [100, 300], 1, 20, True, command, 128, 200, 1, 50)
        return cls(url, sizes, rounds, ops, False, command)

    def semantic_ops(self, size: int) -> int:
        """Fewer operations per round where one query scans many entries (FLAT, faiss)."""
        if self.quick:
            return self.ops
        return max(25, min(self.ops, int(self.ops * 3000 / max(size, 1))))


@dataclass
class Results:
    meta: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    tables: list[dict[str, Any]] = field(default_factory=list)
    semantic_latency: dict[str, dict[int, float]] = field(default_factory=dict)
    semantic_x_floor: dict[str, dict[int, float]] = field(default_factory=dict)
    loads: list[dict[str, Any]] = field(default_factory=list)
    throughput: dict[str, dict[str, dict[int, float]]] = field(default_factory=dict)
    throughput_served: dict[str, dict[str, dict[int, float]]] = field(default_factory=dict)
    round_trips: list[dict[str, Any]] = field(default_factory=list)
    memory: list[dict[str, Any]] = field(default_factory=list)
    imports: dict[str, dict[str, float]] = field(default_factory=dict)
    redis_benchmark: list[dict[str, Any]] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)
    markdown: list[str] = field(default_factory=list)

    def table(self, key: str, title: str, table_rows: list[Row], ref: str | None) -> None:
        self.tables.append({"id": key, "title": title, "rows": [asdict(r) for r in table_rows]})
        self.markdown.append(rows_table(title, table_rows, ref))

    def row(self, key: str, name: str) -> dict[str, Any] | None:
        for table in self.tables:
            if table["id"] == key:
                for item in table["rows"]:
                    if item["name"] == name:
                        return item  # type: ignore[no-any-return]
        return None


def progress(message: str) -> None:
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def _with_floors(series: dict[str, Series], floors: dict[str, str | None]) -> dict[str, Series]:
    for name, floor in floors.items():
        if name in series:
            series[name].floor = floor
    return series


def _exact_key(namespace: str, prompt: str) -> str:
    from llmemo import ExactCache, MemoryKeyStore

    return ExactCache(MemoryKeyStore(), namespace=namespace).key(prompt, LLM_STRING)


class Suite:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.r = Results()
        self.prompts = ChatPrompts()
        self.payload = chat_payload()
        self._watched: dict[str, tuple[Any, int]] = {}
        self._tallies: dict[str, list[int]] = {}
        self.has_lcr = not C.missing("langchain_redis")
        self.has_rvl = not C.missing("redisvl")
        self.has_gpt = not C.missing("gptcache")
        self.has_gpt_faiss = self.has_gpt and not C.missing("faiss", "sqlalchemy")
        for what, gone in (
            ("langchain-redis", C.missing("langchain_redis")),
            ("redisvl", C.missing("redisvl")),
            ("GPTCache", C.missing("gptcache")),
            ("GPTCache sqlite+faiss", [] if not self.has_gpt else C.missing("faiss", "sqlalchemy")),
        ):
            if gone:
                self.note(
                    f"{what} skipped: not installed ({', '.join(gone)}; "
                    "`pip install -e '.[bench]'`)"
                )

    def watch(self, name: str, cache: Any) -> None:
        """Track an llmemo cache's fail-open counters (see :meth:`check_failures`)."""
        self._watched[name] = (cache, C.failures(cache))

    def check_failures(self, where: str) -> None:
        """Note every fail-open event (timeouts, dropped writes, breaker skips) since the
        last check: a lookup that failed open is a fast miss, not a hit, and would flatter
        the figures."""
        for name, (cache, seen) in list(self._watched.items()):
            now = C.failures(cache)
            if now > seen:
                counts = {
                    k: v for k, v in cache.stats.as_dict().items() if k in C.FAILURE_COUNTERS and v
                }
                self.note(f"{name}: {now - seen} fail-open events during {where} (totals {counts})")
            self._watched[name] = (cache, now)

    def table(self, key: str, title: str, table_rows: list[Row], ref: str | None) -> None:
        self.r.table(key, title, table_rows, ref)
        self.check_failures(title)
        self.check_misses(title)

    def _after_warmup(self) -> None:
        self.check_failures("the warm-up burst of 64 tasks (connections opening), not timed")

    def note(self, text: str) -> None:
        self.r.notes.append(text)
        progress(f"note: {text}")

    # -- 1. exact --------------------------------------------------------------------

    def exact(self) -> None:
        import redis

        namespace = C.namespace("x")
        self.hit_prompt = self.prompts("What is the capital of France?")
        self.miss_prompt = self.prompts("A question nobody asked before")
        self.exact_ns = namespace
        self.exact_key = _exact_key(namespace, self.hit_prompt)
        progress("exact hits, async ...")
        asyncio.run(self._exact_async(namespace))
        progress("exact hits and updates, sync ...")
        self._exact_sync(namespace)
        progress("exact throughput (1/16/64 tasks) ...")
        asyncio.run(self._exact_throughput(namespace))
        progress("exact round trips and server time ...")
        self._exact_round_trips(namespace)
        progress("exact memory per entry ...")
        self._exact_memory()
        self._redis_benchmark()
        client = redis.Redis.from_url(self.s.url)
        client.delete(self.exact_key)
        client.close()

    def _exact_caches(self, namespace: str) -> dict[str, Any]:
        from langchain_core.caches import InMemoryCache as CoreInMemoryCache

        from llmemo.langchain import InMemoryCache, RedisCache

        caches: dict[str, Any] = {
            "llmemo": RedisCache(self.s.url, ttl=C.TTL_SECONDS, prefix=namespace),
            "llmemo-mem": InMemoryCache(ttl=C.TTL_SECONDS),
            "core-mem": CoreInMemoryCache(),
        }
        if self.has_lcr:
            from langchain_redis import RedisCache as LcrRedisCache

            caches["lcr"] = LcrRedisCache(
                redis_url=self.s.url, ttl=C.TTL_SECONDS, prefix=f"{namespace}-lcr"
            )
        if self.has_gpt:
            caches["gpt"] = C.GPTCacheExact()
        self.watch("llmemo RedisCache", caches["llmemo"])
        self.watch("llmemo InMemoryCache", caches["llmemo-mem"])
        for cache in caches.values():
            cache.update(self.hit_prompt, LLM_STRING, self.payload)
            assert cache.lookup(self.hit_prompt, LLM_STRING), cache
            assert cache.lookup(self.miss_prompt, LLM_STRING) is None, cache
        return caches

    def _close_exact(self, caches: dict[str, Any]) -> None:
        for name, cache in caches.items():
            if name in ("llmemo", "lcr"):
                cache.clear()
            if name == "llmemo":
                cache.close()
            if name == "lcr":
                cache.redis.close()

    async def _exact_async(self, namespace: str) -> None:
        import redis.asyncio as aioredis

        caches = self._exact_caches(namespace)
        raw = aioredis.Redis.from_url(self.s.url)
        await caches["llmemo"].aupdate(self.hit_prompt, LLM_STRING, self.payload)
        stored = await raw.get(self.exact_key)
        assert stored is not None
        self.r.meta["exact_payload_bytes"] = len(stored)
        hit, miss = self.hit_prompt, self.miss_prompt
        lookups: dict[str, Any] = {RAW_GET: lambda: raw.get(self.exact_key)}
        lookups["llmemo RedisCache.alookup hit"] = lambda: caches["llmemo"].alookup(hit, LLM_STRING)
        lookups["llmemo RedisCache.alookup miss"] = lambda: caches["llmemo"].alookup(
            miss, LLM_STRING
        )
        if "lcr" in caches:
            lookups["langchain-redis RedisCache.alookup hit (executor)"] = lambda: caches[
                "lcr"
            ].alookup(hit, LLM_STRING)
            lookups["langchain-redis RedisCache.alookup miss (executor)"] = lambda: caches[
                "lcr"
            ].alookup(miss, LLM_STRING)
        lookups["llmemo InMemoryCache.alookup hit"] = lambda: caches["llmemo-mem"].alookup(
            hit, LLM_STRING
        )
        lookups["langchain-core InMemoryCache.alookup hit"] = lambda: caches["core-mem"].alookup(
            hit, LLM_STRING
        )
        lookups = {
            n: self._tallied(n, op, is_async=True) if " hit" in n else op
            for n, op in lookups.items()
        }
        series = await measure_async(lookups, self.s.rounds, self.s.ops)
        _with_floors(series, {name: RAW_GET for name in lookups if name != RAW_GET})
        self.table("exact_async", "Exact lookup, async", rows(series), None)

        raw_set = "raw redis.asyncio SET PX"
        payload = self.payload
        updates: dict[str, Any] = {
            raw_set: lambda: raw.set(self.exact_key, stored, px=C.TTL_SECONDS * 1000)
        }
        updates["llmemo RedisCache.aupdate"] = lambda: caches["llmemo"].aupdate(
            hit, LLM_STRING, payload
        )
        if "lcr" in caches:
            updates["langchain-redis RedisCache.aupdate (executor)"] = lambda: caches[
                "lcr"
            ].aupdate(hit, LLM_STRING, payload)
        updates["llmemo InMemoryCache.aupdate"] = lambda: caches["llmemo-mem"].aupdate(
            hit, LLM_STRING, payload
        )
        updates["langchain-core InMemoryCache.aupdate"] = lambda: caches["core-mem"].aupdate(
            hit, LLM_STRING, payload
        )
        series = await measure_async(updates, self.s.rounds, max(10, self.s.ops // 2))
        _with_floors(series, {name: raw_set for name in updates if name != raw_set})
        self.table("exact_update_async", "Exact update, async", rows(series), None)
        await raw.aclose()
        for name in ("llmemo",):
            await caches[name].aclose()
        self._close_exact(caches)

    def _exact_sync(self, namespace: str) -> None:
        import redis

        caches = self._exact_caches(namespace)
        raw = redis.Redis.from_url(self.s.url)
        stored = raw.get(self.exact_key)
        assert stored is not None
        hit, miss, payload = self.hit_prompt, self.miss_prompt, self.payload
        labels = {
            "llmemo": "llmemo RedisCache",
            "lcr": "langchain-redis RedisCache",
            "llmemo-mem": "llmemo InMemoryCache",
            "core-mem": "langchain-core InMemoryCache",
            "gpt": "GPTCache exact map",
        }
        lookups: dict[str, Any] = {RAW_GET_SYNC: lambda: raw.get(self.exact_key)}
        updates: dict[str, Any] = {
            "raw redis-py SET PX (sync)": lambda: raw.set(
                self.exact_key, stored, px=C.TTL_SECONDS * 1000
            )
        }
        for key, cache in caches.items():
            label = labels[key]
            lookups[f"{label}.lookup hit"] = lambda c=cache: c.lookup(hit, LLM_STRING)
            if key in ("llmemo", "lcr", "gpt"):
                lookups[f"{label}.lookup miss"] = lambda c=cache: c.lookup(miss, LLM_STRING)
            updates[f"{label}.update"] = lambda c=cache: c.update(hit, LLM_STRING, payload)
        lookups = {
            n: self._tallied(n, op, is_async=False) if " hit" in n else op
            for n, op in lookups.items()
        }
        series = measure_sync(lookups, self.s.rounds, self.s.ops)
        _with_floors(series, {name: RAW_GET_SYNC for name in lookups if name != RAW_GET_SYNC})
        self.table("exact_sync", "Exact lookup, sync (no event loop)", rows(series), None)
        floor = "raw redis-py SET PX (sync)"
        series = measure_sync(updates, self.s.rounds, max(10, self.s.ops // 2))
        _with_floors(series, {name: floor for name in updates if name != floor})
        self.table("exact_update_sync", "Exact update, sync", rows(series), None)
        raw.close()
        self._close_exact(caches)

    async def _exact_throughput(self, namespace: str) -> None:
        import redis.asyncio as aioredis

        caches = self._exact_caches(namespace)
        raw = aioredis.Redis.from_url(self.s.url)
        await caches["llmemo"].aupdate(self.hit_prompt, LLM_STRING, self.payload)
        hit = self.hit_prompt
        variants: dict[str, Any] = {RAW_GET: lambda: raw.get(self.exact_key)}
        variants["llmemo RedisCache.alookup"] = lambda: caches["llmemo"].alookup(hit, LLM_STRING)
        if "lcr" in caches:
            variants["langchain-redis RedisCache.alookup (executor)"] = lambda: caches[
                "lcr"
            ].alookup(hit, LLM_STRING)
        variants["llmemo InMemoryCache.alookup"] = lambda: caches["llmemo-mem"].alookup(
            hit, LLM_STRING
        )
        variants["langchain-core InMemoryCache.alookup"] = lambda: caches["core-mem"].alookup(
            hit, LLM_STRING
        )
        total = {name: self.s.throughput_ops for name in variants}
        for name in variants:
            if "executor" in name:
                total[name] = max(CONCURRENCY[-1] * 2, self.s.throughput_ops // 3)
        await self._throughput(
            "exact hit", "Exact hit throughput", variants, max(2, self.s.rounds - 2), total, RAW_GET
        )
        await raw.aclose()
        await caches["llmemo"].aclose()
        self._close_exact(caches)

    async def _throughput(
        self,
        group: str,
        title: str,
        variants: dict[str, Any],
        rounds: int,
        total: Any,
        floor: str | None,
    ) -> None:
        """Measure, keep and tabulate throughput (each cell also says how many operations
        were served as hits when that is not all of them)."""
        served: dict[str, dict[int, float]] = {}
        result = await measure_throughput(
            variants, CONCURRENCY, rounds, total, self._after_warmup, served
        )
        self.r.throughput[group] = result
        self.r.throughput_served[group] = served
        for tally in self._tallies.values():  # `served` has these counts
            tally[0] = tally[1] = 0
        self.check_failures(title)
        for name, by_c in served.items():
            short = {c: share for c, share in by_c.items() if share < 0.995}
            if short:
                shares = ", ".join(f"{share:.0%} at {c} tasks" for c, share in short.items())
                self.note(f"{title}: {name} served hits for only {shares}")
        self.r.markdown.append(self._throughput_table(title, result, floor, served))

    def _throughput_table(
        self,
        title: str,
        result: dict[str, dict[int, float]],
        floor: str | None,
        served: dict[str, dict[int, float]] | None = None,
    ) -> str:
        head = "| variant | " + " | ".join(
            f"{c} task{'s' if c > 1 else ''} ops/s" for c in CONCURRENCY
        )
        rule = "|---|" + "---:|" * len(CONCURRENCY)
        if floor:
            head += " | " + " | ".join(f"x floor @{c}" for c in CONCURRENCY)
            rule += "---:|" * len(CONCURRENCY)
        lines = [f"#### {title}", "", head + " |", rule]

        def cell(name: str, c: int) -> str:
            share = (served or {}).get(name, {}).get(c, 1.0)
            hits = f" ({share:.0%} hits)" if share < 0.995 else ""
            return f"{result[name][c]:,.0f}{hits}"

        for name, by_c in result.items():
            line = f"| {name} | " + " | ".join(cell(name, c) for c in CONCURRENCY)
            if floor:
                base = result[floor]
                line += " | " + " | ".join(
                    "floor" if name == floor else f"{by_c[c] / base[c]:.2f}x" for c in CONCURRENCY
                )
            lines.append(line + " |")
        return "\n".join(lines) + "\n"

    def _stats_begin(self) -> tuple[Any, dict[str, tuple[int, float]]]:
        import redis

        admin = redis.Redis.from_url(self.s.url)
        before = commandstats(admin)
        self._counter.start()
        return admin, before

    def _stats_end(
        self, label: str, ops: int, admin: Any, before: dict[str, tuple[int, float]]
    ) -> None:
        counter = self._counter
        counter.stop()
        delta = stats_delta(before, commandstats(admin))
        admin.close()
        sent = counter.commands
        self.r.round_trips.append(
            {
                "operation": label,
                "round_trips": counter.sends / ops,
                "commands_sent": {k: v / ops for k, v in sorted(sent.items())},
                "server_commands": {k: c / ops for k, (c, _) in sorted(delta.items())},
                "server_us": server_usec(delta, sent) / ops,
            }
        )

    def _count_sync(self, label: str, op: Callable[[], Any], ops: int) -> None:
        """Round trips (client sends), commands sent and server µs per call of ``op``."""
        for _ in range(3):
            op()
        admin, before = self._stats_begin()
        try:
            for _ in range(ops):
                op()
        finally:
            self._stats_end(label, ops, admin, before)

    async def _count_async(self, label: str, op: Callable[[], Any], ops: int) -> None:
        """:meth:`_count_sync` for a coroutine function, on the running loop."""
        for _ in range(3):
            await op()
        admin, before = self._stats_begin()
        try:
            for _ in range(ops):
                await op()
        finally:
            self._stats_end(label, ops, admin, before)

    def _exact_round_trips(self, namespace: str) -> None:
        self._counter = RoundTrips()
        asyncio.run(self._exact_round_trips_async(namespace))

    async def _exact_round_trips_async(self, namespace: str) -> None:
        import redis.asyncio as aioredis

        caches = self._exact_caches(namespace)
        raw = aioredis.Redis.from_url(self.s.url)
        stored = await raw.get(self.exact_key)
        hit, miss, payload = self.hit_prompt, self.miss_prompt, self.payload
        n = 20 if self.s.quick else 100
        px = C.TTL_SECONDS * 1000
        llmemo = caches["llmemo"]
        await self._count_async("raw GET", lambda: raw.get(self.exact_key), n)
        await self._count_async("raw SET PX", lambda: raw.set(self.exact_key, stored, px=px), n)
        await self._count_async(
            "llmemo exact hit (alookup)", lambda: llmemo.alookup(hit, LLM_STRING), n
        )
        await self._count_async(
            "llmemo exact miss (alookup)", lambda: llmemo.alookup(miss, LLM_STRING), n
        )
        await self._count_async(
            "llmemo exact write (aupdate)", lambda: llmemo.aupdate(hit, LLM_STRING, payload), n
        )
        self._count_sync(
            "llmemo exact hit (sync lookup)", lambda: llmemo.lookup(hit, LLM_STRING), n
        )
        self._count_sync(
            "llmemo exact write (sync update)", lambda: llmemo.update(hit, LLM_STRING, payload), n
        )
        if "lcr" in caches:
            lcr = caches["lcr"]
            self._count_sync(
                "langchain-redis exact hit (lookup)", lambda: lcr.lookup(hit, LLM_STRING), n
            )
            self._count_sync(
                "langchain-redis exact write (update)",
                lambda: lcr.update(hit, LLM_STRING, payload),
                n,
            )
        await llmemo.aclose()
        await raw.aclose()
        self._close_exact(caches)

    def _exact_memory(self) -> None:
        """Bytes per entry of ``count`` distinct answers (RedisJSON interns equal strings,
        so one payload repeated would flatter it), each cache through its own write path."""
        import hashlib

        import redis

        from llmemo.langchain import RedisCache

        count = self.s.memory_entries
        client = redis.Redis.from_url(self.s.url)
        payloads = [chat_payload(i) for i in range(count)]
        prompts = [
            self.prompts(f"What is the capital of country number {i}?") for i in range(count)
        ]
        namespace = C.namespace("xm")
        results: dict[str, dict[str, Any]] = {}

        def measure(name: str, write: Callable[[], None], sample_key: str | None) -> None:
            before = used_memory(client)
            started = time.perf_counter()
            write()
            seconds = time.perf_counter() - started
            after = used_memory(client)
            usage = client.memory_usage(sample_key) if sample_key else None
            results[name] = {
                "entries": count,
                "bytes_per_entry": (after - before) / count,
                "memory_usage_one_key": usage,
                "write_seconds": seconds,
            }

        def raw_write(keys: list[str], values: list[Any]) -> None:
            pipe = client.pipeline(transaction=False)
            for key, value in zip(keys, values, strict=True):
                pipe.set(key, value, px=C.TTL_SECONDS * 1000)
            pipe.execute()

        llmemo_ns = f"{namespace}-llmemo"
        llmemo = RedisCache(self.s.url, ttl=C.TTL_SECONDS, prefix=llmemo_ns)
        llmemo_keys = [_exact_key(llmemo_ns, p) for p in prompts]

        def llmemo_write() -> None:
            for prompt, payload in zip(prompts, payloads, strict=True):
                llmemo.update(prompt, LLM_STRING, payload)

        measure("llmemo RedisCache", llmemo_write, llmemo_keys[0])
        stored = client.mget(llmemo_keys)
        assert all(stored), "llmemo dropped writes while loading"
        hashed = [hashlib.sha256(p.encode()).hexdigest() for p in prompts]
        same_keys = [f"{namespace}-rb:{h}" for h in hashed]
        measure(RAW_SET_SAME, lambda: raw_write(same_keys, stored), same_keys[0])
        json_keys = [f"{namespace}-rj:{h}" for h in hashed]
        lc_json = [C.generations_json(p) for p in payloads]
        measure(RAW_SET_JSON, lambda: raw_write(json_keys, lc_json), json_keys[0])
        if self.has_lcr:
            from langchain_redis import RedisCache as LcrRedisCache

            lcr = LcrRedisCache(redis_url=self.s.url, ttl=C.TTL_SECONDS, prefix=f"{namespace}-lcr")

            def lcr_write() -> None:
                for prompt, payload in zip(prompts, payloads, strict=True):
                    lcr.update(prompt, LLM_STRING, payload)

            measure("langchain-redis RedisCache", lcr_write, lcr._key(prompts[0], LLM_STRING))
            lcr.clear()
            lcr.redis.close()
        llmemo.clear()
        llmemo.close()
        for keys in (same_keys, json_keys):
            for first in range(0, len(keys), 1000):
                client.unlink(*keys[first : first + 1000])
        client.close()
        floor = results[RAW_SET_SAME]["bytes_per_entry"]
        json_floor = results[RAW_SET_JSON]["bytes_per_entry"]
        for name in (RAW_SET_SAME, RAW_SET_JSON, "llmemo RedisCache", "langchain-redis RedisCache"):
            if name in results:
                item = results[name]
                item["x_floor"] = item["bytes_per_entry"] / floor
                item["x_json_floor"] = item["bytes_per_entry"] / json_floor
                self.r.memory.append({"section": "exact", "name": name, **item})
        self.r.meta["langchain_json_payload_bytes"] = len(lc_json[0])
        self.r.meta["exact_payload_bytes"] = len(stored[0])

    def _redis_benchmark(self) -> None:
        import redis

        path = redis_benchmark_path()
        if path is None:
            self.note("redis-benchmark not found on PATH: its floor is left out")
            return
        client = redis.Redis.from_url(self.s.url)
        from llmemo.langchain import RedisCache

        cache = RedisCache(self.s.url, ttl=C.TTL_SECONDS, prefix=self.exact_ns)
        cache.update(self.hit_prompt, LLM_STRING, self.payload)
        requests = 2000 if self.s.quick else 20000
        for clients in (1, 64):
            result = redis_benchmark(path, self.s.url, self.exact_key, clients, requests)
            if result is None:
                self.note("redis-benchmark did not run against this URL (loopback redis:// only)")
                break
            self.r.redis_benchmark.append({"clients": clients, "requests": requests, **result})
        cache.clear()
        cache.close()
        client.close()

    # -- 2. semantic -------------------------------------------------------------------

    def semantic(self) -> None:
        self._counter = RoundTrips()
        asyncio.run(self._semantic())

    def _semantic_contenders(self, corpus: C.Corpus, ns: dict[str, str]) -> list[C.Semantic]:
        url = self.s.url
        from llmemo.adapters.langchain_redis import DEFAULT_EF_RUNTIME

        if EF_RUNTIME != DEFAULT_EF_RUNTIME:
            raise RuntimeError(f"EF_RUNTIME must follow llmemo's default, {DEFAULT_EF_RUNTIME}")
        out = [
            C.llmemo_redis(
                url, corpus, ns["hnsw"], "redisearch", "HNSW", label=HNSW, floor=F_HNSW_EF
            ),
            C.llmemo_redis(
                url,
                corpus,
                ns["hnsw"],
                "redisearch",
                "HNSW",
                label=f"{HNSW}, exact_first=False",
                floor=F_HNSW_EF,
                loader=False,
                exact_first=False,
            ),
            C.llmemo_core_hnsw(url, corpus, ns["hnsw"], EF_RUNTIME, label=HNSW_EF, floor=F_HNSW_EF),
            C.llmemo_redis(url, corpus, ns["flat"], "redisearch", "FLAT", label=FLAT, floor=F_FLAT),
            C.llmemo_redis(url, corpus, ns["vset"], "vectorset", label=VSET, floor=F_VSIM),
            C.llmemo_redis(
                url,
                corpus,
                ns["vset"],
                "vectorset",
                label=f"{VSET}, exact_first=False",
                floor=F_VSIM,
                loader=False,
                exact_first=False,
            ),
            C.llmemo_memory(corpus, MEM),
        ]
        builders: list[tuple[bool, str, Callable[[], C.Semantic]]] = [
            (self.has_lcr, LCR, lambda: C.langchain_redis(url, corpus, ns["lcr"], LCR, F_LCR)),
            (self.has_rvl, RVL, lambda: C.redisvl(url, corpus, ns["rvl"], RVL, F_RVL)),
            (
                self.has_gpt_faiss,
                GPT,
                lambda: C.gptcache_semantic(corpus, GPT, corpus.rows.shape[0] + 10),
            ),
        ]
        for present, name, build in builders:
            if present:
                try:
                    out.append(build())
                except Exception as exc:  # an alternative that fails to start is a note
                    self.note(f"{name} skipped: {type(exc).__name__}: {exc}")
        return out

    async def _semantic(self) -> None:
        import redis
        import redis.asyncio as aioredis

        sizes = self.s.sizes
        spare = 100 if self.s.quick else 1000
        corpus = C.Corpus(sizes[-1] + spare)
        self.spare_base = sizes[-1]
        ns = {k: C.namespace(f"s-{k}") for k in ("hnsw", "flat", "vset", "lcr", "rvl", "ref")}
        self.ns = ns
        contenders = self._semantic_contenders(corpus, ns)
        for c in contenders:
            if c.library == "llmemo":
                self.watch(c.name, c.extra["cache"])
        raw = aioredis.Redis.from_url(self.s.url)
        admin = redis.Redis.from_url(self.s.url)
        from llmemo.langchain import RedisCache

        ref = RedisCache(self.s.url, ttl=C.TTL_SECONDS, prefix=ns["ref"])
        await ref.aupdate(self.hit_prompt, LLM_STRING, self.payload)
        self.ref_key = _exact_key(ns["ref"], self.hit_prompt)
        memory: dict[str, int] = {c.name: 0 for c in contenders}
        loaded = 0
        try:
            for size in sizes:
                for c in contenders:
                    if c.load is None:
                        continue
                    before = used_memory(admin)
                    started = time.perf_counter()
                    await c.load(loaded, size)
                    if "index" in c.extra or c.name in (HNSW, FLAT):
                        index = c.extra.get("index") or C.llmemo_index(c.extra["namespace"])
                        await wait_indexed(raw, index)
                    seconds = time.perf_counter() - started
                    delta = used_memory(admin) - before
                    memory[c.name] += delta
                    self.r.loads.append(
                        {
                            "name": c.name,
                            "from": loaded,
                            "to": size,
                            "seconds": seconds,
                            "entries_per_s": (size - loaded) / seconds,
                            "bytes_per_entry": delta / (size - loaded) if c.on_redis else None,
                            "path": c.load_path,
                        }
                    )
                    progress(
                        f"  loaded {c.name}: {loaded:,} -> {size:,} in {seconds:.1f} s "
                        f"({(size - loaded) / seconds:,.0f}/s)"
                    )
                progress(f"semantic hits, {size:,} entries ...")
                await self._semantic_hits(size, contenders, corpus, raw)
                if size == sizes[0]:
                    progress(
                        f"semantic hits with a {EMBED_DELAY_SECONDS * 1000:.0f} ms embedder ..."
                    )
                    await self._semantic_sleep(size, contenders, corpus)
                    progress("semantic round trips and server time ...")
                    await self._semantic_round_trips(contenders, corpus)
                if size == self._throughput_size():
                    progress(f"semantic throughput at {size:,} entries ...")
                    await self._semantic_throughput(size, contenders, corpus, raw)
                loaded = size
        finally:
            for c in contenders:
                await c.close()
            await ref.aclear()
            await ref.aclose()
            await raw.aclose()
            admin.close()
        self._semantic_memory(contenders, memory, sizes[-1])

    def _throughput_size(self) -> int:
        sizes = self.s.sizes
        return 10_000 if 10_000 in sizes else sizes[0]

    def _floor_ops(
        self, corpus: C.Corpus, raw: Any, targets: list[int], size: int
    ) -> dict[str, Any]:
        """Raw vector queries on the contenders' own indexes, rotating over ``targets``:
        on llmemo's RediSearch indexes, the query llmemo sends (vectors of the index's
        type, llmemo's hybrid plan for a one-partition index of ``size`` entries)."""
        ns = self.ns
        blobs = [C.float32_blob(corpus.embeddings.query_vector(t)) for t in targets]
        index_blobs = [C.index_blob(corpus.embeddings.query_vector(t)) for t in targets]
        plan = C.llmemo_plan(size, size)
        any_query = corpus.prompts.query(targets[0], 0)

        def rotating(
            make: Callable[[bytes], tuple[Any, ...]], over: list[bytes] = blobs
        ) -> Callable[[], Any]:
            commands = [make(blob) for blob in over]
            cycle = itertools.cycle(commands)
            return lambda: raw.execute_command(*next(cycle))

        p_hnsw = C.llmemo_partition(ns["hnsw"], any_query)
        p_flat = C.llmemo_partition(ns["flat"], any_query)
        p_vset = C.llmemo_partition(ns["vset"], any_query)
        ops = {
            F_HNSW: rotating(
                lambda b: C.knn_args(
                    C.llmemo_index(ns["hnsw"]), b, partition=p_hnsw, returned="payload", plan=plan
                ),
                index_blobs,
            ),
            F_HNSW_EF: rotating(
                lambda b: C.knn_args(
                    C.llmemo_index(ns["hnsw"]),
                    b,
                    partition=p_hnsw,
                    returned="payload",
                    ef_runtime=EF_RUNTIME,
                    plan=plan,
                ),
                index_blobs,
            ),
            F_FLAT: rotating(
                lambda b: C.knn_args(
                    C.llmemo_index(ns["flat"]), b, partition=p_flat, returned="payload"
                ),
                index_blobs,
            ),
            F_VSIM: rotating(
                lambda b: C.vsim_args(f"{ns['vset']}:v1:vs:{{{p_vset}}}", b, ef=EF_RUNTIME)
            ),
            F_VSIM_THREADED: rotating(
                lambda b: C.vsim_args(
                    f"{ns['vset']}:v1:vs:{{{p_vset}}}", b, ef=EF_RUNTIME, threaded=True
                )
            ),
        }
        if self.has_lcr:
            ops[F_LCR] = rotating(
                lambda b: C.knn_args(ns["lcr"], b, partition=None, returned="response")
            )
        if self.has_rvl:
            ops[F_RVL] = rotating(
                lambda b: C.knn_args(ns["rvl"], b, partition=None, returned="response")
            )
        return ops

    def _lookup_op(
        self, c: C.Semantic, corpus: C.Corpus, targets: list[int], base: int
    ) -> Callable[[], Any]:
        """A hit per call, each with a new prompt text (no memo serves it twice)."""
        counter = itertools.count(base)
        tally = self._tallies.setdefault(c.name, [0, 0])

        async def op() -> Any:
            n = next(counter)
            result = await c.lookup(corpus.prompts.query(targets[n % len(targets)], n))
            tally[0] += not result
            tally[1] += 1
            return result

        return op

    def _tallied(self, name: str, op: Callable[[], Any], *, is_async: bool) -> Callable[[], Any]:
        """``op`` (a lookup expected to hit), counting the calls that missed."""
        tally = self._tallies.setdefault(name, [0, 0])

        async def counted_async() -> Any:
            result = await op()
            tally[0] += not result
            tally[1] += 1
            return result

        def counted() -> Any:
            result = op()
            tally[0] += not result
            tally[1] += 1
            return result

        return counted_async if is_async else counted

    def check_misses(self, where: str) -> None:
        """Note lookups that should have hit and missed (fail-open, or not found)."""
        for name, tally in self._tallies.items():
            if tally[0]:
                self.note(
                    f"{name}: {tally[0]} of {tally[1]} lookups missed during {where} "
                    "(its figures there include fast misses)"
                )
            tally[0] = tally[1] = 0

    def _targets(self) -> list[int]:
        first = self.s.sizes[0]
        return sorted({(k * 7919 + 13) % first for k in range(32)})

    async def _check_hits(
        self, contenders: list[C.Semantic], corpus: C.Corpus, size: int, what: str
    ) -> dict[str, float]:
        """Hit rate of each contender over the target queries (a miss is not measured
        silently: it is reported)."""
        rates = {}
        targets = self._targets()
        for c in contenders:
            found = 0
            for k, t in enumerate(targets):
                result = await c.lookup(corpus.prompts.query(t, 10_000_000 + k))
                found += bool(result)
            rates[c.name] = found / len(targets)
            if found < len(targets):
                self.note(
                    f"{c.name}: {found}/{len(targets)} hits on near-duplicate queries "
                    f"({what}, {size:,} entries)"
                )
        return rates

    async def _semantic_hits(
        self, size: int, contenders: list[C.Semantic], corpus: C.Corpus, raw: Any
    ) -> None:
        targets = self._targets()
        await self._check_hits(contenders, corpus, size, "embedding excluded")
        variants: dict[str, Any] = {RAW_GET: lambda: raw.get(self.ref_key)}
        variants.update(self._floor_ops(corpus, raw, targets, size))
        for k, c in enumerate(contenders):
            variants[c.name] = self._lookup_op(c, corpus, targets, 1_000_000 * (k + 1) + size)
        ordered = self._ordered(variants, contenders)
        series = await measure_async(ordered, self.s.rounds, self.s.semantic_ops(size), warmup=5)
        _with_floors(series, {c.name: c.floor for c in contenders})
        table_rows = rows(series, RAW_GET)
        self.table(
            f"semantic_{size}",
            f"Semantic hit, {size:,} entries, embedding excluded",
            table_rows,
            "GET",
        )
        for row in table_rows:
            self.r.semantic_latency.setdefault(row.name, {})[size] = row.median_us
            if row.x_floor is not None and row.floor:
                self.r.semantic_x_floor.setdefault(row.name, {})[size] = row.x_floor

    def _ordered(self, variants: dict[str, Any], contenders: list[C.Semantic]) -> dict[str, Any]:
        """Each floor right before the contenders measured against it, for the tables."""
        out = {RAW_GET: variants[RAW_GET]} if RAW_GET in variants else {}
        for c in contenders:
            if c.floor and c.floor in variants and c.floor not in out:
                out[c.floor] = variants[c.floor]
                if c.floor == F_VSIM and F_VSIM_THREADED in variants:
                    out[F_VSIM_THREADED] = variants[F_VSIM_THREADED]
            out[c.name] = variants[c.name]
        for name, op in variants.items():
            out.setdefault(name, op)
        return out

    async def _semantic_sleep(
        self, size: int, contenders: list[C.Semantic], corpus: C.Corpus
    ) -> None:
        targets = self._targets()
        delay = EMBED_DELAY_SECONDS
        corpus.embeddings.delay = delay
        floor = f"asyncio.sleep({delay * 1000:.0f} ms) alone"
        try:
            variants: dict[str, Any] = {floor: lambda: asyncio.sleep(delay)}
            for k, c in enumerate(contenders):
                variants[c.name] = self._lookup_op(c, corpus, targets, 50_000_000 * (k + 1))
            rounds = 1 if self.s.quick else 3
            ops = 5 if self.s.quick else 20
            series = await measure_async(variants, rounds, ops, warmup=2)
            _with_floors(series, {c.name: floor for c in contenders})
            self.table(
                "semantic_sleep",
                f"Semantic hit with a {delay * 1000:.0f} ms embedder (sleep), {size:,} entries",
                rows(series),
                None,
            )
            picks = [n for n in (HNSW, VSET, LCR, RVL) if n in variants]
            await self._throughput(
                "semantic hit, 20 ms embedder",
                f"Semantic hit throughput with a {delay * 1000:.0f} ms embedder, {size:,} entries",
                {n: variants[n] for n in picks},
                1 if self.s.quick else 3,
                lambda _name, c: 32 if c == 1 else 2 * c,  # 2 sleeps per task (bounded time)
                None,
            )
        finally:
            corpus.embeddings.delay = 0.0

    async def _semantic_throughput(
        self, size: int, contenders: list[C.Semantic], corpus: C.Corpus, raw: Any
    ) -> None:
        targets = self._targets()
        floors = self._floor_ops(corpus, raw, targets, size)
        by_name = {c.name: c for c in contenders}
        variants: dict[str, Any] = {}
        for name in (F_HNSW_EF, HNSW, f"{HNSW}, exact_first=False", F_VSIM, VSET, LCR, RVL):
            if name in floors:
                variants[name] = floors[name]
            elif name in by_name:
                variants[name] = self._lookup_op(by_name[name], corpus, targets, 70_000_000)
        total = 128 if self.s.quick else 640
        await self._throughput(
            f"semantic hit, {size:,} entries",
            f"Semantic hit throughput, {size:,} entries, embedding excluded "
            f"(x floor: to the raw HNSW FT.SEARCH, EF_RUNTIME {EF_RUNTIME})",
            variants,
            1 if self.s.quick else 3,
            total,
            F_HNSW_EF,
        )

    async def _semantic_round_trips(self, contenders: list[C.Semantic], corpus: C.Corpus) -> None:
        targets = self._targets()
        n = 10 if self.s.quick else 50
        by_name = {c.name: c for c in contenders}
        for name in (
            HNSW,
            f"{HNSW}, exact_first=False",
            FLAT,
            VSET,
            f"{VSET}, exact_first=False",
            LCR,
            RVL,
        ):
            if name in by_name:
                op = self._lookup_op(by_name[name], corpus, targets, 90_000_000)
                await self._count_async(f"{name}: semantic hit", op, n)
        spare = itertools.count(self.spare_base)
        payload = corpus.payload
        for name in (HNSW, VSET, LCR):
            if name not in by_name:
                continue
            cache = by_name[name].extra["cache"]

            def write(cache: Any = cache) -> Any:
                return cache.aupdate(corpus.stored(next(spare)), LLM_STRING, payload)

            await self._count_async(f"{name}: semantic write (aupdate)", write, n)
        if RVL in by_name:
            rvl = by_name[RVL].extra["cache"]

            def store() -> Any:
                i = next(spare)
                return rvl.astore(
                    prompt=corpus.stored(i),
                    response=corpus.payload_json,
                    vector=corpus.rows[i].tolist(),
                    metadata={"llm_string": LLM_STRING},
                )

            await self._count_async(f"{RVL}: semantic write (astore)", store, n)

    def _semantic_memory(
        self, contenders: list[C.Semantic], memory: dict[str, int], size: int
    ) -> None:
        per_entry = {
            c.name: memory[c.name] / size for c in contenders if c.on_redis and c.load is not None
        }
        base = per_entry.get(LCR)
        for name, value in per_entry.items():
            self.r.memory.append(
                {
                    "section": "semantic",
                    "name": name,
                    "entries": size,
                    "bytes_per_entry": value,
                    "x_langchain_redis": value / base if base else None,
                }
            )

    # -- 3. real model ---------------------------------------------------------------------

    def minilm(self) -> None:
        if self.s.quick:
            self.note("all-MiniLM-L6-v2 section skipped in --quick mode")
            return
        from benchmarks._embedders import minilm_embeddings

        progress("loading all-MiniLM-L6-v2 ...")
        model, why = minilm_embeddings()
        if model is None:
            self.note(f"all-MiniLM-L6-v2 section skipped: {why}")
            return
        self._counter = RoundTrips()
        asyncio.run(self._minilm(model))

    async def _minilm(self, model: Any) -> None:
        import numpy as np

        from benchmarks._embedders import query_text, stored_text

        n = self.s.minilm_entries
        started = time.perf_counter()
        turn_rows = np.asarray(
            model.embed_documents([stored_text(i) for i in range(n)]), dtype=np.float32
        )
        full_rows = np.asarray(
            model.embed_documents([self.prompts.stored(i) for i in range(n)]), dtype=np.float32
        )
        progress(f"  embedded {2 * n} texts in {time.perf_counter() - started:.1f} s")
        turn, full = C.Corpus(n, rows=turn_rows), C.Corpus(n, rows=full_rows)
        ns = {k: C.namespace(f"m-{k}") for k in ("hnsw", "vset", "lcr", "rvl")}
        url = self.s.url
        contenders = [
            C.llmemo_redis(url, turn, ns["hnsw"], "redisearch", "HNSW", label=HNSW, floor=None),
            C.llmemo_redis(url, turn, ns["vset"], "vectorset", label=VSET, floor=None),
            C.llmemo_memory(turn, MEM),
        ]
        if self.has_lcr:
            contenders.append(C.langchain_redis(url, full, ns["lcr"], LCR, None))
        if self.has_rvl:
            contenders.append(C.redisvl(url, full, ns["rvl"], RVL, None))
        if self.has_gpt_faiss:
            contenders.append(C.gptcache_semantic(full, GPT, n + 10))
        for c in contenders:
            if c.library == "llmemo":
                self.watch(f"{c.name} (MiniLM)", c.extra["cache"])
        try:
            for c in contenders:
                assert c.load is not None
                await c.load(0, n)
            turn.embeddings.model = full.embeddings.model = model
            self.targets_minilm = targets = list(range(0, n, max(1, n // 32)))[:32]
            # What each library embeds: llmemo the final user turn, the others the whole
            # serialized prompt (system message and JSON included).
            floor_turn = "MiniLM embed of the user turn alone (worker thread)"
            floor_full = "MiniLM embed of the whole serialized prompt alone (worker thread)"
            turn_text = query_text(0, 0)
            full_text = self.prompts.query(0, 0)
            variants: dict[str, Any] = {
                floor_turn: lambda: asyncio.to_thread(model.embed_query, turn_text),
                floor_full: lambda: asyncio.to_thread(model.embed_query, full_text),
            }
            hits = {}
            for k, c in enumerate(contenders):
                found = 0
                for j, t in enumerate(targets[:10]):
                    found += bool(await c.lookup(self.prompts.query(t, 20_000_000 + j)))
                hits[c.name] = found / len(targets[:10])
                corpus = turn if c.library == "llmemo" else full
                variants[c.name] = self._lookup_op(c, corpus, targets, 30_000_000 * (k + 1))
            series = await measure_async(variants, 3, 15, warmup=2)
            _with_floors(
                series,
                {c.name: floor_turn if c.library == "llmemo" else floor_full for c in contenders},
            )
            self.table(
                "semantic_minilm",
                f"Semantic lookup with the real all-MiniLM-L6-v2 embedding (CPU), {n:,} entries",
                rows(series),
                None,
            )
            self.r.meta["minilm_hit_rates"] = hits
            self.r.markdown.append(
                "Hit rate on those queries: "
                + ", ".join(f"{name} {rate:.0%}" for name, rate in hits.items())
                + " (llmemo embeds the user turn; the others the whole serialized prompt).\n"
            )
        finally:
            turn.embeddings.model = full.embeddings.model = None
            for c in contenders:
                await c.close()

    # -- 4. imports ----------------------------------------------------------------------

    def imports(self) -> None:
        progress("import times (fresh interpreters) ...")
        modules = [m for m in IMPORT_MODULES if C.has(m.split(".")[0])]
        self.r.imports = import_times(modules, self.s.import_runs)

    # -- targets -------------------------------------------------------------------------

    def targets(self) -> None:
        t = self.r.targets

        def add(
            target: str, limit: str, measured: float | None, held: bool | None, how: str
        ) -> None:
            t.append(
                {"target": target, "limit": limit, "measured": measured, "held": held, "how": how}
            )

        row = self.r.row("exact_async", "llmemo RedisCache.alookup hit")
        if row:
            add(
                "exact hit, async",
                "<= 1.3x raw async GET",
                row["x_floor"],
                row["x_floor"] <= 1.3,
                "median ratio",
            )
        row = self.r.row("exact_sync", "llmemo RedisCache.lookup hit")
        if row:
            add(
                "exact hit, sync",
                "<= 2x raw sync GET",
                row["x_floor"],
                row["x_floor"] <= 2.0,
                "median ratio",
            )
        tp = self.r.throughput.get("exact hit", {})
        if RAW_GET in tp and "llmemo RedisCache.alookup" in tp:
            ratio = tp["llmemo RedisCache.alookup"][64] / tp[RAW_GET][64]
            add(
                "exact hit throughput, 64 tasks",
                ">= 0.8x raw GET",
                ratio,
                ratio >= 0.8,
                "ops/s ratio",
            )
        largest = self.s.sizes[-1]
        for name in (
            HNSW,
            f"{HNSW}, exact_first=False",
            HNSW_EF,
            FLAT,
            VSET,
            f"{VSET}, exact_first=False",
        ):
            by_size = self.r.semantic_x_floor.get(name, {})
            if by_size:
                worst = max(by_size.values())
                sizes = ", ".join(f"{s:,}: {v:.2f}x" for s, v in sorted(by_size.items()))
                add(
                    f"semantic hit vs raw query, {name}",
                    "<= 1.3x raw FT.SEARCH/VSIM, same index",
                    worst,
                    worst <= 1.3,
                    f"worst over sizes ({sizes})",
                )
        lcr = self.r.semantic_latency.get(LCR, {}).get(largest)
        if lcr:
            for name in (HNSW, f"{HNSW}, exact_first=False", HNSW_EF, FLAT, VSET):
                mine = self.r.semantic_latency.get(name, {}).get(largest)
                if mine:
                    add(
                        f"{largest:,} entries: faster than langchain-redis, {name}",
                        ">= 10x",
                        lcr / mine,
                        lcr / mine >= 10,
                        "langchain-redis median / llmemo median",
                    )
        for item in self.r.memory:
            if item["section"] == "exact" and item["name"] == "llmemo RedisCache":
                x = item["x_floor"]
                add(
                    "memory per entry, exact",
                    "<= 1.3x raw SET of the payload",
                    x,
                    x <= 1.3,
                    f"{item['bytes_per_entry']:,.0f} B/entry; vs a raw SET of the same bytes "
                    f"(x {x:.2f}) and of LangChain's JSON (x {item['x_json_floor']:.2f})",
                )
            if (
                item["section"] == "semantic"
                and item["name"].startswith("llmemo")
                and item["x_langchain_redis"]
            ):
                x = item["x_langchain_redis"]
                add(
                    f"memory per entry, semantic, {item['name']}",
                    "<= 0.4x langchain-redis",
                    x,
                    x <= 0.4,
                    f"{item['bytes_per_entry']:,.0f} B/entry at {item['entries']:,}",
                )
        for item in self.r.round_trips:
            op = item["operation"]
            if op.startswith("llmemo"):
                if "miss" in op:
                    continue
                rt = item["round_trips"]
                add(f"round trips: {op}", "1", rt, rt <= 1.0 + 1e-9, "client socket writes per op")
        imp = self.r.imports.get("llmemo")
        if imp:
            ms = imp["importtime_ms"]
            add(
                "import llmemo",
                "<= 150 ms",
                ms,
                ms <= 150,
                f"-X importtime (wall: {imp['wall_ms']:.0f} ms)",
            )

    # -- the run ------------------------------------------------------------------------

    def run(self) -> Results:
        started = time.perf_counter()
        self.r.meta.update(
            {
                "date": time.strftime("%Y-%m-%d %H:%M"),
                "host": platform.node(),
                "machine": f"{platform.machine()}, {platform.processor() or '?'}, "
                f"{_cpu_count()} CPUs, {_memory_gb():.0f} GiB",
                "python": platform.python_version(),
                "command": self.s.command,
                "quick": self.s.quick,
                "sizes": self.s.sizes,
                "rounds": self.s.rounds,
                "ops": self.s.ops,
                "versions": C.versions(),
                "llmemo_source": _llmemo_source(),
                "redis_server": _server_info(self.s.url),
            }
        )
        self.exact()
        self.semantic()
        self.minilm()
        self.imports()
        self.targets()
        self.r.meta["duration_s"] = time.perf_counter() - started
        return self.r


def _llmemo_source() -> str:
    """Where the measured llmemo comes from: its directory, and the git commit (``+dirty``
    when its sources differ from it) when that directory is in a git work tree."""
    import subprocess

    import llmemo

    path = Path(llmemo.__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return str(path)
    return f"{path} (git {commit}{'+dirty' if dirty else ''})"


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def _memory_gb() -> float:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def _server_info(url: str) -> dict[str, Any]:
    import redis

    client = redis.Redis.from_url(url)
    try:
        info = client.info("server")
        modules = client.execute_command("MODULE", "LIST") or []
        names = []
        for entry in modules:
            item = (
                entry
                if isinstance(entry, dict)
                else dict(zip(entry[::2], entry[1::2], strict=False))
            )
            item = {(k.decode() if isinstance(k, bytes) else k): v for k, v in item.items()}
            name = item.get("name", b"")
            names.append(f"{name.decode() if isinstance(name, bytes) else name} {item.get('ver')}")
        return {"version": info.get("redis_version"), "modules": names}
    finally:
        client.close()


def run(settings: Settings, out_dir: Path | None, results_md: Path | None) -> str:
    """Run the suite; write the report files when ``out_dir`` is given; return Markdown."""
    import warnings

    from benchmarks import _report

    # langchain-core flags `loads` as beta on every call site that revives generations.
    warnings.filterwarnings("ignore", message=r".*`loads` is in beta")
    results = Suite(settings).run()
    return _report.write(results, out_dir, results_md)
