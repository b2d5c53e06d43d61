"""The exact cache: same namespace, model configuration and prompt → one key lookup."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from llmemo import codec, keys
from llmemo.caches.base import CacheHit, CacheStats, check_key_inputs
from llmemo.config import CacheConfig, validate_ttl
from llmemo.errors import SerializationError
from llmemo.stores.base import KeyStore

__all__ = ["ExactCache"]

_DEFAULT = object()
_PARTITION_MEMO_SIZE = 256


class ExactCache:
    """An async exact-match cache over any :class:`~llmemo.stores.base.KeyStore`.

    Keys are ``{namespace}:v1:x:{partition}:{prompt_id}``, where the partition hashes the
    namespace and ``llm_string``: the same prompt under two model configurations never
    shares an entry. A lookup is one ``get``; a write is one ``set`` with its TTL.

    Loop affinity is the store's: with a loop-bound store (``redis.asyncio``), use the
    cache only on that store's loop. Errors of the store propagate (typed
    :mod:`llmemo.errors` backend errors); undecodable entries are counted misses.
    """

    def __init__(
        self,
        store: KeyStore,
        *,
        namespace: str = "llmemo",
        ttl: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Create a cache; does no I/O.

        Args:
            store: Where entries live.
            namespace: Key prefix of this cache (1-64 of ``[A-Za-z0-9_.:-]``).
            ttl: Default seconds an entry lives, or ``None`` for no expiry.
            clock: Wall-clock seconds, used for entry ages.

        Raises:
            ConfigurationError: a bad ``namespace`` or ``ttl``.
        """
        self.config = CacheConfig(namespace=namespace, ttl=ttl)
        self.store = store
        self.stats = CacheStats()
        self._clock = clock
        # An application uses few model configurations: remember their partitions.
        self._partitions: dict[str, str] = {}

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
            BackendError: the store failed (subclasses by kind).
        """
        check_key_inputs(prompt, llm_string)
        key = self.key(prompt, llm_string)
        payload = await self.store.get(key)
        if payload is not None:
            try:
                entry = codec.decode(payload)
            except SerializationError:
                self.stats.add("decode_errors")
            else:
                self.stats.add("exact_hits")
                age = max(0.0, self._clock() - entry.written_at)
                return CacheHit(entry.value, "exact", 0.0, key.rsplit(":", 1)[1], age)
        self.stats.add("misses")
        return None

    async def aupdate(
        self, prompt: str, llm_string: str, value: Any, *, ttl: Any = _DEFAULT
    ) -> None:
        """Store ``value`` for ``(prompt, llm_string)``, replacing any previous entry.

        Args:
            prompt: The prompt.
            llm_string: The model configuration.
            value: A sequence of LangChain generations, or JSON data.
            ttl: Seconds this entry lives (``None``: no expiry); the cache's ``ttl`` if
                omitted.

        Raises:
            TypeError: bad ``prompt``/``llm_string``, or generations of a disallowed type.
            ConfigurationError: bad ``ttl``.
            SerializationError: the value is not encodable. Nothing is stored on error.
            BackendError: the store failed.
        """
        check_key_inputs(prompt, llm_string)
        entry_ttl = self.config.ttl if ttl is _DEFAULT else validate_ttl(ttl)
        payload = codec.encode(value, written_at=self._clock())
        await self.store.set(self.key(prompt, llm_string), payload, ttl=entry_ttl)
        self.stats.add("writes")

    async def aclear(self) -> int:
        """Remove every entry of this cache's namespace (and nothing else); return how many."""
        return await self.store.clear(f"{self.config.namespace}:{keys.KEY_SCHEMA}:x:")

    async def aclose(self) -> None:
        """Close the store."""
        await self.store.aclose()
