"""What only the in-memory stores promise: bounds, LRU order, and the injected clock."""

from __future__ import annotations

import numpy as np
import pytest

from llmemo.errors import ConfigurationError
from llmemo.stores.memory import MemoryKeyStore, MemoryVectorStore

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
