"""LangChain ``BaseCache`` adapters over llmemo's async core.

``alookup``/``aupdate``/``aclear`` are native coroutines (no thread pool). The sync
``lookup``/``update``/``clear`` run the same core code in one of two ways:

* with a *sync core* (a core whose store and embedder never suspend: in-memory stores,
  the blocking Redis key store, inline embeddings), the coroutine is driven to completion
  directly (:func:`~llmemo.adapters._sync.run_now`), with no event loop and no thread;
* otherwise through :func:`~llmemo.adapters._sync.run_sync` (a private loop per thread,
  or a background loop when called from inside a running loop).

Cores whose store is loop-bound are kept one per running event loop; in-memory cores are
shared by every loop and thread.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.outputs import Generation

from llmemo import codec
from llmemo.adapters import _runwatch
from llmemo.adapters._singleflight import RECENT, SingleFlight
from llmemo.adapters._sync import PerLoop, loop_running_here, run_now, run_sync
from llmemo.caches.base import (
    DEFAULT,
    CacheHit,
    CacheRuntime,
    CacheStats,
    clear_with_progress,
    resolve_ttl,
)
from llmemo.caches.exact import ExactCache
from llmemo.caches.semantic import DEFAULT_DISTANCE_THRESHOLD, SemanticCache, resolve_verifier
from llmemo.config import validate_optional_positive_int, validate_positive_seconds
from llmemo.embedders import LangChainEmbedder
from llmemo.errors import ConfigurationError, SerializationError
from llmemo.keys import field_hash
from llmemo.options import current_options
from llmemo.stores.base import Embedder
from llmemo.stores.memory import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_ENTRIES,
    MemoryKeyStore,
    MemoryVectorStore,
)

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from llmemo.policy import FailurePolicy
    from llmemo.verify.base import HitVerifier

__all__ = [
    "InMemoryCache",
    "InMemorySemanticCache",
    "LangChainCache",
    "check_return_val",
    "inline_embedder",
    "to_embedder",
]


class CoreCache(Protocol):
    """What the adapter needs of a core cache (:class:`ExactCache`, :class:`SemanticCache`)."""

    runtime: CacheRuntime

    async def alookup(self, prompt: str, llm_string: str) -> CacheHit | None: ...

    async def aupdate(self, prompt: str, llm_string: str, value: Any) -> bool | None: ...

    async def aclear(self) -> int: ...

    async def aclose(self) -> None: ...


def check_return_val(return_val: object) -> list[Generation]:
    """Return ``return_val`` as a list after checking it holds LangChain generations.

    Raises:
        TypeError: not a sequence, or an item is not a ``Generation``.
        ConfigurationError: the sequence is empty (an empty entry would later be served
            as a hit with no generation).
    """
    if isinstance(return_val, (str, bytes)) or not isinstance(return_val, Sequence):
        raise TypeError(
            "return_val must be a list of langchain_core Generation objects; "
            f"got {type(return_val).__qualname__}"
        )
    for index, item in enumerate(return_val):
        if not isinstance(item, Generation):
            raise TypeError(
                f"return_val[{index}] must be a langchain_core Generation; "
                f"got {type(item).__qualname__}"
            )
    if not return_val:
        raise ConfigurationError("return_val must hold at least one Generation")
    return list(return_val)


def inline_embedder(embeddings: Embeddings | Embedder) -> Embedder | None:
    """An embedder for sync-driven cores (calls the sync methods inline), or ``None`` when
    ``embeddings`` is an llmemo ``Embedder`` (async only)."""
    if not hasattr(embeddings, "embed_query"):
        return None
    return LangChainEmbedder(embeddings, inline=True)  # type: ignore[arg-type]


def to_embedder(embeddings: Embeddings | Embedder) -> Embedder:
    """Return an llmemo :class:`~llmemo.stores.base.Embedder` for LangChain embeddings.

    An object that already is an llmemo ``Embedder`` (has ``async embed(texts)`` and no
    ``embed_query``) is returned as it is; LangChain ``Embeddings``, duck-typed objects
    with ``embed_query``/``embed_documents`` and mocks of ``Embeddings`` are wrapped.

    Raises:
        TypeError: ``embeddings`` is neither (e.g. its ``embed`` is not a coroutine
            function), at construction rather than on the first call.
    """
    if not hasattr(embeddings, "embed_query") and isinstance(embeddings, Embedder):
        if not inspect.iscoroutinefunction(getattr(embeddings, "embed", None)):
            raise TypeError(
                "embeddings: an llmemo Embedder's embed must be a coroutine function "
                f"(async def embed(texts)); got {type(embeddings).__qualname__}"
            )
        return embeddings
    return LangChainEmbedder(embeddings)  # type: ignore[arg-type]


#: Seconds a lookup waits for a concurrent identical miss's model call, by default.
DEFAULT_SINGLE_FLIGHT_TIMEOUT = 30.0


#: Seconds between two looks at the cache while another process computes an entry.
_LEASE_POLL_SECONDS = 0.05
#: How often a waiter whose leader failed joins again before calling the model itself.
_FLIGHT_ATTEMPTS = 3


def _flight_key(prompt: str, llm_string: str) -> str:
    return field_hash("flight", llm_string, prompt)


def _langchain_hit(core: CoreCache, hit: CacheHit | None) -> CacheHit | None:
    """``hit`` if it holds LangChain generations, else ``None`` (counted)."""
    if hit is None:
        return None
    value = hit.value
    if isinstance(value, list) and value:
        for item in value:
            if not isinstance(item, Generation):
                break
        else:
            return hit
    # An entry written through the core API under the same key (JSON, not generations):
    # not a LangChain answer. Count it as what it is for LangChain: undecodable, a miss.
    stats = core.runtime.stats
    stats.add("exact_hits" if hit.kind == "exact" else "semantic_hits", -1)
    stats.add("decode_errors")
    stats.add("misses")
    return None


async def _update(core: CoreCache, prompt: str, llm_string: str, return_val: object) -> bool:
    """Store through ``core``; whether it stored (cores returning ``None`` count as yes)."""
    stored = await core.aupdate(prompt, llm_string, check_return_val(return_val))
    return stored is None or bool(stored)


class _Limiter:
    """A semaphore for one event loop whose uncontended acquire is a plain decrement.

    ``asyncio.Semaphore`` costs two coroutine hops per ``async with`` (~3 us, a few % of
    a Redis hit); here :meth:`try_acquire` takes a free slot synchronously and only a
    caller finding none awaits :meth:`acquire`. FIFO among waiters; a released slot goes
    to the oldest waiter still waiting.
    """

    __slots__ = ("_free", "_waiters")

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody is queued for one."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def acquire(self) -> None:
        """Take a slot, waiting for one if needed (cancellation-safe)."""
        if self.try_acquire():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot just as we were cancelled: pass it on
            elif waiter in self._waiters:  # a release may already have dropped it
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give a slot back (to the oldest waiter, if any)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot moves to it: _free unchanged
                return
        self._free += 1

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()


@dataclass(frozen=True, slots=True)
class _LoopCore:
    """A core and the limiter of concurrent operations on it (per event loop)."""

    core: CoreCache
    limiter: _Limiter | None


class LangChainCache(BaseCache):
    """A LangChain ``BaseCache`` over any llmemo core cache.

    Pass ``core`` for a core that may be shared by every loop and thread (in-memory
    stores), or ``core_factory`` for cores holding loop-bound resources: the factory is
    called once per running event loop (on that loop), and each core is closed on its
    loop when that loop shuts down. ``sync_core``, if given, serves the sync methods: it
    must never suspend (see the module docstring) and must be thread-safe.

    Lookups return a ``list`` of generations or ``None`` (LangChain treats anything but a
    ``list`` as a miss). Errors of the core propagate.

    ``max_in_flight`` bounds how many operations run at once on each loop's core (excess
    callers wait their turn): the adapters that own a connection pool set it to the pool's
    size, so a burst of concurrent lookups never asks the pool for more connections than
    it has, without the per-command cost of a blocking pool.
    """

    def __init__(
        self,
        core: CoreCache | None = None,
        *,
        core_factory: Callable[[], CoreCache] | None = None,
        sync_core: CoreCache | None = None,
        max_in_flight: int | None = None,
        policy: FailurePolicy | None = None,
        single_flight: bool = True,
        single_flight_timeout: float = DEFAULT_SINGLE_FLIGHT_TIMEOUT,
        cross_process_wait: float | None = None,
    ) -> None:
        """Wrap a core (shared) or a per-loop core factory; exactly one of them.

        With ``cross_process_wait`` (seconds) and a core that supports leases (an exact
        cache on Redis), single-flight spans processes: the first process to miss takes
        a lease (``SET NX PX``) and calls the model; a process that finds the lease taken
        polls the cache for the entry for at most that long, then calls the model itself.

        With ``single_flight`` (default), concurrent misses of the same prompt and model
        configuration in this process wait for the first one's model call instead of
        calling the model too (see :mod:`llmemo.adapters._singleflight`). A leader whose
        model call fails (seen through LangChain's callbacks) or whose task ends releases
        its waiters at once; a lookup never followed by ``update`` holds them at most
        :data:`~llmemo.adapters._singleflight.UNCONFIRMED_GRACE` (2 s). Worst case: a
        waiter waits ``single_flight_timeout`` seconds in all (a leader whose model call
        neither returns nor fails), then calls the model itself.

        Every core (per loop, and the sync one) shares one
        :class:`~llmemo.caches.base.CacheRuntime`: counters, failure policy and circuit
        breakers. With a shared ``core`` its runtime is used; otherwise one is made from
        ``policy``.

        Raises:
            ConfigurationError: both or neither given; ``max_in_flight`` not None or > 0;
                ``single_flight_timeout`` not a positive number of seconds.
        """
        if (core is None) == (core_factory is None):
            raise ConfigurationError("pass exactly one of core or core_factory")
        limit = validate_optional_positive_int(max_in_flight, parameter="max_in_flight")
        if not isinstance(single_flight, bool):
            raise ConfigurationError(f"single_flight must be a bool; got {single_flight!r}")
        if single_flight:
            _runwatch.install()  # a failed leader's model run releases its waiters
        self._flights = (
            SingleFlight(validate_positive_seconds(single_flight_timeout, "single_flight_timeout"))
            if single_flight
            else None
        )
        self._cross_wait = (
            None
            if cross_process_wait is None
            else validate_positive_seconds(cross_process_wait, "cross_process_wait")
        )
        self._shared = None if core is None else _LoopCore(core, None)
        self._per_loop: PerLoop[_LoopCore] | None = None
        self._runtime = core.runtime if core is not None else CacheRuntime(policy)
        self._sync_core = sync_core
        if sync_core is not None:
            sync_core.runtime = self._runtime
        if core_factory is not None:
            factory = core_factory

            def make_core() -> _LoopCore:
                made = factory()
                made.runtime = self._runtime  # one set of counters and breakers for all
                return _LoopCore(made, None if limit is None else _Limiter(limit))

            self._per_loop = PerLoop(make_core, self._close_loop_core)

    async def _close_loop_core(self, bound: _LoopCore) -> None:
        await self._close_core(bound.core)

    async def _close_core(self, core: CoreCache) -> None:
        """Release a per-loop core (awaited on its loop when that loop shuts down)."""
        await core.aclose()

    def _bound(self) -> _LoopCore:
        if self._shared is not None:
            return self._shared
        assert self._per_loop is not None
        return self._per_loop.get()

    def core(self) -> CoreCache:
        """The core cache for the running loop (the shared one, if shared).

        Raises:
            RuntimeError: per-loop cores and no running event loop.
        """
        return self._bound().core

    async def _core_lookup(self, prompt: str, llm_string: str) -> CacheHit | None:
        bound = self._bound()
        limiter = bound.limiter
        core = bound.core
        if limiter is None:
            return _langchain_hit(core, await core.alookup(prompt, llm_string))
        if not limiter.try_acquire():
            await limiter.acquire()
        try:
            return _langchain_hit(core, await core.alookup(prompt, llm_string))
        finally:
            limiter.release()

    async def alookup_hit(self, prompt: str, llm_string: str) -> CacheHit | None:
        """Like :meth:`alookup`, but return the :class:`~llmemo.caches.base.CacheHit`
        (value, kind, distance, entry id, age, verdict) instead of the bare generations.

        ``prompt`` and ``llm_string`` are what LangChain passes a cache: for a chat model
        ``prompt`` is ``langchain_core.load.dumps(messages)`` (``[HumanMessage(question)]``
        for ``model.invoke(question)``), not the question text, and ``llm_string`` is
        ``model._get_llm_string()``.
        """
        hit = await self._core_lookup(prompt, llm_string)
        if hit is None and self._flights is not None and not current_options().bypass_read:
            hit = await self._after_miss(prompt, llm_string, self._flights)
        self._after_lookup()
        return hit

    def _after_lookup(self) -> None:
        """Called after every async lookup (subclasses publish counters here)."""

    async def _after_miss(
        self, prompt: str, llm_string: str, flights: SingleFlight
    ) -> CacheHit | None:
        """Single-flight after a miss: wait for a concurrent identical miss's value, or
        lead (``None``: the caller calls the model)."""
        key = _flight_key(prompt, llm_string)
        deadline = time.monotonic() + flights.timeout
        for _ in range(_FLIGHT_ATTEMPTS):
            flight = flights.join(key, prompt)
            if flight is None:
                # This caller leads here; with a lease, also across processes.
                if self._cross_wait is None or await self._take_lease(prompt, llm_string):
                    return None
                hit = await self._await_other_process(prompt, llm_string)
                # Local waiters read the cache now (or, if it never came, retry).
                flights.complete(key, None, landed=hit is not None)
                return hit
            if flight is RECENT:  # stored just after our lookup missed: read it
                hit = await self._core_lookup(prompt, llm_string)
                return hit if hit is not None else self._recent_hit(flights, key)
            self._runtime.stats.add("singleflight_waits")
            outcome = await flights.wait_async(key, flight, deadline)
            if outcome == "value":
                return self._shared_hit(flight.payload)
            if outcome == "timeout":
                return None  # never join again after a timeout: call the model
            # The leader failed or went away: join again, so that one caller leads.
        return None

    async def _take_lease(self, prompt: str, llm_string: str) -> bool:
        assert self._cross_wait is not None
        core = self._bound().core
        try_lead = getattr(core, "atry_lead", None)
        return (
            True if try_lead is None else bool(await try_lead(prompt, llm_string, self._cross_wait))
        )

    def _take_lease_sync(self, prompt: str, llm_string: str) -> bool:
        assert self._cross_wait is not None
        if self._sync_core is None:
            return bool(run_sync(self._take_lease, prompt, llm_string))
        try_lead = getattr(self._sync_core, "atry_lead", None)
        return (
            True
            if try_lead is None
            else bool(run_now(try_lead(prompt, llm_string, self._cross_wait)))
        )

    async def _await_other_process(self, prompt: str, llm_string: str) -> CacheHit | None:
        """Poll for the entry another process is computing, at most ``cross_process_wait``."""
        assert self._cross_wait is not None
        deadline = time.monotonic() + self._cross_wait
        self._runtime.stats.add("singleflight_waits")
        while time.monotonic() < deadline:
            await asyncio.sleep(_LEASE_POLL_SECONDS)
            hit = await self._core_lookup(prompt, llm_string)
            if hit is not None:
                self._runtime.stats.add("singleflight_shared")
                return hit
        return None

    def _await_other_process_sync(self, prompt: str, llm_string: str) -> CacheHit | None:
        assert self._cross_wait is not None
        deadline = time.monotonic() + self._cross_wait
        self._runtime.stats.add("singleflight_waits")
        while time.monotonic() < deadline:
            time.sleep(_LEASE_POLL_SECONDS)
            hit = self._sync_lookup(prompt, llm_string)
            if hit is not None:
                self._runtime.stats.add("singleflight_shared")
                return hit
        return None

    def _recent_hit(self, flights: SingleFlight, key: str) -> CacheHit | None:
        """After a flight of ``key`` just landed, the caller's second lookup found
        nothing: the cache could not be read (a burst over the time budget, an open
        circuit) or lost the entry again. The value the flight shared with its waiters
        moments ago still answers the prompt: serve it rather than call the model again
        (counted as a wait that was shared). ``None`` if the flight shared none."""
        payload = flights.recent_value(key)
        if payload is None:
            return None
        self._runtime.stats.add("singleflight_waits")
        return self._shared_hit(payload)

    def _shared_hit(self, payload: bytes) -> CacheHit:
        entry = codec.decode(payload)
        self._runtime.stats.add("singleflight_shared")
        return CacheHit(entry.value, "exact", 0.0, "", 0.0)

    def _land(
        self, core: CoreCache, prompt: str, llm_string: str, return_val: object, stored: bool
    ) -> None:
        """End the flight of this key (the leader's update), sharing the value with
        whoever waits for it; ``stored`` says whether later lookups will find it. The
        write's TTL also bounds how long late callers may be served the shared value."""
        flights = self._flights
        if flights is None or not len(flights):
            return
        key = _flight_key(prompt, llm_string)
        payload = None
        if flights.has_waiters(key):
            try:
                payload = codec.encode_generations(check_return_val(return_val), written_at=0.0)
            except (TypeError, ConfigurationError, SerializationError):
                payload = None  # the update itself raised the same error to its caller
        options = current_options()
        config = getattr(core, "config", None)
        ttl = resolve_ttl(DEFAULT, options, getattr(config, "ttl", None))
        # A write the store dropped (a burst over its time budget, an open circuit) still
        # answered the prompt: the late callers of the same burst are served the shared
        # value rather than calling the model again. A bypassed write is not kept.
        remember = stored or (payload is not None and not options.bypass_write)
        flights.complete(key, payload, landed=remember, ttl=ttl)

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """Return the cached generations for ``(prompt, llm_string)``, or ``None``."""
        hit = await self.alookup_hit(prompt, llm_string)
        return None if hit is None else hit.value

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Store ``return_val`` for ``(prompt, llm_string)``.

        Raises:
            TypeError / ConfigurationError: bad arguments (nothing is stored).
        """
        bound = self._bound()
        stored = False
        try:
            if bound.limiter is None:
                stored = await _update(bound.core, prompt, llm_string, return_val)
            else:
                async with bound.limiter:
                    stored = await _update(bound.core, prompt, llm_string, return_val)
        finally:
            self._land(bound.core, prompt, llm_string, return_val, stored)

    async def aclear(self, **kwargs: Any) -> None:
        """Remove every entry of this cache (only this cache's namespace); answers of
        recent single-flights are forgotten too (never served after a clear).

        Args:
            progress: Optional keyword: called with the running count of removed
                entries after each batch (Redis stores), e.g. to report a long clear.
        """
        bound = self._bound()
        progress = kwargs.get("progress")
        try:
            if bound.limiter is None:
                await clear_with_progress(bound.core.aclear, progress)
            else:
                async with bound.limiter:
                    await clear_with_progress(bound.core.aclear, progress)
        finally:
            self._forget_recent()

    def _forget_recent(self) -> None:
        if self._flights is not None:
            self._flights.forget_recent()

    def _sync_lookup(self, prompt: str, llm_string: str) -> CacheHit | None:
        if self._sync_core is not None:
            core = self._sync_core
            return _langchain_hit(core, run_now(core.alookup(prompt, llm_string)))
        return run_sync(self._core_lookup, prompt, llm_string)

    def lookup_hit(self, prompt: str, llm_string: str) -> CacheHit | None:
        """Sync :meth:`alookup_hit` (single-flight waits happen in the calling thread)."""
        hit = self._sync_lookup(prompt, llm_string)
        if hit is not None or self._flights is None or current_options().bypass_read:
            return hit
        if loop_running_here():
            # This thread runs an event loop: blocking it while waiting for a leader that
            # may be a task of that same loop would stall both. Call the model instead.
            return None
        key = _flight_key(prompt, llm_string)
        deadline = time.monotonic() + self._flights.timeout
        for _ in range(_FLIGHT_ATTEMPTS):
            flight = self._flights.join(key, prompt)
            if flight is None:
                if self._cross_wait is None or self._take_lease_sync(prompt, llm_string):
                    return None
                hit = self._await_other_process_sync(prompt, llm_string)
                self._flights.complete(key, None, landed=hit is not None)
                return hit
            if flight is RECENT:
                hit = self._sync_lookup(prompt, llm_string)
                return hit if hit is not None else self._recent_hit(self._flights, key)
            self._runtime.stats.add("singleflight_waits")
            outcome = self._flights.wait_sync(key, flight, deadline)
            if outcome == "value":
                return self._shared_hit(flight.payload)
            if outcome == "timeout":
                return None
        return None

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """Sync :meth:`alookup`; safe to call from inside a running event loop."""
        hit = self.lookup_hit(prompt, llm_string)
        return None if hit is None else hit.value

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Sync :meth:`aupdate`."""
        if self._sync_core is None:
            run_sync(self.aupdate, prompt, llm_string, return_val)
            return
        stored = False
        try:
            stored = run_now(_update(self._sync_core, prompt, llm_string, return_val))
        finally:
            self._land(self._sync_core, prompt, llm_string, return_val, stored)

    def clear(self, **kwargs: Any) -> None:
        """Sync :meth:`aclear` (same optional ``progress`` keyword)."""
        progress = kwargs.get("progress")
        try:
            if self._sync_core is not None:
                run_now(clear_with_progress(self._sync_core.aclear, progress))
            else:
                run_sync(functools.partial(self.aclear, progress=progress))
        finally:
            self._forget_recent()

    async def aclose(self) -> None:
        """Release the calling loop's core (its connections); the cache stays usable and
        reconnects on next use. Cores of other loops close when their loops shut down."""
        if self._per_loop is not None:
            bound = self._per_loop.pop_current()
            if bound is not None:
                await self._close_core(bound.core)

    def close(self) -> None:
        """Release what the sync methods hold (e.g. the sync Redis client's connections)."""
        shared = None if self._shared is None else self._shared.core
        if self._sync_core is not None and self._sync_core is not shared:
            run_now(self._sync_core.aclose())

    @property
    def stats(self) -> CacheStats:
        """Counters of this cache, summed over every loop's core."""
        return self._runtime.stats

    @property
    def runtime(self) -> CacheRuntime:
        """Counters, failure policy and circuit breakers shared by all of this cache's cores."""
        return self._runtime


def _memory_policy(policy: FailurePolicy | None) -> FailurePolicy:
    """The default policy for in-memory caches: fail open, no store budget (a memory
    operation cannot hang, and a timeout scope would only cost time)."""
    from llmemo.policy import FailurePolicy

    return (
        policy if policy is not None else FailurePolicy(operation_timeout=None, write_timeout=None)
    )


class InMemoryCache(LangChainCache):
    """An exact LangChain cache in process memory, with TTL and LRU bounds.

    The drop-in for ``langchain_core.caches.InMemoryCache``, plus TTL, a byte bound, and
    model isolation by hashing ``llm_string``. One store serves every loop and thread.
    Unlike LangChain's, it is bounded by default (10,000 entries, 256 MiB); pass
    ``maxsize=None, max_bytes=None`` for no bound.
    """

    def __init__(
        self,
        ttl: float | None = None,
        maxsize: int | None = DEFAULT_MAX_ENTRIES,
        *,
        max_bytes: int | None = DEFAULT_MAX_BYTES,
        namespace: str = "llmemo",
        policy: FailurePolicy | None = None,
        single_flight: bool = True,
        single_flight_timeout: float = DEFAULT_SINGLE_FLIGHT_TIMEOUT,
    ) -> None:
        """Create an empty cache.

        Args:
            ttl: Seconds an entry lives, or ``None`` for no expiry.
            maxsize: Most entries kept (least recently used evicted; default 10,000), or
                ``None`` for no bound.
            max_bytes: Most bytes kept (keys plus encoded values; default 256 MiB), or
                ``None`` for no bound.
            namespace: Key prefix (1-64 of ``[A-Za-z0-9_.:-]``).
            policy: What failures do; in memory only ``errors`` matters (no budget is
                needed: memory operations cannot hang).
            single_flight: Concurrent misses of the same prompt wait for the first
                one's model call instead of calling the model too (in this process).
            single_flight_timeout: Most seconds such a caller waits for the first one
                (then it calls the model itself); see :class:`LangChainCache`.

        Raises:
            ConfigurationError: a parameter is out of range (the message names it).
        """
        store = MemoryKeyStore(max_entries=maxsize, max_bytes=max_bytes)
        runtime = CacheRuntime(_memory_policy(policy))
        core = ExactCache(store, namespace=namespace, ttl=ttl, runtime=runtime)
        self._config = core.config
        super().__init__(
            core,
            sync_core=core,
            single_flight=single_flight,
            single_flight_timeout=single_flight_timeout,
        )

    @property
    def ttl(self) -> float | None:
        """Seconds an entry lives (``None``: no expiry), as validated (read-only)."""
        return self._config.ttl

    @property
    def namespace(self) -> str:
        """The key prefix of this cache (read-only)."""
        return self._config.namespace


class InMemorySemanticCache(LangChainCache):
    """A semantic LangChain cache in process memory (numpy exact cosine search).

    Exact repeats are served without embedding; otherwise the text of the final user
    turn is embedded and the nearest entry of the same model configuration and context
    within ``distance_threshold`` (cosine distance) is served. Bounded by default
    (10,000 entries, 256 MiB of vectors and payloads).
    """

    def __init__(
        self,
        embeddings: Embeddings | Embedder,
        distance_threshold: float = DEFAULT_DISTANCE_THRESHOLD,
        ttl: float | None = None,
        *,
        maxsize: int | None = DEFAULT_MAX_ENTRIES,
        max_bytes: int | None = DEFAULT_MAX_BYTES,
        namespace: str = "llmemo",
        exact_first: bool = True,
        verifier: HitVerifier | None = DEFAULT,
        candidates: int | None = None,
        policy: FailurePolicy | None = None,
        single_flight: bool = True,
        single_flight_timeout: float = DEFAULT_SINGLE_FLIGHT_TIMEOUT,
        context: str = "exact",
    ) -> None:
        """Create an empty cache.

        Args:
            embeddings: Any LangChain ``Embeddings`` (on async paths: awaited when
                natively async, else run in a worker thread; sync calls embed inline), or
                an llmemo ``Embedder``.
            distance_threshold: Largest cosine distance in ``[0, 2]`` a candidate may be
                at (default 0.35, chosen with the default verifier).
            ttl: Seconds an entry lives, or ``None``.
            maxsize: Most entries kept (least recently used evicted; default 10,000), or
                ``None`` for no bound.
            max_bytes: Most bytes kept (vectors, payloads and ids; default 256 MiB), or
                ``None`` for no bound.
            namespace: Namespace hashed into every partition.
            exact_first: Probe for the exact prompt before embedding (see
                :class:`~llmemo.caches.semantic.SemanticCache`).
            verifier: A :class:`~llmemo.verify.HitVerifier` that must accept a semantic
                candidate before it is served; by default a
                :class:`~llmemo.verify.RulesVerifier`; ``None`` serves the nearest.
            candidates: Nearest entries the verifier may try (default 4 with a verifier).
            policy: What failures do (the embedder's budget and breaker matter here).
            single_flight: Concurrent misses of the same prompt wait for the first
                one's model call instead of calling the model too (in this process).
            single_flight_timeout: Most seconds such a caller waits for the first one
                (then it calls the model itself); see :class:`LangChainCache`.
            context: Context policy for chat prompts: ``"exact"`` (default: the system
                prompt and every earlier turn must match exactly) or ``"tolerant"`` (a
                final message that stands on its own is served after any plain
                conversation; system prompts and tools must still match). See
                :func:`llmemo.text.split_prompt` and docs/semantic-hits.md.

        Raises:
            ConfigurationError: a parameter is out of range (the message names it).
            TypeError: ``embeddings`` is not an embeddings object.
        """
        store = MemoryVectorStore(max_entries=maxsize, max_bytes=max_bytes)
        runtime = CacheRuntime(_memory_policy(policy))
        verifier = resolve_verifier(verifier)  # one instance for both cores

        def make(embedder: Embedder) -> SemanticCache:
            return SemanticCache(
                store,
                embedder,
                namespace=namespace,
                distance_threshold=distance_threshold,
                ttl=ttl,
                exact_first=exact_first,
                verifier=verifier,
                candidates=candidates,
                runtime=runtime,
                context=context,
            )

        inline = inline_embedder(embeddings)
        core = make(to_embedder(embeddings))
        self._config = core.config
        super().__init__(
            core,
            sync_core=None if inline is None else make(inline),
            single_flight=single_flight,
            single_flight_timeout=single_flight_timeout,
        )

    @property
    def distance_threshold(self) -> float:
        """Largest cosine distance (in ``[0, 2]``) a candidate may be at, as validated
        (read-only; a lookup of the core API may pass a stricter one per call)."""
        return self._config.distance_threshold

    @property
    def ttl(self) -> float | None:
        """Seconds an entry lives (``None``: no expiry), as validated (read-only)."""
        return self._config.ttl

    @property
    def namespace(self) -> str:
        """The namespace hashed into every partition (read-only)."""
        return self._config.namespace
