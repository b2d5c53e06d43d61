"""What every cache returns and counts: :class:`CacheHit` and :class:`CacheStats`."""

from __future__ import annotations

import asyncio
import bisect
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from llmemo.options import CallOptions
    from llmemo.policy import FailurePolicy
    from llmemo.verify.base import Verdict

__all__ = [
    "DEFAULT",
    "CacheHit",
    "CacheRuntime",
    "CacheStats",
    "OneTimeSetup",
    "check_key_inputs",
    "clear_with_progress",
    "resolve_ttl",
]

#: Marks an omitted per-call argument (``ttl``) where ``None`` is a meaningful value.
DEFAULT: Any = object()


@dataclass(frozen=True, slots=True)
class CacheHit:
    """A value served from a cache, with how it matched.

    Attributes:
        value: The cached value (a ``list`` of LangChain generations for LangChain
            entries).
        kind: ``"exact"`` (same prompt) or ``"semantic"`` (a prompt within the distance
            threshold).
        distance: Cosine distance between the prompts' embeddings (``0.0`` for exact).
        entry_id: Id of the entry that served the hit.
        age: Seconds since the entry was written (by the writer's wall clock).
        verdict: The hit verifier's decision that let a semantic hit through (``None``
            for exact hits and caches without a verifier).
    """

    value: Any
    kind: Literal["exact", "semantic"]
    distance: float
    entry_id: str
    age: float
    verdict: Verdict | None = None


#: Upper bounds (microseconds) of the lookup-latency histogram's buckets.
LATENCY_BUCKETS_US = (100, 200, 500, 1_000, 2_000, 5_000, 10_000, 50_000, 100_000, 1_000_000)


def _duration(micros: int) -> str:
    if micros >= 1_000_000:
        return f"{micros // 1_000_000}s"
    if micros >= 1_000:
        return f"{micros // 1_000}ms"
    return f"{micros}us"


@dataclass(slots=True)
class CacheStats:
    """Counters of one cache object (since it was created), safe to read at any time.

    Attributes:
        exact_hits: Lookups served by an exact match.
        semantic_hits: Lookups served by a semantic match.
        misses: Lookups that found nothing usable.
        writes: Entries written.
        decode_errors: Stored entries that could not be decoded (each also a miss or a
            skipped candidate).
        embeddings: Texts sent to the embedder (memoised repeats not counted).
        verifier_accepts: Semantic candidates a hit verifier accepted.
        verifier_rejections: Semantic candidates a hit verifier rejected.
        verifier_errors: Verifier calls that raised (each counted as a rejection).
        errors_timeout: Store operations that exceeded their budget.
        errors_unavailable: Store operations that could not reach the backend.
        errors_backend: Other store failures.
        embedder_errors: Embedder calls that failed or exceeded their budget.
        writes_dropped: Writes not stored because the backend or embedder failed, or
            the entry was too large.
        writes_too_large: Writes refused before sending because the encoded entry was
            over the policy's ``max_entry_bytes`` (each also in ``writes_dropped``).
        writes_unencodable: Writes dropped because the value could not be encoded (e.g.
            model metadata that is not JSON data; each also in ``writes_dropped``).
        breaker_opens: Times a circuit opened.
        breaker_closes: Times an open circuit closed again.
        breaker_skips: Calls not sent because a circuit was open.
        bypassed_reads: Lookups skipped by ``llmemo.options(bypass_read=True)``.
        bypassed_writes: Writes skipped by ``llmemo.options(bypass_write=True)``.
        singleflight_waits: Lookups that waited for a concurrent identical miss.
        singleflight_shared: Waiting lookups served the value that miss computed.
    """

    exact_hits: int = 0
    semantic_hits: int = 0
    misses: int = 0
    writes: int = 0
    decode_errors: int = 0
    embeddings: int = 0
    verifier_accepts: int = 0
    verifier_rejections: int = 0
    verifier_errors: int = 0
    errors_timeout: int = 0
    errors_unavailable: int = 0
    errors_backend: int = 0
    embedder_errors: int = 0
    writes_dropped: int = 0
    writes_too_large: int = 0
    writes_unencodable: int = 0
    breaker_opens: int = 0
    breaker_closes: int = 0
    breaker_skips: int = 0
    bypassed_reads: int = 0
    bypassed_writes: int = 0
    singleflight_waits: int = 0
    singleflight_shared: int = 0
    _latency: list[int] = field(
        default_factory=lambda: [0] * (len(LATENCY_BUCKETS_US) + 1), repr=False, compare=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, counter: str, amount: int = 1) -> None:
        """Increase one counter (thread-safe)."""
        with self._lock:
            setattr(self, counter, getattr(self, counter) + amount)

    @property
    def errors(self) -> int:
        """All store and embedder failures."""
        return (
            self.errors_timeout
            + self.errors_unavailable
            + self.errors_backend
            + self.embedder_errors
        )

    @property
    def hits(self) -> int:
        """All hits, exact and semantic."""
        return self.exact_hits + self.semantic_hits

    def as_dict(self) -> dict[str, int]:
        """A snapshot of every counter."""
        with self._lock:
            return {
                f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")
            }

    def observe_lookup(self, seconds: float) -> None:
        """Record one lookup's duration in the latency histogram."""
        micros = seconds * 1e6
        index = bisect.bisect_left(LATENCY_BUCKETS_US, micros)
        with self._lock:
            self._latency[index] += 1

    def latency_histogram(self) -> dict[str, int]:
        """Lookups per duration bucket: ``"<=100us"`` ... ``">1s"`` (upper bounds inclusive)."""
        with self._lock:
            counts = list(self._latency)
        labels = [f"<={_duration(bound)}" for bound in LATENCY_BUCKETS_US]
        labels.append(f">{_duration(LATENCY_BUCKETS_US[-1])}")
        return dict(zip(labels, counts, strict=True))


