"""``python -m benchmarks {all,hits,cluster} [--quick] [--redis-url URL]``.

* ``all``: the full suite — llmemo against every alternative and the Redis floor (see
  :mod:`benchmarks.suite`); writes ``benchmarks/results/<date>-<host>.{md,json}``, PNG
  charts and its section of ``benchmarks/RESULTS.md``.
* ``hits``: llmemo's hits against the raw Redis floor only (:mod:`benchmarks.hits`).
* ``cluster``: the same on a 3-primary Redis Cluster (:mod:`benchmarks.cluster`; a
  throwaway cluster unless ``--redis-url`` names a node of one).
* ``dtype``: FLOAT32 against FLOAT16 vectors on RediSearch (:mod:`benchmarks.dtype`):
  memory per entry, hits and lookup latency at one size (default 100,000); writes
  ``benchmarks/results/<date>-<host>-dtype.md``.
* ``partitions``: large partitions (:mod:`benchmarks.partitions`): one partition of
  20,000 and of 100,000 entries against langchain-redis, redisvl and the raw no-filter
  KNN, a 100-entry partition inside the large index, near-duplicate recall; writes
  ``benchmarks/results/<date>-<host>-partitions.md``.
* ``faults``: time to miss under Redis faults (:mod:`benchmarks.faults`; always on
  private loopback servers of its own, ``--redis-url`` does not apply).
* ``embed``: the local embedder's ONNX runtime against torch (:mod:`benchmarks.embed`):
  cold start, single-query latency, concurrent lookups, RSS, ``llmemo eval`` figures on
  every file of ``--eval-dir`` (default ``../shared/eval-data`` beside the checkout, if
  there); needs no Redis. Writes ``benchmarks/results/<date>-<host>-embed.md`` and its
  section of ``benchmarks/RESULTS.md``.

Without ``--redis-url`` a throwaway Redis 8 with RediSearch is started (as the tests do,
from PyPI wheels) on a free loopback port and stopped at the end. ``--quick`` is the CI
mode: tiny sizes, one round, no files unless ``--out`` is given.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SIZES = {
    "hits": "1000,10000",
    "all": "1000,10000,100000",
    "cluster": "1200,12000",
    "dtype": "100000",
    "partitions": "20000,100000",
}
DEFAULT_ROUNDS = {"hits": 7, "all": 5, "cluster": 7, "dtype": 5, "partitions": 5}
DEFAULT_OPS = {"hits": 300, "all": 200, "cluster": 300, "dtype": 200, "partitions": 200}


@contextlib.contextmanager
def redis_url(given: str | None) -> Iterator[str]:
    """``given``, or the URL of a throwaway server started here and stopped by its pid."""
    if given:
        yield given
        return
    sys.path.insert(0, str(HERE.parent / "tests"))
    from redis_server import RedisServer

    with RedisServer() as server:
        yield server.url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "suite",
        choices=["all", "hits", "cluster", "dtype", "faults", "partitions", "embed"],
        help="what to measure",
    )
    parser.add_argument("--redis-url", help="use this server instead of starting one")
    parser.add_argument(
        "--sizes", help="semantic index sizes (all: 1000,10000,100000; dtype: one size)"
    )
    parser.add_argument("--rounds", type=int, help="interleaved rounds (all: 5, hits: 7)")
    parser.add_argument("--ops", type=int, help="operations per round (all: 200, hits: 300)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round (CI)")
    parser.add_argument(
        "--out", type=Path, help="where reports go (all: benchmarks/results; none in --quick)"
    )
    parser.add_argument(
        "--no-results-md", action="store_true", help="do not update benchmarks/RESULTS.md"
    )
    parser.add_argument(
        "--eval-dir", type=Path, help="embed: the pair files for the llmemo eval figures"
    )
    args = parser.parse_args(argv)
    if args.suite == "embed":
        from benchmarks import embed

        command = "python -m benchmarks " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
        eval_dir = args.eval_dir or HERE.parent.parent / "shared" / "eval-data"
        sys.stdout.write(
            embed.run(
                eval_dir=eval_dir if eval_dir.is_dir() else None,
                rounds=args.rounds or 3,
                quick=args.quick,
                out=None if args.quick else (args.out or HERE / "results"),
                results_md=None if (args.quick or args.no_results_md) else HERE / "RESULTS.md",
                command=command,
            )
        )
        return 0
    if args.suite == "faults":
        from benchmarks import faults

        return faults.main(rounds=args.rounds, quick=args.quick, out=args.out)
    sizes = [int(s) for s in (args.sizes or DEFAULT_SIZES[args.suite]).split(",")]
    rounds = args.rounds or DEFAULT_ROUNDS[args.suite]
    ops = args.ops or DEFAULT_OPS[args.suite]
    command = "python -m benchmarks " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))

    if args.suite == "hits":
        if args.quick:
            sizes, rounds, ops = [200], 1, 30
        out = (
            None
            if args.quick
            else (HERE / "results" / f"{time.strftime('%Y-%m-%d')}-{platform.node()}-hits.md")
        )
        from benchmarks.hits import run

        with redis_url(args.redis_url) as url:
            sys.stdout.write(run(url, sizes, rounds, ops, out))
        return 0

    if args.suite == "dtype":
        if len(sizes) != 1:
            parser.error(f"dtype measures one size; got --sizes {args.sizes}")
        if args.quick:
            sizes, rounds, ops = [300], 1, 30
        stamp = f"{time.strftime('%Y-%m-%d')}-{platform.node()}-dtype.md"
        out = None if args.quick else (args.out or HERE / "results") / stamp
        from benchmarks import dtype

        with redis_url(args.redis_url) as url:
            sys.stdout.write(dtype.run(url, sizes[0], rounds, ops, out, command))
        return 0

    if args.suite == "partitions":
        if args.quick:
            sizes, rounds, ops = [300, 1200], 1, 20
        stamp = f"{time.strftime('%Y-%m-%d')}-{platform.node()}-partitions.md"
        out = None if args.quick else (args.out or HERE / "results") / stamp
        from benchmarks import partitions

        with redis_url(args.redis_url) as url:
            sys.stdout.write(partitions.run(url, sizes, rounds, ops, out, command))
        return 0

    if args.suite == "cluster":
        if args.quick:
            sizes, rounds, ops = [60], 1, 30
        stamp = f"{time.strftime('%Y-%m-%d')}-{platform.node()}-cluster.md"
        out = None if args.quick else (args.out or HERE / "results") / stamp
        from benchmarks import cluster

        with cluster.cluster_url(args.redis_url) as url:
            sys.stdout.write(cluster.run(url, sizes, rounds, ops, out))
        return 0

    from benchmarks import suite

    out_dir = args.out if (args.out or args.quick) else HERE / "results"
    results_md = None if (args.quick or args.no_results_md) else HERE / "RESULTS.md"
    with redis_url(args.redis_url) as url:
        settings = suite.Settings.make(
            url, quick=args.quick, sizes=sizes, rounds=rounds, ops=ops, command=command
        )
        sys.stdout.write(suite.run(settings, out_dir, results_md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
