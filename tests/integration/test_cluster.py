"""llmemo on a Redis Cluster: the LangChain drop-ins and the stores, across three shards.

The session's cluster has three primaries with RediSearch loaded (``redis_cluster`` in
``tests/conftest.py``). Every test checks that what it wrote really landed on all three
shards, so a pass cannot come from a lucky single-shard layout.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.outputs import Generation
from redis import exceptions as rex
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from llmemo import keys
from llmemo.errors import BackendError, BackendUnavailableError, ConfigurationError
from llmemo.langchain import RedisCache, RedisSemanticCache
from llmemo.policy import FailurePolicy
from llmemo.stores.redis._common import slot_tag
from llmemo.stores.redis._errors import map_redis_errors
from llmemo.stores.redis.search import RedisSearchVectorStore
from llmemo.stores.redis.vectorset import RedisVectorSetStore

from fakes import AsyncConceptEmbeddings
from redis_server import RedisClusterServer

pytestmark = [pytest.mark.redis, pytest.mark.cluster]

FRANCE = "What is the capital of France?"
FRANCE_PARAPHRASE = "Can you tell me the capital city of France?"
BREAD = "How do I bake bread?"
BACKENDS = [
    pytest.param("redisearch", marks=pytest.mark.redisearch),
    pytest.param("vectorset", marks=pytest.mark.vectorset),
]
#: Functional checks want exact outcomes: errors raise, and the first operation of a
#: fresh cluster client (topology fetch: CLUSTER SLOTS + COMMAND) is not cut off by the
#: default 0.1 s budget on a busy CI machine.
RAISE = FailurePolicy(errors="raise", operation_timeout=5.0)


def gens(text: str) -> list[Generation]:
    return [Generation(text=text)]


def shards_of(url: str, keys_: list[bytes] | list[str]) -> set[str]:
    """The primaries (``host:port``) owning ``keys_``."""
    client = redis.RedisCluster.from_url(url)
    try:
        return {client.get_node_from_key(key).name for key in keys_}
    finally:
        client.close()


def keys_under(url: str, pattern: str) -> list[bytes]:
    """Keys matching ``pattern`` on every primary."""
    client = redis.RedisCluster.from_url(url)
    try:
        return sorted(client.scan_iter(match=pattern, count=1000))
    finally:
        client.close()


def primaries(url: str) -> list[str]:
    client = redis.RedisCluster.from_url(url)
    try:
        return sorted(node.name for node in client.get_primaries())
    finally:
        client.close()


@pytest.fixture
def semantic_caches(redis_cluster_url: str, unique_prefix: str) -> Iterator[Any]:
    """Builds cluster RedisSemanticCaches under this test's prefix; cleans up after."""
    made: list[RedisSemanticCache] = []

    def make(backend: str, **kwargs: Any) -> RedisSemanticCache:
        kwargs.setdefault("prefix", unique_prefix)
        kwargs.setdefault("name", unique_prefix)
        kwargs.setdefault("policy", RAISE)
        cache = RedisSemanticCache(
            AsyncConceptEmbeddings(),
            redis_cluster_url,
            cluster=True,
            vector_backend=backend,
            **kwargs,
        )
        made.append(cache)
        return cache

    yield make

    async def drop_indexes() -> None:
        client = RedisCluster.from_url(redis_cluster_url)
        try:
            for cache in made:
                await cache.aclear()
                root = (
                    cache.prefix if cache.name == cache.prefix else f"{cache.prefix}:{cache.name}"
                )
                await RedisSearchVectorStore(client, root).drop_index()
        finally:
            await client.aclose()

    asyncio.run(drop_indexes())
    assert keys_under(redis_cluster_url, f"{unique_prefix}*") == []


# -- exact ----------------------------------------------------------------------------


