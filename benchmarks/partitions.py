"""Large partitions (``python -m benchmarks partitions``): semantic hits when one partition
holds the whole index, and in a small partition inside a large index, in one run.

The commonest deployment has one model, so one partition holds every entry, and every
vector query filters on it inside the query. At each size (default 20,000 and 100,000
entries, one partition) it measures, interleaved, embedding excluded (free
``IndexEmbeddings``), each lookup a new prompt text:

* llmemo ``RedisSemanticCache`` on RediSearch HNSW (defaults but ``verifier=None``: the
  cache machinery, as the alternatives) and on vector sets;
* langchain-redis ``RedisSemanticCache`` and redisvl ``SemanticCache`` on the same
  vectors (when the ``bench`` extra is installed);
* the raw floors: ``FT.SEARCH`` KNN on llmemo's index without any filter (the target's
  floor), the same with the partition filter as the server plans it and in batches, and
  ``VSIM`` on llmemo's vector set;

then, at the largest size only, a 100-entry partition (another model) inside the same
index: llmemo's lookup there against the raw filtered query on it. Near-duplicate
recall: of 300 near-duplicate queries spread over the partition, how many each cache
serves (and how many the raw query finds as its nearest row).
"""

from __future__ import annotations

import asyncio
import itertools
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import _contenders as C
from benchmarks._measure import Row, Series, measure_async, rows, rows_table
from benchmarks._probes import wait_indexed
from benchmarks.hits import LLM_STRING

EF_RUNTIME = 100
SMALL_ENTRIES = 100
RECALL_QUERIES = 300
#: Another model: its entries are another partition of the same index.
SMALL_LLM_STRING = LLM_STRING.replace("gpt-4o-mini", "gpt-4o-small-partition")

HNSW = "llmemo RedisSemanticCache, RediSearch HNSW"
VSET = "llmemo RedisSemanticCache, vector set"
LCR = "langchain-redis RedisSemanticCache"
RVL = "redisvl SemanticCache"
F_UNFILTERED = "raw FT.SEARCH KNN, no filter"
F_SERVER = "raw FT.SEARCH KNN, partition filter, server's plan"
F_BATCHES = "raw FT.SEARCH KNN, partition filter, HYBRID_POLICY BATCHES"
F_VSIM = "raw VSIM of the partition's set"
SMALL = "llmemo RedisSemanticCache, 100-entry partition"
#: Suffix of the rows whose prompts repeat (their parse and embedding memoised): the CEO's
#: 1.3x budget is for prompts seen before, 1.6x for new ones (embedding excluded).
SEEN = ", prompts seen before"
F_SMALL = "raw FT.SEARCH KNN, 100-entry partition filter, server's plan"


def progress(message: str) -> None:
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def knn(index: str, blob: bytes, partition: str | None, plan: str = "") -> tuple[Any, ...]:
    """The raw query llmemo's store sends (KNN 1, ``EF_RUNTIME``), optionally filtered."""
    where = "(@partition:{$p})" if partition is not None else "*"
    params: list[Any] = ["p", partition] if partition is not None else []
    return (
        "FT.SEARCH",
        index,
        f"{where}=>[KNN 1 @vec $blob EF_RUNTIME {EF_RUNTIME}{plan} AS dist]",
        "PARAMS",
        len(params) + 2,
        *params,
        "blob",
        blob,
        *("RETURN", 2, "payload", "dist", "SORTBY", "dist", "LIMIT", 0, 1, "DIALECT", 2),
    )


def partition_of(namespace: str, llm_string: str, corpus: C.Corpus) -> str:
    from llmemo import keys, text

    context = text.split_prompt(corpus.prompts.query(0, 0)).context
    return keys.partition_id(namespace, llm_string, context)


