"""The narrow async protocols every backend implements.

Caches talk to backends only through these three protocols, so a new backend is a new
class here, never a change to the caches.

Conventions shared by every store:

* **Bytes in, bytes out.** Stores move opaque ``bytes`` payloads; the codec owns the
  format.
* **TTL** is a number of seconds (``float``, > 0) or ``None`` for "never expires". A
  value is written atomically with its TTL (one command or one locked step): a reader
  never sees a value whose TTL is not set yet, and never sees an expired value.
* **Distance** is cosine distance in ``[0, 2]`` (0 = same direction). Stores whose
  engine reports a similarity convert it before returning.
* **Partitions and entry ids** are opaque tokens made of ``[0-9A-Za-z_-]`` (llmemo's
  caches pass lowercase hex). A vector search only ever sees entries of the partition it
  names: the filter is part of the query, never applied to results afterwards.
* **Errors**: stores raise the :mod:`llmemo.errors` backend errors
  (:class:`~llmemo.errors.BackendUnavailableError`,
  :class:`~llmemo.errors.BackendTimeoutError`, :class:`~llmemo.errors.CapabilityError`)
  with the driver's exception as ``__cause__``; they never swallow errors. A reply a
  store cannot read (foreign or hostile data: another shape, a number that is not one)
  raises :class:`~llmemo.errors.SerializationError`, which caches count as undecodable
  data (a miss), never as an outage. Turning an error into a miss is the cache's policy,
  not the store's.
* **Loop affinity**: a store holding loop-bound resources (a ``redis.asyncio`` pool) must
  only be used on the event loop that created it. In-memory stores are not loop-bound and
  may be shared by caches running on several loops and threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vector = Sequence[float] | npt.NDArray[np.floating]
else:
    Vector = Sequence[float]

__all__ = [
    "Embedder",
    "KeyStore",
    "LockingKeyStore",
    "ProbingVectorStore",
    "Vector",
    "VectorMatch",
    "VectorStore",
]


@dataclass(frozen=True, slots=True)
class VectorMatch:
    """One result of :meth:`VectorStore.search`.

    Attributes:
        entry_id: The id the entry was added under.
        distance: Cosine distance between the query and the entry, in ``[0, 2]``.
        payload: The bytes stored with the vector.
    """

    entry_id: str
    distance: float
    payload: bytes


@runtime_checkable
class KeyStore(Protocol):
    """A key → bytes store with per-key TTL.

    Keys are strings chosen by the caller (llmemo's caches build them under their own
    namespace prefix).
    """

    async def get(self, key: str) -> bytes | None:
        """Return the value stored under ``key``, or ``None`` if absent or expired."""
        ...

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Return one value (or ``None``) per key, in the order given, in one round trip."""
        ...

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """Store ``value`` under ``key``, replacing any previous value and its TTL.

        Args:
            key: The key.
            value: The payload.
            ttl: Seconds until the value expires (> 0), or ``None`` to keep it until
                deleted or evicted. Value and TTL are written atomically.
        """
        ...

    async def delete(self, key: str) -> bool:
        """Remove ``key``; return whether it existed."""
        ...

    async def clear(self, prefix: str) -> int:
        """Remove every key that starts with ``prefix`` and nothing else.

        Args:
            prefix: A non-empty key prefix (an empty one raises
                :class:`~llmemo.errors.ConfigurationError`: a store never empties itself
                wholesale).

        Returns:
            How many keys were removed.
        """
        ...

    async def aclose(self) -> None:
        """Release the store's connections. Idempotent."""
        ...


@runtime_checkable
class LockingKeyStore(KeyStore, Protocol):
    """An optional extension: a key store shared by processes that can hand out leases.

    Used for cross-process single-flight: the first process to miss on a key takes the
    lease and calls the model; the others wait (bounded) for its entry to appear.
    """

    async def try_lock(self, key: str, ttl: float) -> bool:
        """Atomically create ``key`` if absent, expiring after ``ttl`` seconds (> 0);
        return whether this call created it."""
        ...


@runtime_checkable
class VectorStore(Protocol):
    """Vectors with payloads, searched by cosine distance inside one partition.

    A store has its own name/prefix chosen at construction; :meth:`clear` removes exactly
    the entries of that store. An entry is identified by ``(partition, entry_id)``.
    The vector dimension is learned from the first vector the store sees (or declared at
    construction); a vector of another dimension raises
    :class:`~llmemo.errors.ConfigurationError`.
    """

    async def add(
        self,
        partition: str,
        entry_id: str,
        vector: Vector,
        payload: bytes,
        *,
        ttl: float | None = None,
    ) -> None:
        """Insert or replace an entry: vector, payload and TTL together, atomically.

        Args:
            partition: The partition token the entry belongs to.
            entry_id: The entry's id inside the partition.
            vector: The embedding (any non-zero vector; stores normalise as needed).
            payload: Bytes returned with the entry by :meth:`get` and :meth:`search`.
            ttl: Seconds until the entry expires (> 0), or ``None``.
        """
        ...

    async def get(self, partition: str, entry_id: str) -> bytes | None:
        """Return the payload of one entry by id (no vector query), or ``None``."""
        ...

    async def search(
        self,
        partition: str,
        vector: Vector,
        *,
        k: int = 1,
        max_distance: float = 2.0,
    ) -> list[VectorMatch]:
        """Return up to ``k`` nearest live entries of ``partition``, nearest first.

        Only entries with ``distance <= max_distance`` are returned. The partition filter
        and the distance bound are applied inside the query, and payloads come back with
        the results (one round trip for remote stores). A partition or store with no
        entries yet returns ``[]``.
        """
        ...

    async def delete(self, partition: str, entry_id: str) -> bool:
        """Remove one entry; return whether it existed."""
        ...

    async def clear(self) -> int:
        """Remove every entry of this store (all partitions); return how many."""
        ...

    async def aclose(self) -> None:
        """Release the store's connections. Idempotent."""
        ...


@runtime_checkable
class ProbingVectorStore(VectorStore, Protocol):
    """An optional extension: a vector store that can read one entry by id and run a
    vector query in a single round trip.

    :class:`~llmemo.caches.semantic.SemanticCache` uses it when the prompt's vector is
    already at hand (memoised), so that an exact-first lookup costs one round trip.
    """

    async def get_or_search(
        self,
        partition: str,
        entry_id: str,
        vector: Vector,
        *,
        k: int = 1,
        max_distance: float = 2.0,
    ) -> tuple[bytes | BaseException | None, list[VectorMatch]]:
        """Return ``(payload of entry_id, [])`` when that entry exists (the query may or
        may not have run), else ``(None, search(...))``. A key of another type where the
        entry would be comes back as a :class:`~llmemo.errors.WrongTypeError` in the
        payload's place, with the query's matches.

        Raises:
            As :meth:`VectorStore.get` and :meth:`VectorStore.search`.
        """
        ...


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors without blocking the event loop.

    Implementations that compute on the CPU or call a sync-only client must run that work
    in a worker thread (``anyio.to_thread.run_sync``), never on the loop.
    """

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Return one vector per text, in order, all of the same dimension."""
        ...