async def test_exact_hits_and_model_isolation_on_every_shard(
    redis_cluster_url: str, unique_prefix: str
) -> None:
    cache = RedisCache(redis_cluster_url, prefix=unique_prefix, cluster=True, policy=RAISE)
    prompts = [f"question {i}" for i in range(30)]
    for prompt in prompts:
        await cache.aupdate(prompt, "model-a", gens(f"a: {prompt}"))
    written = keys_under(redis_cluster_url, f"{unique_prefix}:v1:x:*")
    assert len(written) == len(prompts)
    assert len(shards_of(redis_cluster_url, written)) == 3  # keys spread over every shard
    for prompt in prompts:
        assert await cache.alookup(prompt, "model-a") == gens(f"a: {prompt}")
        assert await cache.alookup(prompt, "model-b") is None  # another model: a miss
    # The sync face (a sync RedisCluster, no event loop) reads the same entries.
    assert await asyncio.to_thread(cache.lookup, prompts[0], "model-a") == gens(f"a: {prompts[0]}")
    await asyncio.to_thread(cache.update, "sync prompt", "model-a", gens("s"))
    assert await cache.alookup("sync prompt", "model-a") == gens("s")
    await cache.aclear()
    assert keys_under(redis_cluster_url, f"{unique_prefix}*") == []


def test_exact_through_a_langchain_model_with_a_sync_cluster_client(
    redis_cluster_url: str, unique_prefix: str
) -> None:
    given = redis.RedisCluster.from_url(redis_cluster_url)  # what langchain-redis users pass
    cache = RedisCache(redis_client=given, prefix=unique_prefix, policy=RAISE)
    model = FakeListChatModel(responses=["first", "second"], cache=cache)
    assert model.invoke("hello").content == "first"
    assert model.invoke("hello").content == "first"  # served from the cluster
    assert asyncio.run(model.ainvoke("hello")).content == "first"
    cache.clear()
    assert given.ping()  # llmemo neither used nor closed the given client
    given.close()


async def test_asyncio_cluster_client_is_copied_not_used(
    redis_cluster_url: str, unique_prefix: str
) -> None:
    given = RedisCluster.from_url(redis_cluster_url)
    cache = RedisCache(redis_client=given, prefix=unique_prefix, policy=RAISE)
    semantic = RedisSemanticCache(
        AsyncConceptEmbeddings(), redis_client=given, prefix=unique_prefix, policy=RAISE
    )
    try:
        await cache.aupdate("p", "llm", gens("x"))
        assert await cache.alookup("p", "llm") == gens("x")
        assert cache.lookup("p", "llm") == gens("x")  # the sync face: a sync cluster client
        await semantic.aupdate(FRANCE, "llm", gens("Paris"))
        assert await semantic.alookup(FRANCE_PARAPHRASE, "llm") == gens("Paris")
        # llmemo's own clients, not the given one.
        assert cache.core().store.client is not given  # type: ignore[attr-defined]
        assert isinstance(cache.core().store.client, RedisCluster)  # type: ignore[attr-defined]
    finally:
        await cache.aclear()
        await semantic.aclear()
        await RedisSearchVectorStore(given, unique_prefix).drop_index()
        await given.aclose()


async def test_a_burst_never_exceeds_the_per_node_pools(
    redis_cluster_url: str, unique_prefix: str
) -> None:
    # redis-py's asyncio cluster pools raise MaxConnectionsError past their size instead
    # of waiting; the adapter's admission limit must keep a burst within them.
    cache = RedisCache(
        redis_cluster_url,
        prefix=unique_prefix,
        cluster=True,
        policy=RAISE,
        client_kwargs={"max_connections": 2},
    )
    prompts = [f"p{i}" for i in range(40)]
    await asyncio.gather(*(cache.aupdate(p, "llm", gens(p)) for p in prompts))
    results = await asyncio.gather(*(cache.alookup(p, "llm") for p in prompts * 8))
    assert results == [gens(p) for p in prompts * 8]
    assert cache.stats.errors_unavailable == 0
    await cache.aclear()


def test_cluster_options_are_validated_without_io(redis_cluster_url: str) -> None:
    with pytest.raises(ConfigurationError, match="TCP"):
        RedisCache("unix:///tmp/redis.sock", cluster=True)
    with pytest.raises(ConfigurationError, match="cluster must be a bool"):
        RedisCache(redis_cluster_url, cluster="yes")  # type: ignore[arg-type]
    standalone = redis.Redis(port=1)
    with pytest.raises(ConfigurationError, match="standalone"):
        RedisCache(redis_client=standalone, cluster=True)
    standalone.close()


