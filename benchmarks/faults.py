"""Time to miss: how long a ``RedisCache`` lookup takes to come back as a miss when Redis
fails, with the default :class:`~llmemo.FailurePolicy`, on both faces.

Faults (``tests/fault_injection.py``; private servers on loopback, stopped by pid):

* dead port: nothing listens (Redis never started);
* killed: the server is killed with SIGKILL while the cache holds pooled connections;
* paused: ``CLIENT PAUSE ALL`` (connections accepted, nothing answered);
* DEBUG SLEEP: the server's one thread is busy;
* black-holed: a TCP proxy stops forwarding without closing;
* breaker open: lookups after the circuit opened (measured on the dead port).

Each round builds a fresh cache (a closed circuit), warms it while the server is healthy
(a hit, so the pool holds a live connection, as in a running app), starts the fault, and
times the lookups until the circuit opens (``breaker_threshold`` of them, 5 by default):
these are the lookups that pay for the fault. For "breaker open", the lookups that follow
are timed. A healthy miss is the reference. Every timed lookup must be a miss.
"""

from __future__ import annotations

import asyncio
import platform
import secrets
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["main", "measure", "run"]

HERE = Path(__file__).resolve().parent
LLM_STRING = "benchmark-model"
OPEN_BREAKER_LOOKUPS = 200
LABELS = {
    "dead-port": "dead port (connection refused)",
    "killed": "killed (SIGKILL, pooled connections dead)",
    "paused": "paused (CLIENT PAUSE ALL)",
    "debug-sleep": "busy (DEBUG SLEEP)",
    "black-holed": "black-holed connection (proxy)",
}


@dataclass
class Samples:
    """Seconds each timed lookup took."""

    fault: str
    face: str
    seconds: list[float] = field(default_factory=list)

    def row(self) -> str:
        ms = [s * 1000 for s in self.seconds]
        return (
            f"| {self.fault} | {self.face} | {len(ms)} | {statistics.median(ms):,.2f} | "
            f"{max(ms):,.2f} |"
        )


def _fault_kinds() -> list[Any]:
    sys.path.insert(0, str(HERE.parent / "tests"))
    from fault_injection import FAULTS

    return list(FAULTS)


def _make(kind: Any, face: str) -> Any:
    from fault_injection import PausedServer, SleepingServer

    if issubclass(kind, (PausedServer, SleepingServer)):
        # Long enough for the lookups that open the circuit: the sync face waits out
        # the socket timeout twice (one retry) per failed lookup.
        return kind(seconds=1.0 if face == "async" else 1.6)
    return kind()


class _Face:
    """Runs lookups/updates of one cache on one face; the async face keeps one loop."""

    def __init__(self, cache: Any, face: str) -> None:
        self.cache = cache
        self.face = face
        self.loop = asyncio.new_event_loop() if face == "async" else None

    def lookup(self, prompt: str) -> tuple[Any, float]:
        started = time.perf_counter()
        if self.loop is None:
            value = self.cache.lookup(prompt, LLM_STRING)
        else:
            value = self.loop.run_until_complete(self.cache.alookup(prompt, LLM_STRING))
        return value, time.perf_counter() - started

    def update(self, prompt: str) -> None:
        from langchain_core.outputs import Generation

        value = [Generation(text="cached answer")]
        if self.loop is None:
            self.cache.update(prompt, LLM_STRING, value)
        else:
            self.loop.run_until_complete(self.cache.aupdate(prompt, LLM_STRING, value))

    def close(self) -> None:
        if self.loop is not None:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()
        self.cache.close()


def _timed_misses(face: _Face, count: int, tag: str, into: list[float]) -> None:
    for i in range(count):
        value, seconds = face.lookup(f"{tag} {i}")
        if value is not None:
            raise RuntimeError(f"a lookup during the fault returned {value!r}, not a miss")
        into.append(seconds)


