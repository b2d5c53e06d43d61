"""A small thread-safe LRU, for in-process memos (embeddings, verifier signatures and
parsed signatures, judge verdicts). Private to llmemo."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["LRU"]

V = TypeVar("V")


class LRU(Generic[V]):
    """At most ``size`` entries, the least recently used evicted first; ``size == 0``
    stores nothing. Safe to use from several threads. ``None`` values are not storable
    (``get`` returns ``None`` for a missing key): wrap them (e.g. in a 1-tuple).

    With ``max_bytes`` (and ``weigh``, which tells an entry's size in bytes from its key
    and value) the entries also weigh at most ``max_bytes`` together: least recently used
    entries are evicted until a new one fits, and an entry heavier than ``max_bytes`` on
    its own is not stored (it replaces nothing, and an older value of its key is dropped).
    """

    def __init__(
        self,
        size: int,
        *,
        max_bytes: int | None = None,
        weigh: Callable[[Hashable, V], int] | None = None,
    ) -> None:
        if (max_bytes is None) != (weigh is None):
            raise ValueError("LRU: max_bytes and weigh go together")
        self.size = size
        self.max_bytes = max_bytes
        self._weigh = weigh
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._weights: dict[Hashable, int] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def total_bytes(self) -> int:
        """What the entries weigh together, in bytes, as ``weigh`` counts (0 without it)."""
        return self._bytes

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: V) -> None:
        if self.size == 0:
            return
        weight = 0 if self._weigh is None else self._weigh(key, value)
        with self._lock:
            if self._weigh is not None:
                self._bytes -= self._weights.pop(key, 0)
            if self.max_bytes is not None and weight > self.max_bytes:
                self._items.pop(key, None)
                return
            self._items[key] = value
            self._items.move_to_end(key)
            if self._weigh is not None:
                self._weights[key] = weight
                self._bytes += weight
            while len(self._items) > self.size or (
                self.max_bytes is not None and self._bytes > self.max_bytes
            ):
                evicted, _ = self._items.popitem(last=False)
                self._bytes -= self._weights.pop(evicted, 0)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
