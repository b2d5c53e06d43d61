"""Interleaved measurement: operation by operation (A B C A B C ...), so a noisy
neighbour on a shared machine slows all variants alike (blocks of one variant at a time
let a burst of load land on one variant only: ratios moved by 0.3x between runs); figures
are per-operation latencies (medians and tails) and ratios to a floor measured in the same
rounds.

The order of the variants is shuffled (seeded, reproducible) before every pass: an
operation runs faster right after a similar one (the interpreter's and the CPU's caches
hold the code both run), so a fixed order, even one rotated from round to round, gave
each variant the same predecessor throughout and biased the ratios (a raw query that
always followed the raw GET ran warm; the first llmemo variant after it ran cold: up to
~0.4x on a 1k-entry semantic hit)."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

AsyncOp = Callable[[], Awaitable[object]]
SyncOp = Callable[[], object]
Op = TypeVar("Op", AsyncOp, SyncOp)
#: Seed of the per-pass shuffles of :func:`measure_async` / :func:`measure_sync`: runs
#: of one suite use the same orders.
SHUFFLE_SEED = 6


@dataclass
class Series:
    """Latency samples of one variant, in nanoseconds."""

    name: str
    floor: str | None = None
    samples: list[int] = field(default_factory=list)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.samples)
        return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])

    @property
    def median(self) -> float:
        return float(statistics.median(self.samples))


def _schedule(names: list[str], rounds: int) -> list[str]:
    """Every variant once per round, the starting variant rotating from round to round
    (for measurements that need a whole block per variant, e.g. throughput)."""
    return [name for order in _rounds(names, rounds) for name in order]


def _rounds(names: list[str], rounds: int) -> list[list[str]]:
    """The order of the variants in each round, the first one rotating from round to
    round."""
    return [names[i % len(names) :] + names[: i % len(names)] for i in range(rounds)]


def _passes(
    variants: dict[str, Op], series: dict[str, Series], passes: int
) -> Iterator[tuple[Op, list[int]]]:
    """Each variant with its samples, once per pass, in a new shuffled order every pass."""
    shuffle = random.Random(SHUFFLE_SEED).shuffle
    plan = [(variants[name], series[name].samples) for name in variants]
    for _ in range(passes):
        shuffle(plan)
        yield from plan


async def measure_async(
    variants: dict[str, AsyncOp], rounds: int, ops: int, warmup: int = 50
) -> dict[str, Series]:
    """Run each async variant ``rounds * ops`` times: passes of one operation of each
    variant, in a new shuffled order every pass."""
    series = {name: Series(name) for name in variants}
    for op in variants.values():
        for _ in range(warmup):
            await op()
    for op, samples in _passes(variants, series, rounds * ops):
        start = time.perf_counter_ns()
        await op()
        samples.append(time.perf_counter_ns() - start)
    return series


def measure_sync(
    variants: dict[str, SyncOp], rounds: int, ops: int, warmup: int = 50
) -> dict[str, Series]:
    """The sync twin of :func:`measure_async` (no event loop involved)."""
    series = {name: Series(name) for name in variants}
    for op in variants.values():
        for _ in range(warmup):
            op()
    for op, samples in _passes(variants, series, rounds * ops):
        start = time.perf_counter_ns()
        op()
        samples.append(time.perf_counter_ns() - start)
    return series


def table(title: str, series: dict[str, Series], floor: str) -> str:
    """A Markdown table of medians, p90, p99 (microseconds) and median ratios to ``floor``."""
    base = series[floor].median
    lines = [
        f"#### {title}",
        "",
        "| variant | median µs | p90 µs | p99 µs | x floor (median) |",
        "|---|---:|---:|---:|---:|",
    ]
    for item in series.values():
        ratio = "floor" if item.name == floor else f"{item.median / base:.2f}x"
        lines.append(
            f"| {item.name} | {item.median / 1000:.1f} | {item.quantile(0.9) / 1000:.1f} | "
            f"{item.quantile(0.99) / 1000:.1f} | {ratio} |"
        )
    return "\n".join(lines) + "\n"


@dataclass
class Row:
    """One line of a suite table: a variant's latency and its ratios (JSON-friendly)."""

    name: str
    floor: str | None
    median_us: float
    p90_us: float
    p99_us: float
    samples: int
    x_floor: float | None
    x_ref: float | None


