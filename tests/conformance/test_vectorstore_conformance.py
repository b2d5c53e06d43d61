"""The VectorStore contract, run against every backend in ``VECTOR_STORE_BACKENDS``.

Distances are compared with numpy's cosine distance within ``TOLERANCE``: stores may
quantize (vector sets default to 8-bit), and approximate indexes are exact at these sizes.
"""

from __future__ import annotations

import numpy as np
import pytest

from llmemo.errors import ConfigurationError
from llmemo.stores.base import VectorStore

from harness import Harness

DIM = 16
TOLERANCE = 0.03
P1 = "0123456789abcdef0123456789abcdef"
P2 = "fedcba9876543210fedcba9876543210"


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(1.0 - np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def random_vectors(count: int, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, DIM)).astype(np.float32)


def near(vector: np.ndarray, scale: float, seed: int = 1) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(size=vector.shape).astype(np.float32)
    return vector + scale * float(np.linalg.norm(vector)) * noise / float(np.linalg.norm(noise))


async def test_is_a_vector_store(vector_store_harness: Harness[VectorStore]) -> None:
    assert isinstance(vector_store_harness.store, VectorStore)


async def test_empty_store_finds_nothing(vector_store_harness: Harness[VectorStore]) -> None:
    store = vector_store_harness.store
    assert await store.search(P1, random_vectors(1)[0], k=3) == []
    assert await store.get(P1, "missing") is None


async def test_add_then_get_and_exact_search(vector_store_harness: Harness[VectorStore]) -> None:
    store = vector_store_harness.store
    vector = random_vectors(1)[0]
    payload = b"\x00payload\xff" + "✓".encode()
    await store.add(P1, "e1", vector, payload)
    assert await store.get(P1, "e1") == payload
    [match] = await store.search(P1, vector, k=1, max_distance=0.1)
    assert match.entry_id == "e1"
    assert match.payload == payload
    assert match.distance == pytest.approx(0.0, abs=TOLERANCE)


async def test_accepts_plain_float_lists(vector_store_harness: Harness[VectorStore]) -> None:
    store = vector_store_harness.store
    vector = [float(x) for x in random_vectors(1)[0]]
    await store.add(P1, "e1", vector, b"v")
    [match] = await store.search(P1, vector)
    assert match.entry_id == "e1"


async def test_results_are_nearest_first_with_cosine_distances(
    vector_store_harness: Harness[VectorStore],
) -> None:
    store = vector_store_harness.store
    vectors = random_vectors(40)
    for index, vector in enumerate(vectors):
        await store.add(P1, f"e{index}", vector, f"payload-{index}".encode())
    query = near(vectors[3], 0.3, seed=11)
    expected = sorted(
        ((cosine_distance(query, v), f"e{i}") for i, v in enumerate(vectors)),
    )[:5]
    matches = await store.search(P1, query, k=5)
    assert len(matches) == 5
    assert matches[0].entry_id == "e3"
    assert [m.distance for m in matches] == sorted(m.distance for m in matches)
    for match, (distance, _) in zip(matches, expected, strict=True):
        assert match.distance == pytest.approx(distance, abs=TOLERANCE)
        assert 0.0 <= match.distance <= 2.0
        assert match.payload == f"payload-{match.entry_id[1:]}".encode()
    assert {m.entry_id for m in matches[:3]} == {e for _, e in expected[:3]}


async def test_opposite_vectors_are_at_distance_two(
    vector_store_harness: Harness[VectorStore],
) -> None:
    store = vector_store_harness.store
    vector = random_vectors(1)[0]
    await store.add(P1, "opposite", -vector, b"v")
    [match] = await store.search(P1, vector, max_distance=2.0)
    assert match.distance == pytest.approx(2.0, abs=TOLERANCE)


async def test_partition_is_a_prefilter(vector_store_harness: Harness[VectorStore]) -> None:
    store = vector_store_harness.store
    vectors = random_vectors(2)
    query = vectors[0]
    # The identical vector sits in another partition; only the far one is in ours.
    await store.add(P2, "other", query, b"other")
    await store.add(P1, "ours", vectors[1], b"ours")
    matches = await store.search(P1, query, k=1, max_distance=2.0)
    assert [m.entry_id for m in matches] == ["ours"]
    assert await store.get(P1, "other") is None
    assert [m.entry_id for m in await store.search(P2, query, k=5)] == ["other"]


