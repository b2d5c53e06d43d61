"""Interleaved measurement: every variant runs in every round, in rotating order, so a
noisy neighbour on a shared machine slows all variants alike; figures are per-operation
latencies (medians and tails) and ratios to a floor measured in the same rounds."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

AsyncOp = Callable[[], Awaitable[object]]
SyncOp = Callable[[], object]


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
    """Every variant once per round, the starting variant rotating from round to round."""
    order: list[str] = []
    for round_index in range(rounds):
        shift = round_index % len(names)
        order += names[shift:] + names[:shift]
    return order


async def measure_async(
    variants: dict[str, AsyncOp], rounds: int, ops: int, warmup: int = 50
) -> dict[str, Series]:
    """Run each async variant ``ops`` times per round for ``rounds`` rounds, interleaved."""
    series = {name: Series(name) for name in variants}
    for op in variants.values():
        for _ in range(warmup):
            await op()
    for name in _schedule(list(variants), rounds):
        op, samples = variants[name], series[name].samples
        for _ in range(ops):
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
    for name in _schedule(list(variants), rounds):
        op, samples = variants[name], series[name].samples
        for _ in range(ops):
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
