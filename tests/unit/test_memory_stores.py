"""What only the in-memory stores promise: bounds, LRU order, and the injected clock."""

from __future__ import annotations

import numpy as np
import pytest

from llmemo.adapters.langchain import InMemoryCache, InMemorySemanticCache
from llmemo.errors import ConfigurationError
from llmemo.stores.memory import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_ENTRIES,
    MemoryKeyStore,
    MemoryVectorStore,
)

from harness import FakeClock


async def test_ttl_follows_the_injected_clock_exactly() -> None:
    clock = FakeClock()
    store = MemoryKeyStore(clock=clock)
    await store.set("k", b"v", ttl=10)
    await clock.elapse(9.999)
    assert await store.get("k") == b"v"
    await clock.elapse(0.001)
    assert await store.get("k") is None
    assert len(store) == 0  # dropped when touched


async def test_lru_evicts_least_recently_used() -> None:
    store = MemoryKeyStore(max_entries=3)
    for key in "abc":
        await store.set(key, b"v")
    assert await store.get("a") == b"v"  # a is now most recent
    await store.set("d", b"v")
    assert await store.get_many(list("abcd")) == [b"v", None, b"v", b"v"]


async def test_updating_an_existing_key_under_pressure_evicts_nothing() -> None:
    store = MemoryKeyStore(max_entries=3)
    for key in "abc":
        await store.set(key, b"v")
    await store.set("a", b"new")  # full, but "a" exists: nothing else may go
    assert await store.get_many(list("abc")) == [b"new", b"v", b"v"]
    assert len(store) == 3


async def test_byte_bound_evicts_until_the_new_value_fits() -> None:
    store = MemoryKeyStore(max_bytes=100)
    await store.set("a", b"x" * 40)  # 41 bytes with the key
    await store.set("b", b"x" * 40)
    await store.set("c", b"x" * 40)  # 123 > 100: "a" goes
    assert await store.get_many(["a", "b", "c"]) == [None, b"x" * 40, b"x" * 40]
    assert store.total_bytes == 82


async def test_same_size_update_under_byte_pressure_evicts_nothing() -> None:
    store = MemoryKeyStore(max_bytes=82)
    await store.set("a", b"x" * 40)
    await store.set("b", b"x" * 40)
    await store.set("a", b"y" * 40)
    assert await store.get_many(["a", "b"]) == [b"y" * 40, b"x" * 40]