class Run:
    def __init__(self, url: str, sizes: list[int], rounds: int, ops: int) -> None:
        self.url, self.sizes, self.rounds, self.ops = url, sizes, rounds, ops
        self.corpus = C.Corpus(sizes[-1] + SMALL_ENTRIES)
        self.ns = {k: C.namespace(f"p-{k}") for k in ("hnsw", "vset", "lcr", "rvl")}
        self.tables: list[str] = []
        self.medians: dict[int, dict[str, float]] = {}
        self.recall: dict[int, dict[str, str]] = {}
        self.notes: list[str] = []

    def contenders(self) -> list[C.Semantic]:
        corpus, ns, url = self.corpus, self.ns, self.url
        out = [
            C.llmemo_redis(url, corpus, ns["hnsw"], "redisearch", label=HNSW, floor=F_UNFILTERED),
            C.llmemo_redis(url, corpus, ns["vset"], "vectorset", label=VSET, floor=F_VSIM),
        ]
        if C.has("langchain_redis"):
            out.append(C.langchain_redis(url, corpus, ns["lcr"], LCR, None))
        else:
            self.notes.append("langchain-redis not installed (the bench extra): no row")
        if C.has("redisvl"):
            out.append(C.redisvl(url, corpus, ns["rvl"], RVL, None))
        else:
            self.notes.append("redisvl not installed (the bench extra): no row")
        return out

    def targets(self, size: int, count: int) -> list[int]:
        return sorted({(k * 7919 + 13) % size for k in range(count)})

    def lookup_op(
        self, c: C.Semantic, targets: list[int], base: int, *, seen: bool = False
    ) -> Callable[[], Any]:
        """A hit per call: each with a new prompt text, or (``seen``) rotating over one
        query text per target, which the cache has seen before after the warm-up."""
        counter = itertools.count(base)
        prompts = self.corpus.prompts
        if seen:
            texts = itertools.cycle([prompts.query(t, base + k) for k, t in enumerate(targets)])
            return lambda: c.lookup(next(texts))

        async def op() -> Any:
            n = next(counter)
            return await c.lookup(prompts.query(targets[n % len(targets)], n))

        return op

    def raw_ops(
        self, raw: Any, targets: list[int], partition: str, vset_partition: str
    ) -> dict[str, Callable[[], Any]]:
        embeddings = self.corpus.embeddings
        blobs = [C.float32_blob(embeddings.query_vector(t)) for t in targets]
        # llmemo's index holds vectors of its default type (FLOAT16): queries are sent so.
        index_blobs = [C.index_blob(embeddings.query_vector(t)) for t in targets]
        index = C.llmemo_index(self.ns["hnsw"])
        vset_key = f"{self.ns['vset']}:v1:vs:{{{vset_partition}}}"

        def rotating(
            make: Callable[[bytes], tuple[Any, ...]], over: list[bytes] = index_blobs
        ) -> Callable[[], Any]:
            cycle = itertools.cycle([make(blob) for blob in over])
            return lambda: raw.execute_command(*next(cycle))

        return {
            F_UNFILTERED: rotating(lambda b: knn(index, b, None)),
            F_SERVER: rotating(lambda b: knn(index, b, partition)),
            F_BATCHES: rotating(lambda b: knn(index, b, partition, " HYBRID_POLICY BATCHES")),
            F_VSIM: rotating(lambda b: C.vsim_args(vset_key, b, ef=EF_RUNTIME), blobs),
        }

    async def recall_of(self, c: C.Semantic, size: int) -> tuple[int, int]:
        targets = self.targets(size, RECALL_QUERIES)
        served = 0
        for k, t in enumerate(targets):
            served += bool(await c.lookup(self.corpus.prompts.query(t, 20_000_000 + k)))
        return served, len(targets)

    async def raw_recall(self, raw: Any, size: int, partition: str) -> tuple[int, int]:
        """How often the raw filtered query (as llmemo plans it) finds the target row."""
        index = C.llmemo_index(self.ns["hnsw"])
        targets = self.targets(size, RECALL_QUERIES)
        found = 0
        for t in targets:
            blob = C.index_blob(self.corpus.embeddings.query_vector(t))
            reply = await raw.execute_command(
                *knn(index, blob, partition, " HYBRID_POLICY BATCHES")
            )
            payload_key = reply[1] if isinstance(reply, list) and len(reply) > 1 else b""
            found += payload_key.endswith(self.entry_suffix(t))
        return found, len(targets)

    def entry_suffix(self, row: int) -> bytes:
        from llmemo import keys

        return f":{keys.prompt_id(self.corpus.stored(row))}".encode()

    async def measure(
        self, size: int, variants: dict[str, Any], floors: dict[str, str | None], title: str
    ) -> list[Row]:
        series: dict[str, Series] = await measure_async(variants, self.rounds, self.ops, warmup=5)
        for name, floor in floors.items():
            if name in series:
                series[name].floor = floor
        table_rows = rows(series, F_UNFILTERED if F_UNFILTERED in series else None)
        self.tables.append(rows_table(title, table_rows, "no-filter KNN"))
        self.medians.setdefault(size, {}).update({r.name: r.median_us for r in table_rows})
        return table_rows

    async def run(self) -> None:
        import redis.asyncio as aioredis

        contenders = self.contenders()
        raw = aioredis.Redis.from_url(self.url, protocol=2)
        partition = partition_of(self.ns["hnsw"], LLM_STRING, self.corpus)
        vset_partition = partition_of(self.ns["vset"], LLM_STRING, self.corpus)
        small_partition = partition_of(self.ns["hnsw"], SMALL_LLM_STRING, self.corpus)
        loaded = 0
        try:
            for size in self.sizes:
                for c in contenders:
                    if c.load is None:
                        continue
                    started = time.perf_counter()
                    await c.load(loaded, size)
                    index = c.extra.get("index")
                    if c.name == HNSW:
                        index = C.llmemo_index(self.ns["hnsw"])
                    if index:
                        await wait_indexed(raw, index)
                    progress(
                        f"loaded {c.name}: {loaded:,} -> {size:,} in "
                        f"{time.perf_counter() - started:.1f} s"
                    )
                loaded = size
                progress(f"recall at {size:,} entries ...")
                recall = self.recall.setdefault(size, {})
                for c in contenders:
                    served, total = await self.recall_of(c, size)
                    recall[c.name] = f"{served}/{total} ({served / total:.1%})"
                found, total = await self.raw_recall(raw, size, partition)
                recall[F_BATCHES + " (nearest row is the target)"] = (
                    f"{found}/{total} ({found / total:.1%})"
                )
                progress(f"hits at {size:,} entries ...")
                targets = self.targets(size, 32)
                variants: dict[str, Any] = self.raw_ops(raw, targets, partition, vset_partition)
                for k, c in enumerate(contenders):
                    variants[c.name] = self.lookup_op(c, targets, 1_000_000 * (k + 1) + size)
                variants[HNSW + SEEN] = self.lookup_op(
                    contenders[0], targets, 40_000_000 + size, seen=True
                )
                floors = {c.name: c.floor for c in contenders}
                floors[HNSW + SEEN] = F_UNFILTERED
                floors[F_SERVER] = floors[F_BATCHES] = F_UNFILTERED
                await self.measure(
                    size,
                    variants,
                    floors,
                    f"Semantic hit, one partition of {size:,} entries, embedding excluded",
                )
            await self.small_partition(contenders[0], raw, small_partition)
        finally:
            for c in contenders:
                await c.close()
            await raw.aclose()

    async def small_partition(self, hnsw: C.Semantic, raw: Any, partition: str) -> None:
        size = self.sizes[-1]
        writer = hnsw.extra["writer"]
        cache = hnsw.extra["cache"]
        corpus = self.corpus
        rows_ = range(size, size + SMALL_ENTRIES)
        await asyncio.gather(
            *(writer.aupdate(corpus.stored(i), SMALL_LLM_STRING, corpus.payload) for i in rows_)
        )
        progress(f"hits in a {SMALL_ENTRIES}-entry partition inside {size:,} entries ...")
        targets = list(rows_)
        blobs = [C.index_blob(corpus.embeddings.query_vector(t)) for t in targets]
        index = C.llmemo_index(self.ns["hnsw"])
        cycle = itertools.cycle([knn(index, b, partition) for b in blobs])
        counter = itertools.count(90_000_000)

        async def lookup() -> Any:
            n = next(counter)
            prompt = corpus.prompts.query(targets[n % len(targets)], n)
            return await cache.alookup(prompt, SMALL_LLM_STRING)

        seen_texts = itertools.cycle([corpus.prompts.query(t, 80_000_000) for t in targets])

        async def seen_lookup() -> Any:
            return await cache.alookup(next(seen_texts), SMALL_LLM_STRING)

        served = 0
        for k, t in enumerate(targets):
            served += bool(
                await cache.alookup(corpus.prompts.query(t, 30_000_000 + k), SMALL_LLM_STRING)
            )
        self.recall.setdefault(-1, {})[SMALL] = f"{served}/{len(targets)}"
        variants = {
            F_SMALL: lambda: raw.execute_command(*next(cycle)),
            SMALL: lookup,
            SMALL + SEEN: seen_lookup,
        }
        await self.measure(
            -1,
            variants,
            {SMALL: F_SMALL, SMALL + SEEN: F_SMALL},
            f"Semantic hit in a {SMALL_ENTRIES}-entry partition inside {size:,} entries",
        )

    def targets_table(self) -> str:
        lines = ["| target | measured | holds |", "|---|---|---|"]

        def add(what: str, value: float | None, ok: Callable[[float], bool], fmt: str) -> None:
            if value is None:
                lines.append(f"| {what} | not measured | - |")
            else:
                lines.append(
                    f"| {what} | {fmt.format(value)} | {'yes' if ok(value) else '**no**'} |"
                )

        for size in self.sizes:
            m = self.medians.get(size, {})
            need = 3.0 if size < 50_000 else 8.0
            lcr = m.get(LCR)
            add(
                f"{size:,}: llmemo HNSW >= {need:.0f}x faster than langchain-redis",
                lcr / m[HNSW] if lcr else None,
                lambda v, need=need: v >= need,
                "{:.2f}x",
            )
            add(
                f"{size:,}: llmemo HNSW <= 1.5x the raw no-filter KNN",
                m[HNSW] / m[F_UNFILTERED],
                lambda v: v <= 1.5,
                "{:.2f}x",
            )
        small = self.medians.get(-1, {})
        if small:
            add(
                "100-entry partition, prompts seen before: llmemo <= 1.3x its raw filtered query",
                small[SMALL + SEEN] / small[F_SMALL],
                lambda v: v <= 1.3,
                "{:.2f}x",
            )
            add(
                "100-entry partition, new prompts: llmemo <= 1.6x its raw filtered query",
                small[SMALL] / small[F_SMALL],
                lambda v: v <= 1.6,
                "{:.2f}x",
            )
        last = self.sizes[-1]
        served = self.recall.get(last, {}).get(HNSW, "")
        if served:
            got, total = (int(x) for x in served.split(" ")[0].split("/"))
            add(
                f"{last:,}: near-duplicate recall >= 97 %",
                got / total,
                lambda v: v >= 0.97,
                "{:.1%}",
            )
        return "\n".join(lines) + "\n"

    def report(self, command: str) -> str:
        recall_lines = ["| size | cache | near-duplicate queries served |", "|---|---|---|"]
        for size, by_name in self.recall.items():
            label = "100-entry partition" if size < 0 else f"{size:,}"
            for name, value in by_name.items():
                recall_lines.append(f"| {label} | {name} | {value} |")
        parts = [
            f"## Large partitions — {time.strftime('%Y-%m-%d %H:%M')} on {platform.node()}\n",
            f"Command: `{command}` — {self.rounds} interleaved rounds x {self.ops} ops; "
            f"EF_RUNTIME {EF_RUNTIME}; 384-d vectors; embedding excluded.\n",
            "### Targets\n",
            self.targets_table(),
            "### Near-duplicate recall\n",
            "\n".join(recall_lines) + "\n",
            *self.tables,
        ]
        if self.notes:
            parts.append("Notes: " + "; ".join(self.notes) + "\n")
        return "\n".join(parts)


def run(url: str, sizes: list[int], rounds: int, ops: int, out: Path | None, command: str) -> str:
    bench = Run(url, sizes, rounds, ops)
    asyncio.run(bench.run())
    text = bench.report(command)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return text
