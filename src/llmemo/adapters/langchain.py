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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.outputs import Generation

from llmemo.adapters._sync import PerLoop, run_now, run_sync
from llmemo.caches.base import CacheHit, CacheStats
from llmemo.caches.exact import ExactCache
from llmemo.caches.semantic import SemanticCache
from llmemo.config import validate_optional_positive_int
from llmemo.embedders import LangChainEmbedder
from llmemo.errors import ConfigurationError
from llmemo.stores.base import Embedder
from llmemo.stores.memory import MemoryKeyStore, MemoryVectorStore

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

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

    stats: CacheStats

    async def alookup(self, prompt: str, llm_string: str) -> CacheHit | None: ...

    async def aupdate(self, prompt: str, llm_string: str, value: Any) -> None: ...

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
    ``embed_query``) is returned as it is.
    """
    if not hasattr(embeddings, "embed_query") and isinstance(embeddings, Embedder):
        return embeddings
    return LangChainEmbedder(embeddings)  # type: ignore[arg-type]


async def _lookup_hit(core: CoreCache, prompt: str, llm_string: str) -> CacheHit | None:
    hit = await core.alookup(prompt, llm_string)
    if hit is None or not isinstance(hit.value, list):
        return None
    if not hit.value or not all(isinstance(item, Generation) for item in hit.value):
        # An entry written through the core API under the same key: not ours to serve.
        return None
    return hit


async def _update(core: CoreCache, prompt: str, llm_string: str, return_val: object) -> None:
    await core.aupdate(prompt, llm_string, check_return_val(return_val))


@dataclass(frozen=True, slots=True)
class _LoopCore:
    """A core and the limiter of concurrent operations on it (per event loop)."""

    core: CoreCache
    limiter: asyncio.Semaphore | None


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
    ) -> None:
        """Wrap a core (shared) or a per-loop core factory; exactly one of them.

        Raises:
            ConfigurationError: both or neither given; ``max_in_flight`` not None or > 0.
        """
        if (core is None) == (core_factory is None):
            raise ConfigurationError("pass exactly one of core or core_factory")
        limit = validate_optional_positive_int(max_in_flight, parameter="max_in_flight")
        self._shared = None if core is None else _LoopCore(core, None)
        self._per_loop: PerLoop[_LoopCore] | None = None
        self._stats = core.stats if core is not None else CacheStats()
        self._sync_core = sync_core
        if sync_core is not None:
            sync_core.stats = self._stats
        if core_factory is not None:
            factory = core_factory

            def make_core() -> _LoopCore:
                made = factory()
                made.stats = self._stats  # one set of counters over every loop's core
                return _LoopCore(made, None if limit is None else asyncio.Semaphore(limit))

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

    async def alookup_hit(self, prompt: str, llm_string: str) -> CacheHit | None:
        """Like :meth:`alookup`, but return the :class:`~llmemo.caches.base.CacheHit`
        (kind, distance, entry id, age) instead of the bare generations."""
        bound = self._bound()
        if bound.limiter is None:
            return await _lookup_hit(bound.core, prompt, llm_string)
        async with bound.limiter:
            return await _lookup_hit(bound.core, prompt, llm_string)

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
        if bound.limiter is None:
            await _update(bound.core, prompt, llm_string, return_val)
            return
        async with bound.limiter:
            await _update(bound.core, prompt, llm_string, return_val)

    async def aclear(self, **kwargs: Any) -> None:
        """Remove every entry of this cache (only this cache's namespace)."""
        bound = self._bound()
        if bound.limiter is None:
            await bound.core.aclear()
            return
        async with bound.limiter:
            await bound.core.aclear()

    def lookup_hit(self, prompt: str, llm_string: str) -> CacheHit | None:
        """Sync :meth:`alookup_hit`."""
        if self._sync_core is not None:
            return run_now(_lookup_hit(self._sync_core, prompt, llm_string))
        return run_sync(self.alookup_hit, prompt, llm_string)

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """Sync :meth:`alookup`; safe to call from inside a running event loop."""
        hit = self.lookup_hit(prompt, llm_string)
        return None if hit is None else hit.value

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Sync :meth:`aupdate`."""
        if self._sync_core is not None:
            run_now(_update(self._sync_core, prompt, llm_string, return_val))
        else:
            run_sync(self.aupdate, prompt, llm_string, return_val)

    def clear(self, **kwargs: Any) -> None:
        """Sync :meth:`aclear`."""
        if self._sync_core is not None:
            run_now(self._sync_core.aclear())
        else:
            run_sync(self.aclear)

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
        return self._stats


class InMemoryCache(LangChainCache):
    """An exact LangChain cache in process memory, with TTL and LRU bounds.

    The drop-in for ``langchain_core.caches.InMemoryCache``, plus TTL, a byte bound, and
    model isolation by hashing ``llm_string``. One store serves every loop and thread.
    """

    def __init__(
        self,
        ttl: float | None = None,
        maxsize: int | None = None,
        *,
        max_bytes: int | None = None,
        namespace: str = "llmemo",
    ) -> None:
        """Create an empty cache.

        Args:
            ttl: Seconds an entry lives, or ``None`` for no expiry.
            maxsize: Most entries kept (least recently used evicted), or ``None``.
            max_bytes: Most bytes kept (keys plus encoded values), or ``None``.
            namespace: Key prefix (1-64 of ``[A-Za-z0-9_.:-]``).

        Raises:
            ConfigurationError: a parameter is out of range (the message names it).
        """
        store = MemoryKeyStore(max_entries=maxsize, max_bytes=max_bytes)
        core = ExactCache(store, namespace=namespace, ttl=ttl)
        super().__init__(core, sync_core=core)


class InMemorySemanticCache(LangChainCache):
    """A semantic LangChain cache in process memory (numpy exact cosine search).

    Exact repeats are served without embedding; otherwise the text of the final user
    turn is embedded and the nearest entry of the same model configuration and context
    within ``distance_threshold`` (cosine distance) is served.
    """

    def __init__(
        self,
        embeddings: Embeddings | Embedder,
        distance_threshold: float = 0.2,
        ttl: float | None = None,
        *,
        maxsize: int | None = None,
        namespace: str = "llmemo",
        exact_first: bool = True,
        verifier: HitVerifier | None = None,
        candidates: int | None = None,
    ) -> None:
        """Create an empty cache.

        Args:
            embeddings: Any LangChain ``Embeddings`` (on async paths: awaited when
                natively async, else run in a worker thread; sync calls embed inline), or
                an llmemo ``Embedder``.
            distance_threshold: Largest cosine distance in ``[0, 2]`` served as a hit.
            ttl: Seconds an entry lives, or ``None``.
            maxsize: Most entries kept (least recently used evicted), or ``None``.
            namespace: Namespace hashed into every partition.
            exact_first: Probe for the exact prompt before embedding (see
                :class:`~llmemo.caches.semantic.SemanticCache`).
            verifier: A :class:`~llmemo.verify.HitVerifier` that must accept a semantic
                candidate before it is served; ``None`` serves the nearest.
            candidates: Nearest entries the verifier may try (default 4 with a verifier).

        Raises:
            ConfigurationError: a parameter is out of range (the message names it).
            TypeError: ``embeddings`` is not an embeddings object.
        """
        store = MemoryVectorStore(max_entries=maxsize)

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
            )

        inline = inline_embedder(embeddings)
        super().__init__(
            make(to_embedder(embeddings)), sync_core=None if inline is None else make(inline)
        )