async def test_value_larger_than_the_bound_is_not_stored_and_replaces_nothing() -> None:
    store = MemoryKeyStore(max_bytes=50)
    await store.set("a", b"small")
    await store.set("b", b"x" * 100)
    assert await store.get("b") is None
    assert await store.get("a") == b"small"


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10"])
def test_bounds_are_validated(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="max_entries"):
        MemoryKeyStore(max_entries=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_bytes"):
        MemoryKeyStore(max_bytes=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_entries"):
        MemoryVectorStore(max_entries=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_bytes"):
        MemoryVectorStore(max_bytes=bad)  # type: ignore[arg-type]


async def test_vector_store_lru_bound_spans_partitions() -> None:
    store = MemoryVectorStore(max_entries=2)
    await store.add("p1", "a", [1.0, 0.0], b"a")
    await store.add("p2", "b", [0.0, 1.0], b"b")
    assert await store.get("p1", "a") == b"a"  # "b" becomes the least recent
    await store.add("p1", "c", [1.0, 1.0], b"c")
    assert await store.get("p2", "b") is None
    assert await store.get("p1", "a") == b"a"
    await store.add("p1", "a", [1.0, 0.1], b"a2")  # replacing never evicts
    assert len(store) == 2


async def test_vector_store_rows_stay_contiguous_after_deletes() -> None:
    store = MemoryVectorStore()
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(50, 8))
    for index, vector in enumerate(vectors):
        await store.add("p", str(index), vector, str(index).encode())
    for index in range(0, 50, 3):
        await store.delete("p", str(index))
    for index, vector in enumerate(vectors):
        matches = await store.search("p", vector, k=1, max_distance=1e-5)
        expected = [] if index % 3 == 0 else [str(index)]
        assert [m.entry_id for m in matches] == expected
        if expected:
            assert matches[0].payload == str(index).encode()


@pytest.mark.parametrize(
    "vector",
    [[0.0, 0.0], [float("nan"), 1.0], [float("inf"), 1.0], [], [[1.0, 2.0]]],
    ids=["zero", "nan", "inf", "empty", "2d"],
)
async def test_vector_store_refuses_unusable_vectors(vector: object) -> None:
    store = MemoryVectorStore()
    with pytest.raises(ConfigurationError, match="vector"):
        await store.add("p", "e", vector, b"v")  # type: ignore[arg-type]
    assert len(store) == 0


async def test_declared_dimension_is_enforced() -> None:
    store = MemoryVectorStore(dimension=3)
    with pytest.raises(ConfigurationError, match="dimension"):
        await store.add("p", "e", [1.0, 0.0], b"v")
    with pytest.raises(ConfigurationError, match="dimension"):
        await store.search("p", [1.0, 0.0])


async def test_search_k_is_validated() -> None:
    store = MemoryVectorStore()
    with pytest.raises(ConfigurationError, match="k must"):
        await store.search("p", [1.0, 0.0], k=0)


# -- bounded by default ------------------------------------------------------------------


async def test_the_stores_are_bounded_by_default_and_unbounded_only_when_asked() -> None:
    keys = MemoryKeyStore()
    vectors = MemoryVectorStore()
    for n in range(DEFAULT_MAX_ENTRIES + 5):
        await keys.set(f"k{n}", b"v")
        await vectors.add(f"p{n % 7}", f"e{n}", [1.0, float(n)], b"v")
    assert len(keys) == DEFAULT_MAX_ENTRIES
    assert len(vectors) == DEFAULT_MAX_ENTRIES
    assert await keys.get("k0") is None and await keys.get(f"k{DEFAULT_MAX_ENTRIES + 4}") == b"v"
    unbounded = MemoryKeyStore(max_entries=None, max_bytes=None)
    for n in range(DEFAULT_MAX_ENTRIES + 5):
        await unbounded.set(f"k{n}", b"v")
    assert len(unbounded) == DEFAULT_MAX_ENTRIES + 5


async def test_the_default_byte_bound_holds() -> None:
    store = MemoryKeyStore()
    big = b"x" * (DEFAULT_MAX_BYTES // 8)
    for n in range(12):
        await store.set(f"k{n}", big)
    assert store.total_bytes <= DEFAULT_MAX_BYTES
    assert len(store) == 7


def test_the_in_memory_langchain_caches_are_bounded_by_default() -> None:
    from langchain_core.outputs import Generation

    from fakes import ConceptEmbeddings

    exact = InMemoryCache()
    for n in range(DEFAULT_MAX_ENTRIES + 5):
        exact.update(f"prompt {n}", "llm", [Generation(text="answer")])
    store = exact.core().store  # type: ignore[attr-defined]
    assert isinstance(store, MemoryKeyStore) and len(store) == DEFAULT_MAX_ENTRIES
    assert exact.lookup("prompt 0", "llm") is None
    assert exact.lookup(f"prompt {DEFAULT_MAX_ENTRIES + 4}", "llm") is not None

    semantic = InMemorySemanticCache(ConceptEmbeddings())
    vectors = semantic.core().store  # type: ignore[attr-defined]
    assert isinstance(vectors, MemoryVectorStore)
    assert (vectors._max_entries, vectors._max_bytes) == (DEFAULT_MAX_ENTRIES, DEFAULT_MAX_BYTES)
    unbounded = InMemoryCache(maxsize=None, max_bytes=None).core().store  # type: ignore[attr-defined]
    assert (unbounded._max_entries, unbounded._max_bytes) == (None, None)


async def test_vector_store_byte_bound_evicts_least_recent_and_refuses_oversized() -> None:
    # Each entry: "p" (1) + id (1) + payload (40) + 2 float32 (8) = 50 bytes.
    store = MemoryVectorStore(max_bytes=120)
    for entry_id in "abc":
        await store.add("p", entry_id, [1.0, 0.5], b"x" * 40)
    assert [await store.get("p", e) for e in "abc"] == [None, b"x" * 40, b"x" * 40]
    assert store.total_bytes == 100
    # "b" (least recent, being replaced) grows by 21: past the bound, so "c" goes.
    await store.add("p", "b", [1.0, 0.5], b"y" * 61)
    assert (await store.get("p", "c"), await store.get("p", "b")) == (None, b"y" * 61)
    assert store.total_bytes == 71
    await store.add("q", "z", [1.0, 0.5], b"z" * 200)  # larger than the bound on its own
    assert await store.get("q", "z") is None
    assert await store.get("p", "b") == b"y" * 61
    assert await store.clear() == 1
    assert store.total_bytes == 0


async def test_many_one_entry_partitions_use_memory_proportional_to_entries() -> None:
    dimension = 64
    partitions = 10_000
    store = MemoryVectorStore(dimension=dimension, max_entries=None, max_bytes=None)
    rng = np.random.default_rng(1)
    for n, vector in enumerate(rng.normal(size=(partitions, dimension))):
        await store.add(f"partition {n}", "only", vector, b"v")
    per_row = dimension * 4 + 8  # a float32 vector and a float64 expiry time
    held = sum(p.matrix.nbytes + p.expires.nbytes for p in store._partitions.values())
    assert held == partitions * per_row  # one row each, no headroom


async def test_a_partition_grows_amortised_and_shrinks_after_deletes() -> None:
    store = MemoryVectorStore(max_entries=None, max_bytes=None)
    rng = np.random.default_rng(2)
    vectors = rng.normal(size=(1000, 8))
    capacities = set()
    for n, vector in enumerate(vectors):
        await store.add("p", str(n), vector, b"v")
        capacities.add(store._partitions["p"].matrix.shape[0])
    assert capacities == {2**i for i in range(11)}  # doubling: ~log2(n) copies in all
    for n in range(990):
        await store.delete("p", str(n))
    assert store._partitions["p"].matrix.shape[0] <= 4 * 10
    for n in range(990, 1000):
        matches = await store.search("p", vectors[n], k=1, max_distance=1e-5)
        assert [m.entry_id for m in matches] == [str(n)]