def test_constructors_do_no_io_and_a_dead_cluster_fails_open() -> None:
    # Port 1 on loopback: nothing listens. redis-py's sync RedisCluster would connect in
    # its constructor; llmemo makes it on first use.
    cache = RedisCache("redis://127.0.0.1:1", cluster=True)
    semantic = RedisSemanticCache(AsyncConceptEmbeddings(), "redis://127.0.0.1:1", cluster=True)
    assert cache.lookup("p", "llm") is None  # fail open: a miss, not an exception
    cache.update("p", "llm", gens("x"))
    assert asyncio.run(cache.alookup("p", "llm")) is None
    assert asyncio.run(semantic.alookup(FRANCE, "llm")) is None
    strict = RedisCache("redis://127.0.0.1:1", cluster=True, errors="raise")
    with pytest.raises(BackendUnavailableError):
        strict.lookup("p", "llm")
    with pytest.raises(BackendUnavailableError):
        asyncio.run(strict.alookup("p", "llm"))


# -- semantic -------------------------------------------------------------------------


async def _spread_over_shards(
    cache: RedisSemanticCache, url: str, pattern: str, prompt: str
) -> list[str]:
    """Write ``prompt`` under more and more models until their partitions cover every
    shard; return the models used (model ``i`` answers ``answer-i``)."""
    models: list[str] = []
    for i in range(60):
        model = f"model-{i}"
        await cache.aupdate(prompt, model, gens(f"answer-{i}"))
        models.append(model)
        if i >= 5 and len(shards_of(url, keys_under(url, pattern))) == 3:
            return models
    raise AssertionError("60 partitions did not cover three shards")


@pytest.mark.parametrize("backend", BACKENDS)
async def test_semantic_hits_and_isolation_on_every_shard(
    semantic_caches: Any, redis_cluster_url: str, unique_prefix: str, backend: str
) -> None:
    cache = semantic_caches(backend)
    entries = f"{unique_prefix}:v1:{'s' if backend == 'redisearch' else 'vp'}:*"
    models = await _spread_over_shards(cache, redis_cluster_url, entries, FRANCE)
    for i, model in enumerate(models):
        # A paraphrase hits its own model's answer, never another model's.
        assert await cache.alookup(FRANCE_PARAPHRASE, model) == gens(f"answer-{i}")
        assert await cache.alookup(BREAD, model) is None
    assert await cache.alookup(FRANCE_PARAPHRASE, "model-unseen") is None
    assert cache.stats.semantic_hits == len(models)
    if backend == "redisearch":
        # One index per primary that holds entries, each on its own primary.
        for node in primaries(redis_cluster_url):
            host, port = node.split(":")
            with redis.Redis(host=host, port=int(port)) as client:
                names = [
                    n for n in client.execute_command("FT._LIST") if unique_prefix.encode() in n
                ]
            assert len(names) == 1


# Long enough for 40 exact and 2x3 semantic writes plus their checks on a loaded 2-core CI
# machine (1 s was seen to expire entries before the "all present" check).
TTL_ON_SHARDS = 2.5


async def test_ttl_on_every_shard(
    semantic_caches: Any, redis_cluster_url: str, unique_prefix: str
) -> None:
    exact = RedisCache(
        redis_cluster_url,
        ttl=TTL_ON_SHARDS,
        prefix=f"{unique_prefix}-x",
        cluster=True,
        policy=RAISE,
    )
    semantic = {
        backend: semantic_caches(backend, ttl=TTL_ON_SHARDS)
        for backend in ("redisearch", "vectorset")
    }
    # 40 keys land on all three shards but with probability 3 * (2/3)**40 (~1e-7).
    prompts = [f"question {i}" for i in range(40)]
    for prompt in prompts:
        await exact.aupdate(prompt, "llm", gens(prompt))
    assert (
        len(shards_of(redis_cluster_url, keys_under(redis_cluster_url, f"{unique_prefix}-x:*")))
        == 3
    )
    models = {
        backend: await _spread_over_shards(
            cache,
            redis_cluster_url,
            f"{unique_prefix}:v1:{'s' if backend == 'redisearch' else 'vp'}:*",
            FRANCE if backend == "redisearch" else BREAD,
        )
        for backend, cache in semantic.items()
    }
    assert all([await exact.alookup(p, "llm") for p in prompts])
    for model in models["redisearch"]:
        assert await semantic["redisearch"].alookup(FRANCE_PARAPHRASE, model) is not None
    await asyncio.sleep(TTL_ON_SHARDS + 0.3)
    assert [await exact.alookup(p, "llm") for p in prompts] == [None] * len(prompts)
    for model in models["redisearch"]:
        assert await semantic["redisearch"].alookup(FRANCE_PARAPHRASE, model) is None
    for model in models["vectorset"]:
        assert await semantic["vectorset"].alookup("How to bake bread?", model) is None
    assert keys_under(redis_cluster_url, f"{unique_prefix}-x:*") == []
    await exact.aclear()


