"""Which hybrid plan a partition-filtered KNN query asks RediSearch for.

A KNN query with a pre-filter (``(@partition:{p})=>[KNN ...]``) runs in one of two ways:
*ad hoc brute force* (score every document the filter matches) or *batches* (walk the
HNSW graph, keep the rows the filter passes, ask for the next batch until ``k`` pass).
Left to choose, RediSearch 2.10 picks brute force for a partition holding nearly the
whole index up to ~50k documents: on a 20,000-vector index (384-d), a partition of 19,900
entries took 5.3 ms against 0.8 ms in batches, i.e. llmemo's commonest deployment (one
model, one partition) scanned everything. Batches are wrong the other way round: a
100-entry partition inside 100,000 entries took 0.2 ms by the server's choice and ~8 ms in
batches (the graph walk finds few rows that pass).

So the store asks for ``HYBRID_POLICY BATCHES`` when it knows the partition is large, in
entries and as a share of the index, and leaves the choice to the server otherwise
(including before it knows anything). It learns both numbers by counting now and then,
in the same round trip as a search (``FT.SEARCH ... LIMIT 0 0`` of the partition's tag
and of the whole index): once per partition when first searched, then every
:data:`RECOUNT_S` seconds. A stale count only chooses a slower plan, never another
answer: both plans filter inside the query.

Not thread-safe; one instance per store (and so per event loop), like the store.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

__all__ = ["MIN_BATCH_ENTRIES", "MIN_BATCH_SHARE", "RECOUNT_S", "HybridPlanner"]

#: A partition is searched in batches from this many entries: below it brute force over
#: the partition costs no more than a batched graph walk (~0.7 ms each at 5,000 384-d
#: vectors, measured on 20k- and 100k-entry indexes), and the server's choice is as good.
MIN_BATCH_ENTRIES: Final = 5_000
#: ... and when it holds at least this share of the index's documents (below it, a batch
#: of the graph walk passes too few rows through the filter and batches cost more than
#: scanning the partition).
MIN_BATCH_SHARE: Final = 0.2
#: Seconds between two counts of a partition (and of the whole index).
RECOUNT_S: Final = 30.0
#: Partitions whose counts are remembered (least recently searched forgotten first).
MAX_PARTITIONS: Final = 4_096


class HybridPlanner:
    """Remembers approximate entry counts and says which plan each search should ask for.

    Counts are kept per partition and per index (a cluster store has one index per
    primary, and a partition's share is of its own primary's index).

    Args:
        clock: Monotonic seconds (injectable for tests).
        recount_s: Seconds before a count is taken again.
        max_partitions: Partitions remembered at most.
    """

    __slots__ = ("_clock", "_max_partitions", "_partitions", "_recount_s", "_totals")

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        recount_s: float = RECOUNT_S,
        max_partitions: int = MAX_PARTITIONS,
    ) -> None:
        self._clock = clock
        self._recount_s = recount_s
        self._max_partitions = max_partitions
        # partition -> (entries or None, monotonic time of the count's request)
        self._partitions: OrderedDict[str, tuple[int | None, float]] = OrderedDict()
        # index name -> (documents or None, monotonic time of the count's request)
        self._totals: dict[str, tuple[int | None, float]] = {}

    def batches(self, index: str, partition: str) -> bool:
        """Whether a search of ``partition`` in ``index`` should ask for
        ``HYBRID_POLICY BATCHES``: the partition is known to hold at least
        :data:`MIN_BATCH_ENTRIES` entries and :data:`MIN_BATCH_SHARE` of the index."""
        known = self._partitions.get(partition)
        total = self._totals.get(index)
        if known is None or known[0] is None or total is None or not total[0]:
            return False
        entries = known[0]
        return entries >= MIN_BATCH_ENTRIES and entries >= MIN_BATCH_SHARE * total[0]

    def due(self, index: str, partition: str) -> tuple[bool, bool]:
        """Whether to count ``partition`` and the whole of ``index`` with this search.

        A count found due is taken as requested now: concurrent searches do not ask for
        it again while its reply is on its way (a lost reply waits for the next period).
        """
        now = self._clock()
        known = self._partitions.get(partition)
        count_partition = known is None or now - known[1] >= self._recount_s
        if count_partition:
            self._partitions[partition] = (None if known is None else known[0], now)
            self._partitions.move_to_end(partition)
            while len(self._partitions) > self._max_partitions:
                self._partitions.popitem(last=False)
        total = self._totals.get(index)
        count_total = total is None or now - total[1] >= self._recount_s
        if count_total:
            if total is None and len(self._totals) >= self._max_partitions:
                self._totals.clear()  # index names churn only with a resharded cluster
            self._totals[index] = (None if total is None else total[0], now)
        return count_partition, count_total

    def note(self, index: str, partition: str, entries: int | None, total: int | None) -> None:
        """Record counts read from the server (``None``: not counted this time)."""
        known = self._partitions.get(partition)
        if entries is not None and known is not None:
            self._partitions[partition] = (entries, known[1])
        was = self._totals.get(index)
        if total is not None and was is not None:
            self._totals[index] = (total, was[1])

    def forget(self) -> None:
        """Drop every count (after the store was cleared): count again when next searched."""
        self._partitions.clear()
        self._totals.clear()
