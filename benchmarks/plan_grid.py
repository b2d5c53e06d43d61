"""The grid behind llmemo's hybrid-plan thresholds (``stores/redis/_plan.py``):
``python -m benchmarks.plan_grid [--size N] [--partitions 100,1000,5000,20000]``.

One RediSearch HNSW index of ``--size`` random 384-d unit vectors (FLOAT32, COSINE),
split into partitions of the given sizes plus one holding the rest, on a throwaway
server. For each partition: the median of 100 raw ``FT.SEARCH`` KNN 4 queries (a
near-duplicate of one of its rows, ``EF_RUNTIME 100``) with the server's plan, with
``HYBRID_POLICY BATCHES`` and with ``ADHOC_BF`` (brute force), how often the row is
found, and the cost of counting the partition (``LIMIT 0 0``); then the cost of counting
the whole index, of ``FT.INFO``, and of the no-filter KNN. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._embedders import IndexEmbeddings, unit_rows

QUERIES = 100
POLICIES = {
    "server's plan": "",
    "BATCHES": " HYBRID_POLICY BATCHES",
    "ADHOC_BF": " HYBRID_POLICY ADHOC_BF",
}


def median_ms(op: Callable[[int], object], reps: int) -> float:
    samples = []
    for j in range(reps):
        started = time.perf_counter()
        op(j)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.plan_grid", description=__doc__)
    parser.add_argument("--size", type=int, default=100_000, help="vectors in the index")
    parser.add_argument("--partitions", default="100,1000,5000,20000", help="partition sizes")
    args = parser.parse_args(argv)
    import redis

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from redis_server import RedisServer

    sizes = [int(s) for s in args.partitions.split(",")]
    bounds: list[tuple[str, int, int]] = []
    start = 0
    for size in sizes:
        bounds.append((f"p{size}", start, start + size))
        start += size
    if start >= args.size:
        parser.error("the partitions must leave room for the rest of the index")
    bounds.append(("rest", start, args.size))
    rows = unit_rows(args.size)
    embeddings = IndexEmbeddings(rows)

    def query_blob(row: int) -> bytes:
        return np.asarray(embeddings.query_vector(row), dtype="<f4").tobytes()

    out = [
        f"Index of {args.size:,} vectors (HNSW, FLOAT32, 384-d); KNN 4, EF_RUNTIME 100, "
        f"medians of {QUERIES} queries (ms).",
        "",
        "| partition | entries | " + " | ".join(POLICIES) + " | found (server) | count |",
        "|---|---:|" + "---:|" * (len(POLICIES) + 2),
    ]
    with RedisServer() as server:
        client: Any = redis.Redis.from_url(server.url, protocol=2)
        client.execute_command(
            *("FT.CREATE", "grid", "ON", "HASH", "PREFIX", 1, "g:", "SCHEMA"),
            *("vec", "VECTOR", "HNSW", 6, "TYPE", "FLOAT32", "DIM", 384),
            *("DISTANCE_METRIC", "COSINE", "p", "TAG", "CASESENSITIVE"),
        )
        pipe = client.pipeline(transaction=False)
        for name, first, stop in bounds:
            for i in range(first, stop):
                pipe.hset(f"g:{{{name}}}:{i}", mapping={"vec": rows[i].tobytes(), "p": name})
                if len(pipe) >= 2000:
                    pipe.execute()
        pipe.execute()
        while int(client.ft("grid").info()["indexing"]):
            time.sleep(0.5)
        for name, first, stop in bounds:
            targets = list(range(first, stop, max(1, (stop - first) // QUERIES)))[:QUERIES]
            cells = []
            found = 0
            for label, plan in POLICIES.items():
                ef = "" if "ADHOC" in plan else " EF_RUNTIME 100"
                hits = [0]

                def search(
                    j: int,
                    ef: str = ef,
                    plan: str = plan,
                    hits: list[int] = hits,
                    targets: list[int] = targets,
                    name: str = name,
                ) -> None:
                    row = targets[j % len(targets)]
                    reply = client.execute_command(
                        "FT.SEARCH", "grid", f"(@p:{{$p}})=>[KNN 4 @vec $blob{ef}{plan} AS d]",
                        "PARAMS", 4, "p", name, "blob", query_blob(row),
                        "RETURN", 1, "d", "SORTBY", "d", "LIMIT", 0, 4, "DIALECT", 2,
                    )  # fmt: skip
                    hits[0] += len(reply) > 1 and reply[1].endswith(f":{row}".encode())

                # Batches in a tiny partition take tens of ms each: fewer of them.
                reps = 30 if plan.endswith("BATCHES") and stop - first < 1000 else QUERIES
                cells.append(f"{median_ms(search, reps):.2f}")
                if label == "server's plan":
                    found = hits[0]
            count = median_ms(
                lambda _j, name=name: client.execute_command(
                    "FT.SEARCH",
                    "grid",
                    "@p:{$p}",
                    "PARAMS",
                    2,
                    "p",
                    name,
                    "LIMIT",
                    0,
                    0,
                    "DIALECT",
                    2,
                ),
                30,
            )
            share = (stop - first) / args.size
            out.append(
                f"| {name} | {stop - first:,} ({share:.0%}) | "
                + " | ".join(cells)
                + f" | {found}/{QUERIES} | {count:.2f} |"
            )
        total = median_ms(
            lambda _j: client.execute_command("FT.SEARCH", "grid", "*", "LIMIT", 0, 0), 30
        )
        info = median_ms(lambda _j: client.execute_command("FT.INFO", "grid"), 30)
        unfiltered = median_ms(
            lambda j: client.execute_command(
                "FT.SEARCH",
                "grid",
                "*=>[KNN 4 @vec $blob EF_RUNTIME 100 AS d]",
                "PARAMS",
                2,
                "blob",
                query_blob((j * 997) % args.size),
                "RETURN",
                1,
                "d",
                "SORTBY",
                "d",
                "LIMIT",
                0,
                4,
                "DIALECT",
                2,
            ),
            QUERIES,
        )
        client.close()
    out += [
        "",
        f"Counting the whole index: {total:.2f} ms; FT.INFO: {info:.2f} ms; "
        f"no-filter KNN: {unfiltered:.2f} ms.",
    ]
    sys.stdout.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