def check_key_inputs(prompt: object, llm_string: object) -> None:
    """Raise ``TypeError`` naming the parameter unless both are ``str``."""
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str; got {type(prompt).__qualname__}")
    if not isinstance(llm_string, str):
        raise TypeError(f"llm_string must be a str; got {type(llm_string).__qualname__}")


class CacheRuntime:
    """What every core of one cache shares, across event loops and threads: the failure
    policy, the counters, and one guard (budget + circuit breaker) each for store reads,
    store writes and the embedder.

    Args:
        policy: The failure policy (default: fail open, 100 ms per store operation).
        clock: Monotonic seconds for breakers and warning rate limits.
    """

    def __init__(
        self, policy: FailurePolicy | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        from llmemo.policy import FailurePolicy, Guard

        self.policy = policy if policy is not None else FailurePolicy()
        self.stats = CacheStats()
        self.store_guard = Guard(self.policy, "store", self.stats, clock)
        self.write_guard = Guard(self.policy, "write", self.stats, clock)
        self.embed_guard = Guard(self.policy, "embedder", self.stats, clock)

    def encoded(self, encode: Callable[[], bytes]) -> bytes | None:
        """The entry ``encode()`` makes, or ``None`` when the value cannot be encoded (a
        model's metadata that is not JSON data) and the policy is ``"open"``: the answer
        was already paid for, so the write is dropped, counted in ``writes_unencodable``
        and ``writes_dropped``, and warned about at most once per ``warn_interval``.

        Raises:
            SerializationError: the value cannot be encoded, with ``errors="raise"``.
            TypeError: the value is not of an accepted type (a caller's error).
        """
        from llmemo.errors import SerializationError

        try:
            return encode()
        except SerializationError as exc:
            if self.policy.errors == "raise":
                raise
            self.stats.add("writes_unencodable")
            self.stats.add("writes_dropped")
            self.write_guard.warn_once(
                "unencodable", f"llmemo: an answer was not cached (cannot be stored: {exc})"
            )
            return None

    def too_large(self, payload: bytes) -> bool:
        """Whether ``payload`` is over the policy's ``max_entry_bytes`` (then counted as a
        refused, dropped write, and warned about at most once per ``warn_interval``)."""
        cap = self.policy.max_entry_bytes
        if cap is None or len(payload) <= cap:
            return False
        self.stats.add("writes_too_large")
        self.stats.add("writes_dropped")
        self.write_guard.warn_once(
            "too-large",
            f"llmemo: an entry of {len(payload):,} bytes was not written (max_entry_bytes "
            f"is {cap:,})",
        )
        return True

    def snapshot(self) -> dict[str, Any]:
        """Counters, circuit-breaker states and the lookup-latency histogram, as plain data."""
        return {
            "counters": self.stats.as_dict(),
            "store_breaker": self.store_guard.breaker.state,
            "write_breaker": self.write_guard.breaker.state,
            "embedder_breaker": self.embed_guard.breaker.state,
            "lookup_latency": self.stats.latency_histogram(),
        }


class OneTimeSetup:
    """Work a cache does once before its first call of a kind (imports, connecting,
    checking or creating an index, loading a model), shared by concurrent first callers.

    Awaiting it runs ``run`` once, in the first caller's own coroutine (so that a cache
    driven without suspending, by llmemo's sync faces, can use it too); callers that
    come while it runs on the same event loop wait for it instead of running it again.
    After a success :attr:`done` is set and awaiting returns at once; after a failure
    the error is raised to the first caller and to every waiter (an interrupted run is a
    :class:`~llmemo.errors.BackendTimeoutError` for the waiters), and the next call runs
    it again.

    Args:
        run: The setup; called with the arguments of the call that runs it.
    """

    __slots__ = ("_pending", "_run", "done")

    def __init__(self, run: Callable[..., Awaitable[object]]) -> None:
        self._run = run
        self.done = False
        self._pending: dict[asyncio.AbstractEventLoop, asyncio.Future[None]] = {}

    async def __call__(self, *args: Any) -> None:
        if self.done:
            return
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        future: asyncio.Future[None] | None = None
        if loop is not None:
            pending = self._pending.get(loop)
            if pending is not None:
                await asyncio.shield(pending)  # the running setup's outcome
                return
            future = self._pending[loop] = loop.create_future()
        try:
            await self._run(*args)
        except BaseException as exc:
            if future is not None:
                from llmemo.errors import BackendTimeoutError

                shared = (
                    exc
                    if isinstance(exc, Exception)
                    else BackendTimeoutError("a cache's first-use setup was interrupted")
                )
                future.set_exception(shared)
                future.exception()  # retrieved here: there may be no waiter
            raise
        else:
            self.done = True
            if future is not None:
                future.set_result(None)
        finally:
            if loop is not None:
                del self._pending[loop]


async def clear_with_progress(
    clear: Callable[..., Awaitable[int]], progress: Callable[[int], object] | None, *args: Any
) -> int:
    """Call a store's ``clear(*args)``, passing ``progress`` where the store reports
    progress (a ``progress`` keyword); otherwise report the total once at the end."""
    import inspect

    if progress is None:
        return await clear(*args)
    if "progress" in inspect.signature(clear).parameters:
        return await clear(*args, progress=progress)
    removed = await clear(*args)
    progress(removed)
    return removed


def resolve_ttl(explicit: Any, options: CallOptions, default: float | None) -> float | None:
    """The TTL of one write: the explicit argument, else an enclosing
    ``llmemo.options(ttl=...)``, else the cache's default.

    Raises:
        ConfigurationError: an explicit ``ttl`` is invalid.
    """
    from llmemo.config import validate_ttl

    if explicit is not DEFAULT:
        return validate_ttl(explicit)
    if options.has_ttl:
        return options.ttl  # type: ignore[no-any-return]
    return default
