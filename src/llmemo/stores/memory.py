"""In-process stores: the embedded default, needing no server.

Both stores are shared safely by every event loop and thread of the process (one
``threading.Lock`` each; no operation awaits while holding it), so a sync wrapper on its
own loop and async callers see the same entries. Time comes from an injectable
``clock`` (monotonic seconds by default), so TTL behaviour is testable without sleeping.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmemo.config import validate_optional_positive_int, validate_ttl
from llmemo.errors import ConfigurationError, SchemaMismatchError
from llmemo.stores.base import Vector, VectorMatch

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_ENTRIES", "MemoryKeyStore", "MemoryVectorStore"]

Clock = Callable[[], float]

#: Default entry bound of the in-memory stores (and of the in-memory LangChain caches).
DEFAULT_MAX_ENTRIES = 10_000
#: Default byte bound of the in-memory stores: 256 MiB (keys, ids, payloads and vectors).
DEFAULT_MAX_BYTES = 256 * 2**20


def _expiry(clock: Clock, ttl: float | None) -> float:
    ttl = validate_ttl(ttl)
    return math.inf if ttl is None else clock() + ttl


@dataclass(slots=True)
class _Entry:
    value: bytes
    expires_at: float
    size: int


class MemoryKeyStore:
    """A :class:`~llmemo.stores.base.KeyStore` in process memory, bounded, with TTL and LRU.

    Bounds: at most ``max_entries`` keys and ``max_bytes`` bytes (a key's size is its
    UTF-8 length plus its value's length); by default :data:`DEFAULT_MAX_ENTRIES` and
    :data:`DEFAULT_MAX_BYTES`, and ``None`` (passed explicitly) for no bound. When a
    write of a *new* key exceeds a bound, the least recently used keys are evicted until
    it fits. Updating an *existing* key never evicts another key because of the entry
    count; it evicts others only if its new value is larger and the byte bound requires
    it. A single entry larger than
    ``max_bytes`` is not stored (and replaces nothing).

    Expired entries are never returned; they are dropped when touched or evicted first.
    Reads and writes mark a key as recently used.
    """

    def __init__(
        self,
        *,
        max_entries: int | None = DEFAULT_MAX_ENTRIES,
        max_bytes: int | None = DEFAULT_MAX_BYTES,
        clock: Clock = time.monotonic,
    ) -> None:
        """Create an empty store.

        Args:
            max_entries: Largest number of keys kept (default 10,000), or ``None`` for
                no bound.
            max_bytes: Largest total size in bytes (default 256 MiB), or ``None`` for no
                bound.
            clock: Monotonic seconds; injectable for tests.

        Raises:
            ConfigurationError: a bound is not ``None`` or an integer > 0.
        """
        self._max_entries = validate_optional_positive_int(max_entries, parameter="max_entries")
        self._max_bytes = validate_optional_positive_int(max_bytes, parameter="max_bytes")
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Number of keys held, including expired ones not yet dropped."""
        return len(self._entries)

    @property
    def total_bytes(self) -> int:
        """Bytes held (keys plus values), as counted against ``max_bytes``."""
        return self._bytes

    def _live(self, key: str, now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= now:
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def _remove(self, key: str) -> bool:
        entry = self._entries.pop(key, None)
        if entry is None:
            return False
        self._bytes -= entry.size
        return True

    def _evict_lru(self) -> None:
        _, entry = self._entries.popitem(last=False)
        self._bytes -= entry.size

    async def get(self, key: str) -> bytes | None:
        """Return the live value of ``key`` or ``None``; marks it recently used."""
        with self._lock:
            entry = self._live(key, self._clock())
            return None if entry is None else entry.value

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Return the live value (or ``None``) of each key, in order."""
        with self._lock:
            now = self._clock()
            results: list[bytes | None] = []
            for key in keys:
                entry = self._live(key, now)
                results.append(None if entry is None else entry.value)
            return results

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """Store ``value`` under ``key`` with ``ttl`` seconds to live (``None``: no expiry).

        Raises:
            ConfigurationError: ``ttl`` is not ``None`` or a finite number > 0.
        """
        expires_at = _expiry(self._clock, ttl)
        size = len(key.encode("utf-8", "surrogatepass")) + len(value)
        with self._lock:
            existed = self._remove(key)
            if self._max_bytes is not None and size > self._max_bytes:
                return
            if self._max_bytes is not None:
                while self._entries and self._bytes + size > self._max_bytes:
                    self._evict_lru()
            if not existed and self._max_entries is not None:
                while len(self._entries) >= self._max_entries:
                    self._evict_lru()
            self._entries[key] = _Entry(value, expires_at, size)
            self._bytes += size

    async def delete(self, key: str) -> bool:
        """Remove ``key``; return whether a live value was there."""
        with self._lock:
            live = self._live(key, self._clock()) is not None
            self._remove(key)
            return live

    async def clear(self, prefix: str) -> int:
        """Remove every key starting with ``prefix`` (non-empty); return how many.

        Raises:
            ConfigurationError: ``prefix`` is empty.
        """
        if not isinstance(prefix, str) or not prefix:
            raise ConfigurationError(f"prefix must be a non-empty string; got {prefix!r}")
        with self._lock:
            doomed = [key for key in self._entries if key.startswith(prefix)]
            for key in doomed:
                self._remove(key)
            return len(doomed)

    async def aclose(self) -> None:
        """Nothing to release; present for the protocol."""


class _Partition:
    """Rows of one partition: normalised vectors in one contiguous float32 matrix.

    The matrix grows on demand, doubling (amortised O(1) per insert), and halves when
    three quarters of it are unused, so a partition's arrays stay within a small factor
    of its entries (a store of many one-entry partitions holds one row per partition).
    """

    __slots__ = ("expires", "ids", "matrix", "payloads", "rows")

    def __init__(self, dimension: int) -> None:
        import numpy as np

        self.matrix: npt.NDArray[np.float32] = np.empty((1, dimension), dtype=np.float32)
        self.expires: npt.NDArray[np.float64] = np.empty(1, dtype=np.float64)
        self.ids: list[str] = []
        self.payloads: list[bytes] = []
        self.rows: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def nbytes(self) -> int:
        """Bytes of the partition's arrays (matrix and expiry times)."""
        return int(self.matrix.nbytes + self.expires.nbytes)

    def _resize(self, capacity: int) -> None:
        import numpy as np

        count = len(self.ids)
        matrix = np.empty((capacity, self.matrix.shape[1]), dtype=np.float32)
        matrix[:count] = self.matrix[:count]
        expires = np.empty(capacity, dtype=np.float64)
        expires[:count] = self.expires[:count]
        self.matrix, self.expires = matrix, expires

    def put(self, entry_id: str, unit: npt.NDArray[np.float32], payload: bytes, exp: float) -> None:
        row = self.rows.get(entry_id)
        if row is None:
            row = len(self.ids)
            if row == self.matrix.shape[0]:
                self._resize(row * 2)
            self.ids.append(entry_id)
            self.payloads.append(payload)
            self.rows[entry_id] = row
        else:
            self.payloads[row] = payload
        self.matrix[row] = unit
        self.expires[row] = exp

    def remove(self, entry_id: str) -> bool:
        row = self.rows.pop(entry_id, None)
        if row is None:
            return False
        last = len(self.ids) - 1
        if row != last:
            # Swap the last row into the hole so the live rows stay contiguous.
            moved = self.ids[last]
            self.matrix[row] = self.matrix[last]
            self.expires[row] = self.expires[last]
            self.ids[row] = moved
            self.payloads[row] = self.payloads[last]
            self.rows[moved] = row
        self.ids.pop()
        self.payloads.pop()
        capacity = self.matrix.shape[0]
        if capacity >= 8 and len(self.ids) <= capacity // 4:
            self._resize(capacity // 2)
        return True


class MemoryVectorStore:
    """A :class:`~llmemo.stores.base.VectorStore` in process memory, on numpy.

    Exact search: one matrix-vector product over the partition's contiguous float32 rows
    (vectors are normalised on the way in), no per-entry Python loop. Entries expire like
    :class:`MemoryKeyStore` entries (same clock semantics); expired rows are never
    returned and are dropped when a search or read meets them.

    Bounds: at most ``max_entries`` entries over all partitions and ``max_bytes`` bytes
    (an entry's size is its partition's and id's UTF-8 length, its payload's length and
    4 bytes per dimension); by default :data:`DEFAULT_MAX_ENTRIES` and
    :data:`DEFAULT_MAX_BYTES`, and ``None`` (passed explicitly) for no bound. To make room
    for a new entry the least recently used entries (read, hit or written) are evicted;
    replacing an existing entry evicts others only if its new size needs it. An entry
    larger than ``max_bytes`` on its own is not stored (and evicts nothing).
    """

    def __init__(
        self,
        *,
        dimension: int | None = None,
        max_entries: int | None = DEFAULT_MAX_ENTRIES,
        max_bytes: int | None = DEFAULT_MAX_BYTES,
        clock: Clock = time.monotonic,
    ) -> None:
        """Create an empty store.

        Args:
            dimension: Vector dimension, or ``None`` to learn it from the first vector.
            max_entries: Largest number of entries over all partitions (default
                10,000), or ``None`` for no bound.
            max_bytes: Largest total size in bytes (default 256 MiB), or ``None`` for no
                bound.
            clock: Monotonic seconds; injectable for tests.

        Raises:
            ConfigurationError: a parameter is not ``None`` or an integer > 0.
        """
        self._dimension = validate_optional_positive_int(dimension, parameter="dimension")
        self._max_entries = validate_optional_positive_int(max_entries, parameter="max_entries")
        self._max_bytes = validate_optional_positive_int(max_bytes, parameter="max_bytes")
        self._clock = clock
        self._partitions: dict[str, _Partition] = {}
        # (partition, entry id) -> the entry's size in bytes, least recently used first.
        self._recency: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Number of entries held, including expired ones not yet dropped."""
        return len(self._recency)

    @property
    def dimension(self) -> int | None:
        """The vector dimension, once declared or learned."""
        return self._dimension

    @property
    def total_bytes(self) -> int:
        """Bytes held by the entries, as counted against ``max_bytes``."""
        return self._bytes

    def _unit(self, vector: Vector, parameter: str) -> npt.NDArray[np.float32]:
        import numpy as np

        array = np.asarray(vector, dtype=np.float64)
        if array.ndim != 1 or array.size == 0:
            raise ConfigurationError(f"{parameter} must be a non-empty 1-D vector")
        if self._dimension is not None and array.size != self._dimension:
            # What the store holds does not fit (the embedding model changed): a backend
            # fault the caches fail open on, as for the Redis stores.
            raise SchemaMismatchError(
                f"{parameter} has dimension {array.size}; this store holds "
                f"{self._dimension}-dimensional vectors"
            )
        if not np.all(np.isfinite(array)):
            raise ConfigurationError(f"{parameter} contains NaN or infinity")
        norm = float(np.linalg.norm(array))
        if norm == 0.0:
            raise ConfigurationError(f"{parameter} is the zero vector (no cosine distance)")
        return (array / norm).astype(np.float32)

    def _drop(self, partition: str, entry_id: str) -> bool:
        part = self._partitions.get(partition)
        if part is None or not part.remove(entry_id):
            return False
        self._bytes -= self._recency.pop((partition, entry_id), 0)
        if not part:
            del self._partitions[partition]
        return True

    async def add(
        self,
        partition: str,
        entry_id: str,
        vector: Vector,
        payload: bytes,
        *,
        ttl: float | None = None,
    ) -> None:
        """Insert or replace an entry (vector, payload, TTL together, under one lock).

        Raises:
            ConfigurationError: bad ``ttl``; ``vector`` of the wrong dimension, zero, or
                holding NaN/infinity.
        """
        expires_at = _expiry(self._clock, ttl)
        unit = self._unit(vector, "vector")
        size = (
            len(partition.encode("utf-8", "surrogatepass"))
            + len(entry_id.encode("utf-8", "surrogatepass"))
            + len(payload)
            + unit.nbytes
        )
        with self._lock:
            if self._dimension is None:
                self._dimension = int(unit.size)
            key = (partition, entry_id)
            existed = key in self._recency
            if self._max_bytes is not None and size > self._max_bytes:
                self._drop(partition, entry_id)
                return
            if self._max_bytes is not None:
                growth = size - self._recency.get(key, 0)
                while self._recency and self._bytes + growth > self._max_bytes:
                    self._evict_lru(key)
                    growth = size - self._recency.get(key, 0)
            if not existed and self._max_entries is not None:
                while len(self._recency) >= self._max_entries:
                    self._evict_lru(key)
            part = self._partitions.get(partition)
            if part is None:
                part = self._partitions[partition] = _Partition(self._dimension)
            part.put(entry_id, unit, payload, expires_at)
            self._bytes += size - self._recency.get(key, 0)
            self._recency[key] = size
            self._recency.move_to_end(key)

    def _evict_lru(self, keep: tuple[str, str]) -> None:
        """Drop the least recently used entry, ``keep`` (being replaced) last of all."""
        old = next(iter(self._recency))
        if old == keep and len(self._recency) > 1:
            self._recency.move_to_end(keep)
            old = next(iter(self._recency))
        self._drop(*old)

    async def get(self, partition: str, entry_id: str) -> bytes | None:
        """Return the payload of a live entry, or ``None``."""
        with self._lock:
            part = self._partitions.get(partition)
            row = None if part is None else part.rows.get(entry_id)
            if part is None or row is None:
                return None
            if part.expires[row] <= self._clock():
                self._drop(partition, entry_id)
                return None
            self._recency.move_to_end((partition, entry_id))
            return part.payloads[row]

    async def search(
        self,
        partition: str,
        vector: Vector,
        *,
        k: int = 1,
        max_distance: float = 2.0,
    ) -> list[VectorMatch]:
        """Return up to ``k`` live entries of ``partition`` within ``max_distance``.

        Raises:
            ConfigurationError: ``k`` < 1, or a bad ``vector``.
        """
        import numpy as np

        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ConfigurationError(f"k must be an integer >= 1; got {k!r}")
        query = self._unit(vector, "vector")
        with self._lock:
            part = self._partitions.get(partition)
            if part is None:
                return []
            count = len(part)
            distances = 1.0 - part.matrix[:count] @ query
            expired = part.expires[:count] <= self._clock()
            distances[expired] = np.inf
            candidates = np.flatnonzero(distances <= max_distance)
            if candidates.size > k:
                nearest = np.argpartition(distances[candidates], k - 1)[:k]
                candidates = candidates[nearest]
            order = candidates[np.argsort(distances[candidates], kind="stable")]
            matches = [
                VectorMatch(part.ids[row], max(0.0, float(distances[row])), part.payloads[row])
                for row in order
            ]
            for match in matches:
                self._recency.move_to_end((partition, match.entry_id))
            if expired.any():
                for row in np.flatnonzero(expired)[::-1]:
                    self._drop(partition, part.ids[int(row)])
            return matches

    async def delete(self, partition: str, entry_id: str) -> bool:
        """Remove one entry; return whether a live entry was there."""
        with self._lock:
            part = self._partitions.get(partition)
            row = None if part is None else part.rows.get(entry_id)
            live = part is not None and row is not None and bool(part.expires[row] > self._clock())
            self._drop(partition, entry_id)
            return live

    async def clear(self) -> int:
        """Remove every entry; return how many were held."""
        with self._lock:
            count = len(self._recency)
            self._partitions.clear()
            self._recency.clear()
            self._bytes = 0
            return count

    async def aclose(self) -> None:
        """Nothing to release; present for the protocol."""
