"""Backends under test for the conformance suites.

Each backend is a factory ``async (request, prefix) -> Harness``, listed as a
``pytest.param`` (with the marks of what it needs) in ``KEY_STORE_BACKENDS`` or
``VECTOR_STORE_BACKENDS``. The suites in this folder run unchanged against every entry.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from llmemo.stores.base import KeyStore, VectorStore
from llmemo.stores.memory import MemoryKeyStore, MemoryVectorStore

from harness import FakeClock, Harness


async def _memory_key_store(request: pytest.FixtureRequest, prefix: str) -> Harness[Any]:
    clock = FakeClock()
    return Harness(MemoryKeyStore(clock=clock), prefix, clock.elapse)


async def _memory_vector_store(request: pytest.FixtureRequest, prefix: str) -> Harness[Any]:
    clock = FakeClock()
    return Harness(MemoryVectorStore(clock=clock), prefix, clock.elapse)


async def _redis_key_store(request: pytest.FixtureRequest, prefix: str) -> Harness[Any]:
    # Imported here so that memory-only runs never import redis.
    from llmemo.stores.redis.keystore import RedisKeyStore

    redis_url: str = request.getfixturevalue("redis_url")
    # A fresh client per test: a redis.asyncio pool is bound to the test's event loop.
    store = RedisKeyStore.from_url(redis_url)

    async def teardown() -> None:
        await store.clear(prefix)

    return Harness(store, prefix, asyncio.sleep, teardown)


async def _redis_search_vector_store(
    request: pytest.FixtureRequest, prefix: str, algorithm: str
) -> Harness[Any]:
    from redis.asyncio import Redis

    from llmemo.stores.redis.search import RedisSearchVectorStore

    # The test owns the client (closed in teardown, after the store's keys and index are
    # gone), so a test that closes the store early still leaves nothing open.
    client = Redis.from_url(request.getfixturevalue("redis_url"))
    store = RedisSearchVectorStore(client, prefix, algorithm=algorithm)

    async def teardown() -> None:
        try:
            await store.clear()
            await store.drop_index()
        finally:
            await client.aclose()

    return Harness(store, prefix, asyncio.sleep, teardown)


async def _redis_search_hnsw(request: pytest.FixtureRequest, prefix: str) -> Harness[Any]:
    return await _redis_search_vector_store(request, prefix, "HNSW")


async def _redis_search_flat(request: pytest.FixtureRequest, prefix: str) -> Harness[Any]:
    return await _redis_search_vector_store(request, prefix, "FLAT")


async def _redis_vectorset_store(request: pytest.FixtureRequest, prefix: str) -> Harness[Any]:
    from redis.asyncio import Redis

    from llmemo.stores.redis.vectorset import RedisVectorSetStore

    client = Redis.from_url(request.getfixturevalue("redis_url"))
    store = RedisVectorSetStore(client, prefix)

    async def teardown() -> None:
        try:
            await store.clear()
        finally:
            await client.aclose()

    return Harness(store, prefix, asyncio.sleep, teardown)


# -- Redis Cluster (the session's 3-primary cluster, see tests/conftest.py) ---------------


async def _redis_cluster_key_store(request: pytest.FixtureRequest, prefix: str) -> Harness[Any]:
    from llmemo.stores.redis.keystore import RedisKeyStore

    store = RedisKeyStore.from_url(request.getfixturevalue("redis_cluster_url"), cluster=True)

    async def teardown() -> None:
        await store.clear(prefix)

    return Harness(store, prefix, asyncio.sleep, teardown)


async def _redis_cluster_search_store(
    request: pytest.FixtureRequest, prefix: str, algorithm: str
) -> Harness[Any]:
    from redis.asyncio.cluster import RedisCluster

    from llmemo.stores.redis.search import RedisSearchVectorStore

    client = RedisCluster.from_url(request.getfixturevalue("redis_cluster_url"))
    store = RedisSearchVectorStore(client, prefix, algorithm=algorithm)

    async def teardown() -> None:
        try:
            await store.clear()
            await store.drop_index()  # the index on every primary
        finally:
            await client.aclose()

    return Harness(store, prefix, asyncio.sleep, teardown)


async def _redis_cluster_search_hnsw(request: pytest.FixtureRequest, prefix: str) -> Harness[Any]:
    return await _redis_cluster_search_store(request, prefix, "HNSW")


async def _redis_cluster_search_flat(request: pytest.FixtureRequest, prefix: str) -> Harness[Any]:
    return await _redis_cluster_search_store(request, prefix, "FLAT")


async def _redis_cluster_vectorset_store(
    request: pytest.FixtureRequest, prefix: str
) -> Harness[Any]:
    from redis.asyncio.cluster import RedisCluster

    from llmemo.stores.redis.vectorset import RedisVectorSetStore

    client = RedisCluster.from_url(request.getfixturevalue("redis_cluster_url"))
    store = RedisVectorSetStore(client, prefix)

    async def teardown() -> None:
        try:
            await store.clear()
        finally:
            await client.aclose()

    return Harness(store, prefix, asyncio.sleep, teardown)


Factory = Callable[[pytest.FixtureRequest, str], Awaitable[Harness[Any]]]

KEY_STORE_BACKENDS: list[Any] = [
    pytest.param(_memory_key_store, id="memory"),
    pytest.param(_redis_key_store, id="redis", marks=pytest.mark.redis),
    pytest.param(
        _redis_cluster_key_store, id="redis-cluster", marks=[pytest.mark.redis, pytest.mark.cluster]
    ),
]

VECTOR_STORE_BACKENDS: list[Any] = [
    pytest.param(_memory_vector_store, id="memory"),
    pytest.param(
        _redis_search_hnsw, id="redisearch-hnsw", marks=[pytest.mark.redis, pytest.mark.redisearch]
    ),
    pytest.param(
        _redis_search_flat, id="redisearch-flat", marks=[pytest.mark.redis, pytest.mark.redisearch]
    ),
    pytest.param(
        _redis_vectorset_store, id="vectorset", marks=[pytest.mark.redis, pytest.mark.vectorset]
    ),
    pytest.param(
        _redis_cluster_search_hnsw,
        id="redisearch-hnsw-cluster",
        marks=[pytest.mark.redis, pytest.mark.cluster, pytest.mark.redisearch],
    ),
    pytest.param(
        _redis_cluster_search_flat,
        id="redisearch-flat-cluster",
        marks=[pytest.mark.redis, pytest.mark.cluster, pytest.mark.redisearch],
    ),
    pytest.param(
        _redis_cluster_vectorset_store,
        id="vectorset-cluster",
        marks=[pytest.mark.redis, pytest.mark.cluster, pytest.mark.vectorset],
    ),
]


@pytest.fixture(params=KEY_STORE_BACKENDS)
async def key_store_harness(
    request: pytest.FixtureRequest, unique_prefix: str
) -> AsyncIterator[Harness[KeyStore]]:
    """A fresh, empty key store of each backend."""
    factory: Factory = request.param
    harness = await factory(request, unique_prefix)
    try:
        yield harness
    finally:
        await harness.teardown()
        await harness.store.aclose()


@pytest.fixture(params=VECTOR_STORE_BACKENDS)
async def vector_store_harness(
    request: pytest.FixtureRequest, unique_prefix: str
) -> AsyncIterator[Harness[VectorStore]]:
    """A fresh, empty vector store of each backend."""
    factory: Factory = request.param
    harness = await factory(request, unique_prefix)
    try:
        yield harness
    finally:
        await harness.teardown()
        await harness.store.aclose()