async def test_clear_leaves_foreign_keys_on_every_shard(
    semantic_caches: Any, redis_cluster_url: str, unique_prefix: str
) -> None:
    exact = RedisCache(redis_cluster_url, prefix=unique_prefix, cluster=True, policy=RAISE)
    semantic = semantic_caches("vectorset", name="sem")
    other = f"t-{secrets.token_hex(8)}"
    foreign = [f"{other}:k{i}" for i in range(30)] + [
        f"{unique_prefix}-other:k{i}" for i in range(30)
    ]
    client = RedisCluster.from_url(redis_cluster_url)
    try:
        for key in foreign:
            await client.set(key, b"keep", px=60_000)
        assert len(shards_of(redis_cluster_url, foreign)) == 3
        for i in range(30):
            await exact.aupdate(f"q{i}", "llm", gens("x"))
        await _spread_over_shards(
            semantic, redis_cluster_url, f"{unique_prefix}:sem:v1:vp:*", FRANCE
        )
        ours = keys_under(redis_cluster_url, f"{unique_prefix}:*")
        assert len(shards_of(redis_cluster_url, ours)) == 3
        await exact.aclear()
        await semantic.aclear()
        assert keys_under(redis_cluster_url, f"{unique_prefix}:*") == []
        assert await client.exists(*foreign) == len(foreign)
    finally:
        await client.delete(*foreign)
        await client.aclose()


# -- slot migration -------------------------------------------------------------------


def slot_owner(port: int, slot: int) -> int:
    """The port of the primary owning ``slot``, as the node on ``port`` sees it."""
    with redis.Redis(port=port, socket_timeout=5) as client:
        for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return int(primary[1])
    raise AssertionError(f"slot {slot} is not covered")


def migrate(cluster: RedisClusterServer, slot: int, target_port: int) -> int:
    """Move ``slot`` to the primary on ``target_port`` (``CLUSTER SETSLOT`` + ``MIGRATE``),
    as ``redis-cli --cluster reshard`` does; return the port of the primary that had it."""
    ports = [node.port or 0 for node in cluster.masters]
    source_port = slot_owner(target_port, slot)
    if source_port == target_port:
        return source_port
    nodes = {port: redis.Redis(port=port, socket_timeout=5) for port in ports}
    try:
        source, target = nodes[source_port], nodes[target_port]
        target_id, source_id = cluster.node_ids[target_port], cluster.node_ids[source_port]
        target.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        source.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        while batch := source.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
            source.execute_command("MIGRATE", "127.0.0.1", target_port, "", 0, 5000, "KEYS", *batch)
        # Target first, then source, then the others (the order redis-cli uses).
        others = [port for port in ports if port not in (target_port, source_port)]
        for port in (target_port, source_port, *others):
            nodes[port].execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
    finally:
        for client in nodes.values():
            client.close()
    return source_port


async def _eventually(check: Any, seconds: float = 5.0) -> float:
    """Await ``check()`` until it is true; return how long that took (fails after
    ``seconds``)."""
    start = time.monotonic()
    while not await check():
        assert time.monotonic() - start < seconds, "did not recover in time"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