def rows(series: dict[str, Series], ref: str | None = None) -> list[Row]:
    """Rows for ``series``: each ratio is to the variant's own ``floor`` (a series of the
    same rounds) and to ``ref`` (e.g. the raw GET), both medians over medians."""
    out = []
    for item in series.values():
        floor = series.get(item.floor) if item.floor else None
        reference = series.get(ref) if ref else None
        out.append(
            Row(
                name=item.name,
                floor=item.floor,
                median_us=item.median / 1000,
                p90_us=item.quantile(0.9) / 1000,
                p99_us=item.quantile(0.99) / 1000,
                samples=len(item.samples),
                x_floor=item.median / floor.median if floor is not None else None,
                x_ref=item.median / reference.median if reference is not None else None,
            )
        )
    return out


def rows_table(title: str, table_rows: list[Row], ref_label: str | None = None) -> str:
    """A Markdown table of :func:`rows` (µs; ratios to each row's floor and to ``ref``)."""

    def ratio(value: float | None, is_floor: bool) -> str:
        if is_floor:
            return "floor"
        return "" if value is None else f"{value:.2f}x"

    floors = {r.floor for r in table_rows if r.floor}
    head = "| variant | median µs | p90 µs | p99 µs | x its floor | floor |"
    rule = "|---|---:|---:|---:|---:|---|"
    if ref_label:
        head += f" x {ref_label} |"
        rule += "---:|"
    lines = [f"#### {title}", "", head, rule]
    for r in table_rows:
        line = (
            f"| {r.name} | {r.median_us:,.1f} | {r.p90_us:,.1f} | {r.p99_us:,.1f} | "
            f"{ratio(r.x_floor, r.name in floors)} | {r.floor or ''} |"
        )
        if ref_label:
            line += f" {ratio(r.x_ref, False)} |"
        lines.append(line)
    return "\n".join(lines) + "\n"


async def measure_throughput(
    variants: dict[str, AsyncOp],
    concurrencies: list[int],
    rounds: int,
    total_ops: dict[str, int] | int | Callable[[str, int], int],
    after_warmup: Callable[[], object] | None = None,
    served: dict[str, dict[int, float]] | None = None,
) -> dict[str, dict[int, float]]:
    """Operations per second of each variant with ``c`` tasks on the running loop.

    Each run starts ``c`` tasks that share ``total_ops`` operations; every (variant,
    concurrency) pair runs once per round, interleaved in rotating order; the result is
    the median rate over rounds. ``served``, if given, receives the share of operations
    that returned a truthy result (a hit), per variant and concurrency: a cache that
    fails open under load answers fast with misses, and its rate is not a hit rate.
    """
    import asyncio

    pairs = [f"{name}\x00{c}" for name in variants for c in concurrencies]
    rates: dict[str, list[float]] = {pair: [] for pair in pairs}
    truthy: dict[str, list[int]] = {pair: [0, 0] for pair in pairs}
    for op in variants.values():
        for _ in range(10):
            await op()
        # One burst at full width first: connection pools grow to it outside the timing.
        await asyncio.gather(*(op() for _ in range(max(concurrencies))))
    if after_warmup is not None:
        after_warmup()
    for pair in _schedule(pairs, rounds):
        name, c_text = pair.split("\x00")
        op, concurrency = variants[name], int(c_text)
        if isinstance(total_ops, int):
            total = total_ops
        elif isinstance(total_ops, dict):
            total = total_ops[name]
        else:
            total = total_ops(name, concurrency)
        per_task = max(1, total // concurrency)
        counts = truthy[pair]

        async def worker(
            op: AsyncOp = op, count: int = per_task, counts: list[int] = counts
        ) -> None:
            for _ in range(count):
                result = await op()  # awaited first: `+=` would read the count before it
                counts[0] += bool(result)
                counts[1] += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        rates[pair].append(per_task * concurrency / (time.perf_counter() - start))
    out: dict[str, dict[int, float]] = {name: {} for name in variants}
    for pair, values in rates.items():
        name, c_text = pair.split("\x00")
        out[name][int(c_text)] = float(statistics.median(values))
        if served is not None:
            hits, done = truthy[pair]
            served.setdefault(name, {})[int(c_text)] = hits / done if done else 0.0
    return out
