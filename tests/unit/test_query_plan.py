"""The hybrid-plan choice of RediSearch KNN queries (``stores/redis/_plan.py``), with an
injected clock: which partitions are searched in batches, and when counts are due."""

from __future__ import annotations

from llmemo.stores.redis._plan import (
    MIN_BATCH_ENTRIES,
    MIN_BATCH_SHARE,
    RECOUNT_S,
    HybridPlanner,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def counted(planner: HybridPlanner, index: str, partition: str, entries: int, total: int) -> None:
    planner.due(index, partition)
    planner.note(index, partition, entries, total)


def test_nothing_known_leaves_the_plan_to_the_server() -> None:
    planner = HybridPlanner(clock=Clock())
    assert planner.batches("ix", "p") is False
    assert planner.due("ix", "p") == (True, True)
    assert planner.batches("ix", "p") is False  # asked, not answered yet


def test_a_large_partition_holding_most_of_the_index_is_searched_in_batches() -> None:
    planner = HybridPlanner(clock=Clock())
    counted(planner, "ix", "big", 19_900, 20_000)
    assert planner.batches("ix", "big") is True


def test_a_small_partition_in_a_large_index_is_left_to_the_server() -> None:
    planner = HybridPlanner(clock=Clock())
    counted(planner, "ix", "big", 99_900, 100_000)
    counted(planner, "ix", "small", 100, 100_000)
    assert planner.batches("ix", "small") is False
    assert planner.batches("ix", "big") is True


def test_thresholds_in_entries_and_share() -> None:
    planner = HybridPlanner(clock=Clock())
    total = 100 * MIN_BATCH_ENTRIES
    share_entries = int(MIN_BATCH_SHARE * total)
    cases = {
        "share-edge": (share_entries, total, True),
        "below-share": (share_entries - 1, total, False),
        "whole-but-few": (MIN_BATCH_ENTRIES - 1, MIN_BATCH_ENTRIES - 1, False),
        "few-edge": (MIN_BATCH_ENTRIES, MIN_BATCH_ENTRIES, True),
    }
    for name, (entries, index_total, _) in cases.items():
        counted(planner, f"ix-{name}", name, entries, index_total)
    for name, (_, _, batches) in cases.items():
        assert planner.batches(f"ix-{name}", name) is batches, name


def test_counts_are_asked_once_per_period_even_by_concurrent_searches() -> None:
    clock = Clock()
    planner = HybridPlanner(clock=clock)
    assert planner.due("ix", "p") == (True, True)
    assert planner.due("ix", "p") == (False, False)  # the first request's reply is pending
    assert planner.due("ix", "q") == (True, False)  # a new partition; the index was counted
    clock.now += RECOUNT_S - 0.1
    assert planner.due("ix", "p") == (False, False)
    clock.now += 0.1
    assert planner.due("ix", "p") == (True, True)


def test_a_recount_keeps_the_plan_until_its_answer_changes_it() -> None:
    clock = Clock()
    planner = HybridPlanner(clock=clock)
    counted(planner, "ix", "p", 50_000, 50_000)
    clock.now += RECOUNT_S
    assert planner.due("ix", "p") == (True, True)
    assert planner.batches("ix", "p") is True  # the old count holds meanwhile
    planner.note("ix", "p", 10, 50_000)  # the partition has shrunk (entries expired)
    assert planner.batches("ix", "p") is False


def test_a_lost_count_reply_leaves_the_old_plan() -> None:
    planner = HybridPlanner(clock=Clock())
    counted(planner, "ix", "p", 50_000, 50_000)
    planner.note("ix", "p", None, None)
    assert planner.batches("ix", "p") is True


def test_share_is_of_the_partitions_own_index() -> None:
    # A cluster keeps one index per primary: a partition's share is of its own.
    planner = HybridPlanner(clock=Clock())
    counted(planner, "ix:{a}", "p", 10_000, 12_000)
    counted(planner, "ix:{b}", "q", 10_000, 1_000_000)
    assert planner.batches("ix:{a}", "p") is True
    assert planner.batches("ix:{b}", "q") is False


def test_forget_drops_every_count() -> None:
    planner = HybridPlanner(clock=Clock())
    counted(planner, "ix", "p", 50_000, 50_000)
    planner.forget()
    assert planner.batches("ix", "p") is False
    assert planner.due("ix", "p") == (True, True)


def test_partitions_remembered_are_bounded() -> None:
    planner = HybridPlanner(clock=Clock(), max_partitions=3)
    for name in ("a", "b", "c", "d"):
        counted(planner, "ix", name, 50_000, 50_000)
    assert planner.batches("ix", "a") is False  # least recently searched: forgotten
    assert all(planner.batches("ix", name) for name in ("b", "c", "d"))
    assert planner.due("ix", "a") == (True, False)