@pytest.mark.parametrize("backend", BACKENDS)
async def test_lookups_recover_after_a_partition_slot_migrates(
    redis_cluster: RedisClusterServer | None, unique_prefix: str, backend: str
) -> None:
    if redis_cluster is None:
        pytest.skip("moves slots: needs the session's own cluster, not LLMEMO_REDIS_CLUSTER_URL")
    client = RedisCluster.from_url(redis_cluster.url)
    store: RedisSearchVectorStore | RedisVectorSetStore
    if backend == "redisearch":
        store = RedisSearchVectorStore(client, unique_prefix)
    else:
        store = RedisVectorSetStore(client, unique_prefix)
    ports = [node.port or 0 for node in redis_cluster.masters]
    # One partition per primary: A's partition moves, B's stays put.
    await client.initialize()
    by_port: dict[int, str] = {}
    while len(by_port) < 3:
        partition = secrets.token_hex(8)
        by_port.setdefault(int(client.get_node_from_key(f"{{{partition}}}").port), partition)
    port_a, port_b, port_c = ports
    moving, staying = by_port[port_a], by_port[port_b]
    vector = [1.0, 0.0, 0.5, 0.25]
    for partition in (moving, staying):
        for j in range(5):
            await store.add(
                partition, f"e{j}", [1.0, 0.0, 0.5, 0.25 + j], f"{partition}/{j}".encode()
            )
    slot = key_slot(f"{{{moving}}}".encode())

    async def hit() -> bool:
        found = await store.search(moving, vector, k=1)
        return bool(found) and found[0].payload == f"{moving}/0".encode()

    assert await hit()
    try:
        # To a primary that already has this store's index: entries are indexed on arrival.
        assert migrate(redis_cluster, slot, port_b) == port_a
        await _eventually(hit)
        # To a primary with no index of this store: the store creates it there.
        assert migrate(redis_cluster, slot, port_c) == port_b
        await _eventually(hit)
        await store.add(moving, "late", vector, b"late")  # writes follow the slot too
        assert await store.get(moving, "late") == b"late"
        found = await store.search(staying, vector, k=5)
        assert len(found) == 5  # the other partition never noticed
    finally:
        migrate(redis_cluster, slot, port_a)  # give the slot back
        await store.clear()
        if isinstance(store, RedisSearchVectorStore):
            await store.drop_index()
        await client.aclose()


# -- helpers under test ----------------------------------------------------------------


def test_slot_tag_reaches_every_slot() -> None:
    tags = [slot_tag(slot) for slot in range(16384)]
    assert [key_slot(f"x{{{tag}}}".encode()) for tag in tags] == list(range(16384))
    assert all(set(tag) <= {"a", "c"} for tag in tags)


async def test_store_from_url_with_cluster(redis_cluster_url: str, unique_prefix: str) -> None:
    search = RedisSearchVectorStore.from_url(redis_cluster_url, unique_prefix, cluster=True)
    vset = RedisVectorSetStore.from_url(redis_cluster_url, unique_prefix, cluster=True)
    try:
        assert isinstance(search.client, RedisCluster)
        assert isinstance(vset.client, RedisCluster)
        await search.add("p", "e", [1.0, 2.0], b"s")
        await vset.add("p", "e", [1.0, 2.0], b"v")
        assert [m.payload for m in await search.search("p", [1.0, 2.0])] == [b"s"]
        assert [m.payload for m in await vset.search("p", [1.0, 2.0])] == [b"v"]
    finally:
        await search.clear()
        await search.drop_index()
        await vset.clear()
        await search.aclose()
        await vset.aclose()


def test_partition_keys_share_a_slot() -> None:
    # The layout the cluster relies on: every key of a partition hashes to its slot.
    partition = keys.partition_id("ns", "llm")
    slot = key_slot(f"{{{partition}}}".encode())
    for key in (
        f"ns:v1:s:{{{partition}}}:abc",
        f"ns:v1:vs:{{{partition}}}",
        f"ns:v1:vp:{{{partition}}}:abc",
    ):
        assert key_slot(key.encode()) == slot


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (rex.RedisClusterException("no reachable node"), BackendUnavailableError),
        (rex.SlotNotCoveredError('Slot "7" is not covered'), BackendUnavailableError),
        (rex.ClusterDownError("CLUSTERDOWN The cluster is down"), BackendUnavailableError),
        (rex.TryAgainError("TRYAGAIN"), BackendUnavailableError),
        (rex.MovedError("7 127.0.0.1:7001"), BackendUnavailableError),
        (rex.AskError("7 127.0.0.1:7001"), BackendUnavailableError),
        (rex.MaxConnectionsError("Too many connections"), BackendUnavailableError),
        (rex.CrossSlotTransactionError("keys in more than one slot"), BackendError),
    ],
)
def test_cluster_errors_are_mapped(error: Exception, expected: type[BaseException]) -> None:
    # RedisClusterException is not a RedisError: the fail-open policy sees it only
    # because the store maps it.
    with pytest.raises(expected) as info:
        with map_redis_errors("GET"):
            raise error
    assert type(info.value) is expected
    assert info.value.__cause__ is error
