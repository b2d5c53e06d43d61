"""On a real Redis: a partition holding most of a RediSearch index is searched in batches
over the HNSW graph (``HYBRID_POLICY BATCHES``), a small one by the server's own plan,
and both still find their entries; on a standalone server and on a cluster.

Why: left to choose, RediSearch scans every entry of a partition that holds nearly the
whole index (up to ~50k entries), which made llmemo's commonest deployment (one model,
one partition) slower than langchain-redis' exhaustive search (issue 16)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import redis
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection

from llmemo.stores.redis._plan import MIN_BATCH_ENTRIES
from llmemo.stores.redis.search import RedisSearchVectorStore

DIM = 24
BIG = "bbbbbbbbbbbbbbbb"
SMALL = "ssssssssssssssss"
BIG_ENTRIES = MIN_BATCH_ENTRIES + 500
SMALL_ENTRIES = 100
BATCHES = b"HYBRID_POLICY BATCHES"


def vectors(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, DIM)).astype(np.float32)


def recording_connection() -> type[Connection]:
    """A Connection class that keeps every command it sends (bytes), for reading them."""

    class Recording(Connection):
        sent: list[bytes] = []  # noqa: RUF012 - shared by the class's connections on purpose

        async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            chunks = [command] if isinstance(command, bytes | bytearray) else command
            type(self).sent.append(b"".join(bytes(chunk) for chunk in chunks))
            await super().send_packed_command(command, check_health)

    return Recording


async def fill(store: RedisSearchVectorStore, partition: str, data: np.ndarray) -> None:
    for start in range(0, len(data), 50):
        await asyncio.gather(
            *(
                store.add(partition, f"e{i}", data[i], f"{partition}/{i}".encode(), ttl=600)
                for i in range(start, min(len(data), start + 50))
            )
        )


@pytest.mark.redis
@pytest.mark.redisearch
@pytest.mark.slow
async def test_a_partition_holding_most_of_the_index_is_searched_in_batches(
    redis_url: str, unique_prefix: str
) -> None:
    recording = recording_connection()
    client = Redis.from_url(redis_url, connection_class=recording)
    store = RedisSearchVectorStore(client, unique_prefix, ef_runtime=100)
    big, small = vectors(BIG_ENTRIES, 1), vectors(SMALL_ENTRIES, 2)
    try:
        await fill(store, BIG, big)
        await fill(store, SMALL, small)

        async def searched(partition: str, data: np.ndarray, i: int, *, probe: bool) -> bytes:
            recording.sent.clear()
            if probe:  # the exact probe and the search, pipelined (a cache's lookup)
                payload, matches = await store.get_or_search(partition, "absent", data[i])
                assert payload is None
            else:
                matches = await store.search(partition, data[i], k=1)
            assert [m.payload for m in matches] == [f"{partition}/{i}".encode()]
            assert len(recording.sent) == 1  # one round trip, counts included
            return recording.sent[0]

        for probe in (False, True):
            # The first search of each partition is planned by the server and counts
            # the partition and the index in the same round trip; later ones use them.
            first_big = await searched(BIG, big, 7, probe=probe)
            first_small = await searched(SMALL, small, 7, probe=probe)
            assert BATCHES not in first_big and BATCHES not in first_small
            assert first_big.count(b"LIMIT") == 3  # the KNN and two counts
            for i in (8, 9, 10):
                assert BATCHES in await searched(BIG, big, i, probe=probe)
                assert BATCHES not in await searched(SMALL, small, i, probe=probe)
            if not probe:
                # After a clear the counts are forgotten: the server plans again.
                removed = await store.clear()
                assert removed == BIG_ENTRIES + SMALL_ENTRIES
                await fill(store, BIG, big)
                await fill(store, SMALL, small)
    finally:
        await store.clear()
        await store.drop_index()
        await client.aclose()


@pytest.fixture
def slowlog(redis_cluster_url: str) -> Iterator[list[redis.Redis]]:
    """Every cluster primary logging every command (SLOWLOG at 0 us), restored after."""
    cluster = redis.RedisCluster.from_url(redis_cluster_url)
    nodes = [redis.Redis(host=node.host, port=node.port) for node in cluster.get_primaries()]
    before = [node.config_get("slowlog-log-slower-than") for node in nodes]
    try:
        for node in nodes:
            node.config_set("slowlog-log-slower-than", 0)
        yield nodes
    finally:
        for node, config in zip(nodes, before, strict=True):
            node.config_set("slowlog-log-slower-than", config["slowlog-log-slower-than"])
            node.close()
        cluster.close()


def searches_logged(nodes: list[redis.Redis]) -> list[bytes]:
    """The search script calls logged since the last look (their arguments joined)."""
    out = []
    for node in nodes:
        for entry in node.slowlog_get(128):
            text = entry["command"]  # redis-py joins the arguments with spaces
            if text.upper().startswith(b"EVALSHA"):
                out.append(text)
        node.slowlog_reset()
    return out


@pytest.mark.redis
@pytest.mark.redisearch
@pytest.mark.cluster
@pytest.mark.slow
async def test_on_a_cluster_the_partitions_primary_plans_its_search(
    redis_cluster_url: str, unique_prefix: str, slowlog: list[redis.Redis]
) -> None:
    client = RedisCluster.from_url(redis_cluster_url)
    store = RedisSearchVectorStore(client, unique_prefix, ef_runtime=100)
    big, small = vectors(BIG_ENTRIES, 1), vectors(SMALL_ENTRIES, 2)
    try:
        await fill(store, BIG, big)
        await fill(store, SMALL, small)
        for node in slowlog:
            node.slowlog_reset()

        async def searched(partition: str, data: np.ndarray, i: int) -> bytes:
            matches = await store.search(partition, data[i], k=1)
            assert [m.payload for m in matches] == [f"{partition}/{i}".encode()]
            [logged] = searches_logged(slowlog)
            return logged

        # The script's last two arguments ask it to count (first search of a partition).
        assert (await searched(BIG, big, 7)).endswith(b"1 1")
        assert BATCHES in await searched(BIG, big, 8)
        small_first = await searched(SMALL, small, 7)
        assert BATCHES not in small_first
        # Only the partition is counted again: its primary's index was counted with BIG
        # when both partitions share a primary; else that primary's index is counted too.
        assert small_first.endswith((b"1 0", b"1 1"))
        assert BATCHES not in await searched(SMALL, small, 8)
    finally:
        await store.clear()
        await store.drop_index()
        await client.aclose()