def measure(kind: Any, face_name: str, rounds: int) -> list[Samples]:
    """Time-to-miss samples of one fault kind on one face (plus the open breaker)."""
    from llmemo import FailurePolicy
    from llmemo.langchain import RedisCache

    threshold = FailurePolicy().breaker_threshold
    paying = Samples(LABELS.get(kind.name, kind.name), face_name)
    healthy = Samples("healthy server, key absent (reference)", face_name)
    skipped = Samples("breaker open (after the dead-port failures)", face_name)
    fault = _make(kind, face_name).start()
    try:
        for number in range(rounds):
            prefix = f"bench-faults-{secrets.token_hex(6)}"
            face = _Face(RedisCache(fault.url, prefix=prefix), face_name)
            try:
                if fault.healthy_first:
                    face.update("warm")
                    value, _ = face.lookup("warm")
                    if value is None:
                        raise RuntimeError("the warm-up lookup missed")
                    _timed_misses(face, 20, f"healthy {number}", healthy.seconds)
                fault.begin()
                stats = face.cache.stats
                _timed_misses(face, threshold, f"fault {number}", paying.seconds)
                if stats.breaker_opens != 1:
                    raise RuntimeError(f"the breaker did not open: {stats.as_dict()}")
                if not fault.in_force:
                    raise RuntimeError(f"the {fault.name} outage ended too early")
                if fault.name == "dead-port":
                    _timed_misses(face, OPEN_BREAKER_LOOKUPS, f"open {number}", skipped.seconds)
                fault.end()
                if fault.healthy_first:
                    face.cache.clear()
            finally:
                face.close()
    finally:
        fault.close()
    return [s for s in (healthy, paying, skipped) if s.seconds]


def run(rounds: int) -> str:
    """Measure every fault on both faces; return the Markdown report."""
    from llmemo import FailurePolicy
    from llmemo.adapters._redis_clients import DEFAULT_SOCKET_TIMEOUT

    policy = FailurePolicy()
    references: list[Samples] = []
    others: list[Samples] = []
    started = time.perf_counter()
    for face in ("async", "sync"):
        healthy = Samples("healthy server, key absent (reference)", face)
        for kind in _fault_kinds():
            for samples in measure(kind, face, rounds):
                if samples.fault == healthy.fault:
                    healthy.seconds += samples.seconds
                else:
                    others.append(samples)
        references.append(healthy)
    elapsed = time.perf_counter() - started
    lines = [
        "### Time to miss under Redis faults (RedisCache, default policy)",
        "",
        f"`python -m benchmarks faults --rounds {rounds}` on {platform.node()} "
        f"({platform.python_version()}, {time.strftime('%Y-%m-%d')}), {elapsed:.0f} s. "
        f"Policy: operation_timeout={policy.operation_timeout} s, breaker_threshold="
        f"{policy.breaker_threshold}, breaker_reset={policy.breaker_reset} s; clients: "
        f"socket and connect timeouts = operation_timeout (else {DEFAULT_SOCKET_TIMEOUT} s), "
        "one immediate retry. Each fault row: the lookups that open the circuit "
        f"({policy.breaker_threshold} per round x {rounds} rounds).",
        "",
        "| fault | face | lookups | median ms | max ms |",
        "|---|---|---:|---:|---:|",
        *(r.row() for r in references),
        *(r.row() for r in others),
    ]
    return "\n".join(lines) + "\n"


def main(rounds: int | None = None, quick: bool = False, out: Path | None = None) -> int:
    """Entry point of ``python -m benchmarks faults``: print the report and, unless
    ``quick``, write it to ``out`` (default ``benchmarks/results/<date>-<host>-faults.md``).
    """
    report = run(1 if quick else (rounds or 4))
    sys.stdout.write(report)
    if not quick:
        path = out or HERE / "results" / f"{time.strftime('%Y-%m-%d')}-{platform.node()}-faults.md"
        if path.is_dir():
            path = path / f"{time.strftime('%Y-%m-%d')}-{platform.node()}-faults.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(report)
    return 0
