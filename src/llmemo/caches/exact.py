"""The exact cache: same namespace, model configuration and prompt → one key lookup."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from llmemo import codec, keys
from llmemo.caches.base import (
    DEFAULT,
    CacheHit,
    CacheRuntime,
    CacheStats,
    OneTimeSetup,
    check_key_inputs,
    clear_with_progress,
    resolve_ttl,
)
from llmemo.config import CacheConfig
from llmemo.errors import SerializationError, WrongTypeError
from llmemo.options import current_options
from llmemo.policy import FailurePolicy
from llmemo.stores.base import KeyStore, LockingKeyStore

__all__ = ["ExactCache"]

_PARTITION_MEMO_SIZE = 256


class ExactCache:
    """An async exact-match cache over any :class:`~llmemo.stores.base.KeyStore`.

    Keys are ``{namespace}:v1:x:{partition}:{prompt_id}``, where the partition hashes the
    namespace and ``llm_string``: the same prompt under two model configurations never
    shares an entry. A lookup is one ``get``; a write is one ``set`` with its TTL.

    Failures follow the cache's :class:`~llmemo.policy.FailurePolicy` (default: fail
    open — a failed lookup is a miss, a failed write is dropped, both counted, each store
    call under a time budget and a circuit breaker). Undecodable entries (garbage, another
    schema version, a key of another Redis type) are counted misses. Per-call controls
    come from :func:`llmemo.options`.

    Loop affinity is the store's: with a loop-bound store (``redis.asyncio``), use the
    cache only on that store's loop.
    """

    def __init__(
        self,
        store: KeyStore,
        *,
        namespace: str = "llmemo",
        ttl: float | None = None,
        policy: FailurePolicy | None = None,
        runtime: CacheRuntime | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Create a cache; does no I/O.

        Args:
            store: Where entries live.
            namespace: Key prefix of this cache (1-64 of ``[A-Za-z0-9_.:-]``).
            ttl: Default seconds an entry lives, or ``None`` for no expiry.
            policy: What failures do (ignored when ``runtime`` is given).
            runtime: Counters and guards shared with other cores of the same cache (e.g.
                one core per event loop); a new one by default.
            clock: Wall-clock seconds, used for entry ages.

        Raises:
            ConfigurationError: a bad ``namespace`` or ``ttl``.
        """
        self.config = CacheConfig(namespace=namespace, ttl=ttl)
        self.store = store
        self.runtime = runtime if runtime is not None else CacheRuntime(policy)
        self._clock = clock
        # An application uses few model configurations: remember their partitions.
        self._partitions: dict[str, str] = {}
        # Connecting happens once, before the first call's budget starts.
        prepare = getattr(store, "prepare", None)
        self._setup: OneTimeSetup | None = None if prepare is None else OneTimeSetup(prepare)

    def _pending_setup(self) -> OneTimeSetup | None:
        setup = self._setup
        return None if setup is None or setup.done else setup

    async def setup(self) -> None:
        """Do the one-time work of first use now (e.g. connect), instead of on the first
        call (where it runs outside the call's budget anyway). Optional.

        Raises:
            BackendError: the store failed (whatever the failure policy).
        """
        if self._setup is not None:
            await self._setup()

    @property
    def stats(self) -> CacheStats:
        """This cache's counters (shared by every core of the same runtime)."""
        return self.runtime.stats

    def key(self, prompt: str, llm_string: str) -> str:
        """The store key of ``(prompt, llm_string)`` in this cache."""
        partition = self._partitions.get(llm_string)
        if partition is None:
            partition = keys.partition_id(self.config.namespace, llm_string)
            if len(self._partitions) >= _PARTITION_MEMO_SIZE:
                self._partitions.clear()
            self._partitions[llm_string] = partition
        return keys.exact_key(self.config.namespace, partition, prompt)

    async def alookup(self, prompt: str, llm_string: str) -> CacheHit | None:
        """Return the entry of exactly this prompt and configuration, or ``None``.

        Raises:
            TypeError: ``prompt`` or ``llm_string`` is not a ``str``.
            BackendError: the store failed, with ``errors="raise"`` only.
        """
        started = time.perf_counter()
        stats = self.runtime.stats
        try:
            check_key_inputs(prompt, llm_string)
            if current_options().bypass_read:
                stats.add("bypassed_reads")
                return None
            key = self.key(prompt, llm_string)
            payload = await self.runtime.store_guard.call(
                "lookup",
                lambda: self._get(key),
                None,
                self._node_of(key),
                setup=self._pending_setup(),
            )
            if payload is not None:
                try:
                    entry = codec.decode(payload)
                except SerializationError:
                    stats.add("decode_errors")
                else:
                    stats.add("exact_hits")
                    age = max(0.0, self._clock() - entry.written_at)
                    return CacheHit(entry.value, "exact", 0.0, key.rsplit(":", 1)[1], age)
            stats.add("misses")
            return None
        finally:
            stats.observe_lookup(time.perf_counter() - started)

    def _node_of(self, key: str) -> str | None:
        # Per-node circuit breakers on a Redis Cluster: a dead shard opens only its own.
        node_of = getattr(self.store, "node_of", None)
        return None if node_of is None else node_of(key)

    async def _get(self, key: str) -> bytes | None:
        try:
            return await self.store.get(key)
        except (WrongTypeError, SerializationError):
            # Not an entry of ours (another Redis type under our key, or a reply the
            # store could not read): bad stored data.
            self.runtime.stats.add("decode_errors")
            return None

    async def aupdate(
        self, prompt: str, llm_string: str, value: Any, *, ttl: Any = DEFAULT
    ) -> bool:
        """Store ``value`` for ``(prompt, llm_string)``, replacing any previous entry.

        Returns whether the entry was stored (``False``: bypassed, or dropped by the
        fail-open policy).

        Args:
            prompt: The prompt.
            llm_string: The model configuration.
            value: A sequence of LangChain generations, or JSON data.
            ttl: Seconds this entry lives (``None``: no expiry); if omitted, the TTL of an
                enclosing ``llmemo.options(ttl=...)`` block, else the cache's ``ttl``.

        Raises:
            TypeError: bad ``prompt``/``llm_string``, or generations of a disallowed type.
            ConfigurationError: bad ``ttl``.
            SerializationError: the value is not encodable, with ``errors="raise"`` only
                (otherwise the write is dropped and counted in ``writes_unencodable``).
                Nothing is stored.
            BackendError: the store failed, with ``errors="raise"`` only (otherwise the
                write is dropped and counted in ``stats.writes_dropped``).

        An entry whose encoding is over the policy's ``max_entry_bytes`` is not sent
        (``False``; counted in ``writes_too_large`` and ``writes_dropped``).
        """
        check_key_inputs(prompt, llm_string)
        options = current_options()
        entry_ttl = resolve_ttl(ttl, options, self.config.ttl)
        payload = self.runtime.encoded(lambda: codec.encode(value, written_at=self._clock()))
        if payload is None:
            return False
        if options.bypass_write:
            self.runtime.stats.add("bypassed_writes")
            return False
        if self.runtime.too_large(payload):
            return False
        key = self.key(prompt, llm_string)
        done = await self.runtime.write_guard.call(
            "write",
            lambda: self._set(key, payload, entry_ttl),
            False,
            self._node_of(key),
            setup=self._pending_setup(),
        )
        self.runtime.stats.add("writes" if done else "writes_dropped")
        return done

    async def _set(self, key: str, payload: bytes, ttl: float | None) -> bool:
        await self.store.set(key, payload, ttl=ttl)
        return True

    async def atry_lead(self, prompt: str, llm_string: str, ttl: float) -> bool:
        """Take the cross-process lease of a missing entry (see
        :class:`~llmemo.stores.base.LockingKeyStore`): ``True`` if this caller should
        compute the value, ``False`` if another process already is. Always ``True`` on a
        store without leases, and when the store fails (fail open: compute).
        """
        store = self.store
        if not isinstance(store, LockingKeyStore):
            return True
        entries = f"{self.config.namespace}:{keys.KEY_SCHEMA}:x:"
        # Beside the entry, outside clear()'s prefix; it expires by itself.
        lease = f"{self.config.namespace}:{keys.KEY_SCHEMA}:l:" + self.key(
            prompt, llm_string
        ).removeprefix(entries)
        # A write (a full server refuses it), so the write breaker's; on the lookup's
        # path, so within the read budget.
        runtime = self.runtime
        taken = await runtime.write_guard.call(
            "lease",
            lambda: store.try_lock(lease, ttl),
            True,
            timeout=runtime.policy.operation_timeout,
        )
        return bool(taken)

    async def aclear(self, *, progress: Callable[[int], object] | None = None) -> int:
        """Remove every entry of this cache's namespace (and nothing else); return how many.

        An explicit administrative action: store errors propagate whatever the policy.
        Each of its commands may take the policy's ``admin_timeout`` on stores that
        accept it (the Redis stores).

        Args:
            progress: Called with the running count of removed keys after each batch, on
                stores that report progress (the Redis stores).
        """
        prefix = f"{self.config.namespace}:{keys.KEY_SCHEMA}:x:"
        return await clear_with_progress(self.store.clear, progress, prefix)

    async def aclose(self) -> None:
        """Close the store."""
        await self.store.aclose()