async def test_max_distance_bounds_the_results(
    vector_store_harness: Harness[VectorStore],
) -> None:
    store = vector_store_harness.store
    base = random_vectors(1)[0]
    close, far = near(base, 0.1, seed=2), near(base, 2.0, seed=3)
    await store.add(P1, "close", close, b"c")
    await store.add(P1, "far", far, b"f")
    far_distance = cosine_distance(base, far)
    assert far_distance > 0.3
    matches = await store.search(P1, base, k=10, max_distance=0.2)
    assert [m.entry_id for m in matches] == ["close"]
    assert await store.search(P1, -close, k=10, max_distance=0.2) == []


async def test_k_limits_the_results(vector_store_harness: Harness[VectorStore]) -> None:
    store = vector_store_harness.store
    for index, vector in enumerate(random_vectors(10)):
        await store.add(P1, f"e{index}", vector, b"v")
    assert len(await store.search(P1, random_vectors(1, seed=99)[0], k=3)) == 3
    assert len(await store.search(P1, random_vectors(1, seed=99)[0], k=50)) == 10


async def test_add_replaces_an_entry(vector_store_harness: Harness[VectorStore]) -> None:
    store = vector_store_harness.store
    first, second = random_vectors(2)
    await store.add(P1, "e", first, b"old")
    await store.add(P1, "e", second, b"new")
    assert await store.get(P1, "e") == b"new"
    matches = await store.search(P1, second, k=5)
    assert [(m.entry_id, m.payload) for m in matches] == [("e", b"new")]
    assert matches[0].distance == pytest.approx(0.0, abs=TOLERANCE)


async def test_delete(vector_store_harness: Harness[VectorStore]) -> None:
    store = vector_store_harness.store
    vector = random_vectors(1)[0]
    await store.add(P1, "e", vector, b"v")
    assert await store.delete(P1, "e") is True
    assert await store.get(P1, "e") is None
    assert await store.search(P1, vector, k=5) == []
    assert await store.delete(P1, "e") is False


async def test_ttl_expires_entries(vector_store_harness: Harness[VectorStore]) -> None:
    store = vector_store_harness.store
    short, long, forever = random_vectors(3)
    await store.add(P1, "short", short, b"s", ttl=0.3)
    await store.add(P1, "long", long, b"l", ttl=60)
    await store.add(P1, "forever", forever, b"f")
    assert await store.get(P1, "short") == b"s"
    await vector_store_harness.elapse(0.6)
    assert await store.get(P1, "short") is None
    found = {m.entry_id for m in await store.search(P1, short, k=10, max_distance=2.0)}
    assert found == {"long", "forever"}
    assert await store.get(P1, "long") == b"l"


async def test_replacing_resets_the_ttl(vector_store_harness: Harness[VectorStore]) -> None:
    store = vector_store_harness.store
    vector = random_vectors(1)[0]
    await store.add(P1, "e", vector, b"old", ttl=0.3)
    await store.add(P1, "e", vector, b"new")
    await vector_store_harness.elapse(0.6)
    assert await store.get(P1, "e") == b"new"
    assert [m.payload for m in await store.search(P1, vector)] == [b"new"]


async def test_clear_removes_every_partition(vector_store_harness: Harness[VectorStore]) -> None:
    store = vector_store_harness.store
    vectors = random_vectors(4)
    for index, vector in enumerate(vectors):
        await store.add(P1 if index % 2 else P2, f"e{index}", vector, b"v")
    assert await store.clear() >= 1
    assert await store.search(P1, vectors[1], k=5, max_distance=2.0) == []
    assert await store.search(P2, vectors[0], k=5, max_distance=2.0) == []
    # Usable again after a clear.
    await store.add(P1, "again", vectors[0], b"again")
    assert [m.entry_id for m in await store.search(P1, vectors[0])] == ["again"]


async def test_wrong_dimension_is_refused(vector_store_harness: Harness[VectorStore]) -> None:
    store = vector_store_harness.store
    await store.add(P1, "e", random_vectors(1)[0], b"v")
    with pytest.raises(ConfigurationError, match="dimension"):
        await store.add(P1, "bad", np.ones(DIM + 1, dtype=np.float32), b"v")
    assert await store.get(P1, "bad") is None


async def test_large_payload_round_trips(vector_store_harness: Harness[VectorStore]) -> None:
    store = vector_store_harness.store
    vector = random_vectors(1)[0]
    payload = bytes(range(256)) * 4096  # 1 MiB, every byte value
    await store.add(P1, "big", vector, payload)
    assert await store.get(P1, "big") == payload
    [match] = await store.search(P1, vector)
    assert match.payload == payload


async def test_aclose_is_idempotent(vector_store_harness: Harness[VectorStore]) -> None:
    await vector_store_harness.store.aclose()
    await vector_store_harness.store.aclose()
