"""``llmemo stats`` / ``clear`` / ``demo`` with ``--cluster`` against the session's
3-primary Redis Cluster (RediSearch loaded on every node).

Caches are filled through the real LangChain adapters with ``cluster=True``; exact keys
spread over every shard, semantic keys over the partitions' slots (one per LLM string).
Every test works under its own ``unique_prefix`` and removes what it wrote.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from langchain_core.outputs import Generation

from cli_runner import run
from llmemo.langchain import RedisCache, RedisSemanticCache

from fakes import AsyncConceptEmbeddings

pytestmark = [pytest.mark.cluster, pytest.mark.redis]

EXACT = 30  # exact entries: on all 3 shards, but for a (2/3)^30 chance
LLMS = [f"llm-{i}" for i in range(6)]  # one semantic partition (slot) each


@dataclass
class Cluster:
    url: str
    prefix: str
    name: str
    other: str
    client: Any  # redis.RedisCluster (its node helpers are untyped)

    @property
    def root(self) -> str:
        return f"{self.prefix}:{self.name}"

    def shards(self, pattern: str) -> dict[str, set[bytes]]:
        """The keys matching ``pattern`` on each primary (every primary listed)."""
        found: dict[str, set[bytes]] = {}
        for node in self.client.get_primaries():
            shard = self.client.get_redis_connection(node)
            found[node.name] = set(shard.scan_iter(match=pattern, count=1000))
        return found

    def indexes(self, head: str) -> set[tuple[str, str]]:
        """``(primary, index)`` of every index whose name starts with ``head``."""
        found = set()
        for node in self.client.get_primaries():
            shard = self.client.get_redis_connection(node)
            for name in shard.execute_command("FT._LIST"):
                if name.decode().startswith(head):
                    found.add((node.name, name.decode()))
        return found


def _cleanup(client: Any, *prefixes: str) -> None:
    for node in client.get_primaries():
        shard = client.get_redis_connection(node)
        for prefix in prefixes:
            for key in list(shard.scan_iter(match=f"{prefix}:*", count=1000)):
                shard.unlink(key)
        for name in shard.execute_command("FT._LIST"):
            if any(name.decode().startswith(f"{prefix}:") for prefix in prefixes):
                if client.get_node_from_key(name).name == node.name:
                    shard.execute_command("FT.DROPINDEX", name)


@pytest.fixture
def cluster(redis_cluster_url: str, unique_prefix: str) -> Iterator[Cluster]:
    url, prefix, other, name = redis_cluster_url, unique_prefix, f"{unique_prefix}-other", "sem"
    exact = RedisCache(redis_url=url, prefix=prefix, cluster=True)
    neighbour = RedisCache(redis_url=url, prefix=other, cluster=True)
    semantic = RedisSemanticCache(
        AsyncConceptEmbeddings(),
        redis_url=url,
        prefix=prefix,
        name=name,
        vector_backend="redisearch",
        cluster=True,
    )
    client = redis.RedisCluster.from_url(url)
    try:
        for i in range(EXACT):
            exact.update(f"prompt {i}", "llm", [Generation(text="x" * 200)])
            neighbour.update(f"prompt {i}", "llm", [Generation(text="y")])
        for llm in LLMS:
            semantic.update("capital of France", llm, [Generation(text="z")])
        for cache in (exact, neighbour, semantic):
            cache.close()
        yield Cluster(url, prefix, name, other, client)
    finally:
        _cleanup(client, prefix, other)
        client.close()


def _spread(shards: dict[str, set[bytes]]) -> int:
    return sum(1 for keys in shards.values() if keys)


def test_fixture_spreads_keys_over_the_shards(cluster: Cluster) -> None:
    assert _spread(cluster.shards(f"{cluster.prefix}:v1:x:*")) == 3
    assert _spread(cluster.shards(f"{cluster.other}:v1:x:*")) == 3
    assert _spread(cluster.shards(f"{cluster.root}:v1:s:*")) >= 2


def test_stats_of_an_exact_cache(cluster: Cluster) -> None:
    code, out, err = run(
        "stats", "--cluster", "--redis-url", cluster.url, "--prefix", cluster.prefix
    )
    assert code == 0, err
    assert f"cache {cluster.prefix!r} on {cluster.url} (Redis Cluster)" in out
    assert f"entries:     {EXACT}" in out
    assert f"exact:                 {EXACT}" in out
    assert f"MEMORY USAGE summed over {EXACT} keys" in out
    assert "no RediSearch index" in out
    assert "counters:    none published" in out


def test_stats_of_a_semantic_cache(cluster: Cluster) -> None:
    code, out, err = run(
        "stats",
        *("--cluster", "--redis-url", cluster.url),
        *("--prefix", cluster.prefix, "--name", cluster.name),
    )
    assert code == 0, err
    assert f"semantic (RediSearch): {len(LLMS)}" in out
    assert f"MEMORY USAGE summed over {len(LLMS)} keys" in out
    indexes = cluster.indexes(f"{cluster.root}:v1:ix:")
    assert indexes
    assert f"index:       RediSearch '{cluster.root}:v1:ix:{{...}}'" in out
    assert f"one per primary, {len(indexes)}), {len(LLMS)} documents" in out


def test_without_cluster_flag_a_cluster_node_is_refused(cluster: Cluster) -> None:
    # A plain client on one node would see that node's keys only: the flag matters.
    code, out, err = run("stats", "--redis-url", cluster.url, "--prefix", cluster.prefix)
    assert code == 2
    assert out == ""
    assert "is a node of a Redis Cluster: pass --cluster" in err


def test_clear_an_exact_cache_keeps_its_neighbours_on_every_shard(cluster: Cluster) -> None:
    other_before = cluster.shards(f"{cluster.other}:*")
    semantic_before = cluster.shards(f"{cluster.root}:*")
    code, out, err = run(
        "clear", "--cluster", "--redis-url", cluster.url, "--prefix", cluster.prefix, "--yes"
    )
    assert code == 0, err
    assert f"deleted {EXACT} keys of cache {cluster.prefix!r}" in out
    assert _spread(cluster.shards(f"{cluster.prefix}:v1:*")) == 0
    assert cluster.shards(f"{cluster.other}:*") == other_before
    assert cluster.shards(f"{cluster.root}:*") == semantic_before
    # Empty now: a second clear succeeds and says so.
    code, out, err = run(
        "clear", "--cluster", "--redis-url", cluster.url, "--prefix", cluster.prefix, "--yes"
    )
    assert code == 0, err
    assert f"deleted 0 keys of cache {cluster.prefix!r}" in out


def test_clear_drop_index_drops_the_per_primary_indexes(cluster: Cluster) -> None:
    head = f"{cluster.root}:v1:ix:"
    assert len(cluster.indexes(head)) >= 2
    exact_before = cluster.shards(f"{cluster.prefix}:v1:*")
    code, out, err = run(
        "clear",
        *("--cluster", "--redis-url", cluster.url),
        *("--prefix", cluster.prefix, "--name", cluster.name, "--yes", "--drop-index"),
    )
    assert code == 0, err
    assert f"deleted {len(LLMS)} keys" in out
    assert f"dropped RediSearch index '{head}{{...}}'" in out
    assert cluster.indexes(head) == set()
    assert _spread(cluster.shards(f"{cluster.root}:*")) == 0
    assert cluster.shards(f"{cluster.prefix}:v1:*") == exact_before


def test_unreachable_cluster_is_one_line(unique_prefix: str) -> None:
    code, _, err = run(
        "stats",
        "--cluster",
        "--redis-url",
        "redis://127.0.0.1:1",
        "--prefix",
        unique_prefix,
        "--timeout",
        "1",
    )
    assert code == 1
    assert err.count("\n") == 1
    assert "cannot reach Redis Cluster at redis://127.0.0.1:1" in err


def test_demo_cluster_needs_a_url() -> None:
    code, _, err = run("demo", "--cluster")
    assert code == 2
    assert "--cluster needs --redis-url" in err


@pytest.mark.model
@pytest.mark.redisearch
async def test_demo_on_a_cluster_leaves_nothing_behind(
    redis_cluster_url: str, local_embeddings: object
) -> None:
    from llmemo.demo import DemoOptions, run_demo

    client = redis.RedisCluster.from_url(redis_cluster_url)
    state = Cluster(redis_cluster_url, "", "", "", client)
    try:
        keys_before, indexes_before = state.shards("*"), state.indexes("")
        out = io.StringIO()
        options = DemoOptions(
            redis_url=redis_cluster_url,
            cluster=True,
            vector_backend="redisearch",
            latency=0.01,
            ttl=0.5,
            llm="simulated",
        )
        await run_demo(options, embeddings=local_embeddings, out=out)  # type: ignore[arg-type]
        output = out.getvalue()
        assert "caches in Redis Cluster at" in output
        assert output.count("[served from cache]") == 4
        assert "dropped RediSearch index(es)" in output
        assert "after the demo: 0" in output
        keys_after, indexes_after = state.shards("*"), state.indexes("")
        for node, keys in keys_after.items():  # other tests' keys may expire meanwhile
            assert keys <= keys_before[node]
        assert indexes_after == indexes_before
    finally:
        client.close()
