"""``python -m benchmarks hits [--redis-url URL] [--quick]``: llmemo vs the Redis floor."""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("suite", choices=["hits"], help="what to measure")
    parser.add_argument("--redis-url", help="use this server instead of starting one")
    parser.add_argument("--sizes", default="1000,10000", help="semantic index sizes")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--ops", type=int, default=300, help="operations per round")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round (CI)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rounds, ops = args.rounds, args.ops
    if args.quick:
        sizes, rounds, ops = [200], 1, 30
    out = (
        None
        if args.quick
        else (HERE / "results" / f"{time.strftime('%Y-%m-%d')}-{platform.node()}-hits.md")
    )

    from benchmarks.hits import run

    if args.redis_url:
        sys.stdout.write(run(args.redis_url, sizes, rounds, ops, out))
        return 0
    sys.path.insert(0, str(HERE.parent / "tests"))
    from redis_server import RedisServer

    with RedisServer() as server:
        sys.stdout.write(run(server.url, sizes, rounds, ops, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
