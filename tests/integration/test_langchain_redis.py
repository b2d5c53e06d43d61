"""The langchain-redis drop-ins on the real Redis: the seed's flow, isolation, round trips."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from langchain_core.globals import set_llm_cache
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.load import dumps
from langchain_core.messages import HumanMessage
from langchain_core.outputs import Generation

from llmemo.errors import ConfigurationError
from llmemo.langchain import RedisCache, RedisSemanticCache

from fakes import AsyncConceptEmbeddings, ConceptEmbeddings

pytestmark = pytest.mark.redis

FRANCE = "What is the capital of France?"
FRANCE_PARAPHRASE = "Can you tell me the capital city of France?"
BREAD = "How do I bake bread?"
BACKENDS = [
    pytest.param("redisearch", marks=pytest.mark.redisearch),
    pytest.param("vectorset", marks=pytest.mark.vectorset),
]


def keys_under(url: str, pattern: str) -> list[bytes]:
    with redis.Redis.from_url(url) as client:
        return sorted(client.scan_iter(match=pattern, count=1000))


def drop_index(url: str, name: str) -> None:
    with redis.Redis.from_url(url) as client:
        try:
            client.execute_command("FT.DROPINDEX", name)
        except redis.ResponseError:
            pass  # no index (vector sets, or never created)


@pytest.fixture
def semantic_factory(redis_url: str, unique_prefix: str) -> Iterator[Any]:
    """Builds RedisSemanticCaches under this test's prefix; drops their indexes after."""
    made: list[RedisSemanticCache] = []

    def make(backend: str, **kwargs: Any) -> RedisSemanticCache:
        kwargs.setdefault("prefix", unique_prefix)
        kwargs.setdefault("name", unique_prefix)
        embeddings = kwargs.pop("embeddings", ConceptEmbeddings())
        cache = RedisSemanticCache(embeddings, redis_url, vector_backend=backend, **kwargs)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.clear()
        root = cache.prefix if cache.name == cache.prefix else f"{cache.prefix}:{cache.name}"
        drop_index(redis_url, f"{root}:v1:ix")
    assert keys_under(redis_url, f"{unique_prefix}*") == []


def test_redis_cache_hit_then_expiry(redis_url: str, unique_prefix: str) -> None:
    cache = RedisCache(redis_url, ttl=0.5, prefix=unique_prefix)
    model = FakeListChatModel(responses=["first", "second"], cache=cache)
    assert model.invoke("hello").content == "first"
    assert model.invoke("hello").content == "first"
    time.sleep(0.8)
    assert model.invoke("hello").content == "second"
    cache.clear()


async def test_redis_cache_async_flow_and_clear_scope(redis_url: str, unique_prefix: str) -> None:
    cache = RedisCache(redis_url, prefix=unique_prefix)
    foreign = [f"{unique_prefix}-other:k", f"{unique_prefix}:v1:y:k", "llmemo-test-no-prefix"]
    client = aioredis.Redis.from_url(redis_url)
    try:
        for key in foreign:
            await client.set(key, b"keep")
        model = FakeListChatModel(responses=["first", "second"], cache=cache)
        assert (await model.ainvoke("hello")).content == "first"
        assert (await model.ainvoke("hello")).content == "first"
        assert len(await client.keys(f"{unique_prefix}:v1:x:*")) == 1
        await cache.aclear()
        assert await client.keys(f"{unique_prefix}:v1:x:*") == []
        assert await client.mget(foreign) == [b"keep"] * len(foreign)
    finally:
        await client.delete(*foreign)
        await client.aclose()


def test_redis_cache_accepts_a_sync_client_like_langchain_redis(
    redis_url: str, unique_prefix: str
) -> None:
    given = redis.Redis.from_url(redis_url)
    cache = RedisCache(redis_client=given, prefix=unique_prefix)
    cache.update("p", "llm", [Generation(text="x")])
    assert cache.lookup("p", "llm") == [Generation(text="x")]
    cache.clear()
    given.ping()  # the given client still works: llmemo neither used nor closed it
    given.close()


async def test_redis_cache_accepts_an_async_client(redis_url: str, unique_prefix: str) -> None:
    given = aioredis.Redis.from_url(redis_url)
    cache = RedisCache(redis_client=given, prefix=unique_prefix)
    await cache.aupdate("p", "llm", [Generation(text="x")])
    assert await cache.alookup("p", "llm") == [Generation(text="x")]
    assert cache.lookup("p", "llm") == [Generation(text="x")]  # another loop, same settings
    await cache.aclear()
    await given.aclose()


def test_one_client_per_event_loop_and_none_leaked(redis_url: str, unique_prefix: str) -> None:
    cache = RedisCache(redis_url, prefix=unique_prefix)
    cache.update("p", "llm", [Generation(text="x")])

    async def read() -> Any:
        return await cache.alookup("p", "llm")

    for _ in range(5):  # asyncio.run makes and closes a loop each time
        assert asyncio.run(read()) == [Generation(text="x")]
    gc.collect()  # an unclosed client would warn here (warnings are errors in tests)
    cache.clear()


def test_constructors_do_no_io() -> None:
    # Port 1 on loopback: nothing listens there. Construction must still succeed.
    RedisCache("redis://127.0.0.1:1", ttl=5)
    RedisSemanticCache(ConceptEmbeddings(), "redis://127.0.0.1:1")


@pytest.mark.parametrize(
    "kwargs, parameter",
    [
        ({"ttl": -1}, "ttl"),
        ({"prefix": "a b"}, "prefix"),
        ({"redis_url": "http://nope"}, "redis_url"),
    ],
)
def test_redis_cache_validates_parameters(kwargs: dict[str, Any], parameter: str) -> None:
    with pytest.raises(ConfigurationError, match=parameter):
        RedisCache(**kwargs)


@pytest.mark.parametrize(
    "kwargs, parameter",
    [
        ({"distance_threshold": 2.5}, "distance_threshold"),
        ({"name": "x*"}, "name"),
        ({"vector_backend": "faiss"}, "vector_backend"),
        ({"algorithm": "IVF"}, "algorithm"),
        ({"dtype": "INT8"}, "dtype"),
        ({"dtype": 16}, "dtype"),
    ],
)
def test_redis_semantic_cache_validates_parameters(kwargs: dict[str, Any], parameter: str) -> None:
    with pytest.raises(ConfigurationError, match=parameter):
        RedisSemanticCache(ConceptEmbeddings(), **kwargs)


@pytest.mark.redisearch
def test_float16_vectors_on_redisearch(
    semantic_factory: Any, redis_url: str, unique_prefix: str
) -> None:
    cache = semantic_factory("redisearch", dtype="float16")
    model = FakeListChatModel(responses=["Paris", "Knead", "unused"], cache=cache)
    assert model.invoke(FRANCE).content == "Paris"
    assert model.invoke(FRANCE_PARAPHRASE).content == "Paris"
    assert model.invoke(BREAD).content == "Knead"
    client = redis.Redis.from_url(redis_url)
    try:
        info = client.execute_command("FT.INFO", f"{unique_prefix}:v1:ix")
    finally:
        client.close()
    assert b"FLOAT16" in repr(info).encode()
    assert b"FLOAT32" not in repr(info).encode()


@pytest.mark.parametrize("backend", BACKENDS)
def test_semantic_near_duplicate_hits_and_far_prompt_misses(
    semantic_factory: Any, backend: str
) -> None:
    cache = semantic_factory(backend)
    model = FakeListChatModel(responses=["Paris", "Knead", "unused"], cache=cache)
    assert model.invoke(FRANCE).content == "Paris"
    assert model.invoke(FRANCE_PARAPHRASE).content == "Paris"
    assert model.invoke(BREAD).content == "Knead"
    assert cache.stats.semantic_hits == 1
    assert cache.vector_backend == backend


@pytest.mark.parametrize("backend", BACKENDS)
async def test_semantic_async_with_native_async_embeddings(
    semantic_factory: Any, backend: str
) -> None:
    cache = semantic_factory(backend, embeddings=AsyncConceptEmbeddings())
    model = FakeListChatModel(responses=["Paris", "other"], cache=cache)
    assert (await model.ainvoke(FRANCE)).content == "Paris"
    assert (await model.ainvoke(FRANCE_PARAPHRASE)).content == "Paris"
    hit = await cache.alookup_hit(dumps([HumanMessage(FRANCE_PARAPHRASE)]), model._get_llm_string())
    assert hit is not None and hit.kind == "semantic" and 0 < hit.distance <= 0.2


@pytest.mark.parametrize("backend", BACKENDS)
def test_name_isolates_two_semantic_caches(semantic_factory: Any, backend: str) -> None:
    first = semantic_factory(backend, name="first")
    second = semantic_factory(backend, name="second")
    first.update(FRANCE, "llm", [Generation(text="from first")])
    assert second.lookup(FRANCE, "llm") is None
    assert second.lookup(FRANCE_PARAPHRASE, "llm") is None
    second.update(FRANCE, "llm", [Generation(text="from second")])
    second.clear()
    assert first.lookup(FRANCE_PARAPHRASE, "llm") == [Generation(text="from first")]


@pytest.mark.parametrize("backend", BACKENDS)
def test_semantic_clear_leaves_foreign_keys(
    semantic_factory: Any, backend: str, redis_url: str, unique_prefix: str
) -> None:
    cache = semantic_factory(backend)
    foreign = [f"{unique_prefix}x:v1:s:k", f"{unique_prefix}-other", "llmemo-test-foreign"]
    with redis.Redis.from_url(redis_url) as client:
        client.mset({key: b"keep" for key in foreign})
        try:
            cache.update(FRANCE, "llm", [Generation(text="Paris")])
            cache.update(BREAD, "llm", [Generation(text="Knead")])
            cache.clear()
            assert cache.lookup(FRANCE, "llm") is None
            assert client.mget(foreign) == [b"keep"] * len(foreign)
        finally:
            client.delete(*foreign)


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_prompt_two_llm_strings_semantic(semantic_factory: Any, backend: str) -> None:
    cache = semantic_factory(backend)
    cache.update(FRANCE, "model-a", [Generation(text="A")])
    cache.update(FRANCE, "model-b", [Generation(text="B")])
    assert cache.lookup(FRANCE, "model-a") == [Generation(text="A")]
    assert cache.lookup(FRANCE, "model-b") == [Generation(text="B")]
    assert cache.lookup(FRANCE_PARAPHRASE, "model-a") == [Generation(text="A")]
    assert cache.lookup(FRANCE_PARAPHRASE, "model-b") == [Generation(text="B")]
    assert cache.lookup(FRANCE_PARAPHRASE, "model-c") is None


def test_same_prompt_two_llm_strings_exact(redis_url: str, unique_prefix: str) -> None:
    set_llm_cache(RedisCache(redis_url, prefix=unique_prefix))
    try:
        model_a = FakeListChatModel(responses=["A", "A2"])
        model_b = FakeListChatModel(responses=["B", "B2"])
        for _ in range(2):
            assert model_a.invoke("same prompt").content == "A"
            assert model_b.invoke("same prompt").content == "B"
    finally:
        RedisCache(redis_url, prefix=unique_prefix).clear()
        set_llm_cache(None)


class RoundTrips:
    """Counts client-side round trips: each packed send on a redis.asyncio connection (a
    single command, or a whole pipeline/transaction) is one."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from redis.asyncio.connection import AbstractConnection

        self.count = 0
        original = AbstractConnection.send_packed_command

        async def counting(connection: Any, *args: Any, **kwargs: Any) -> None:
            self.count += 1
            await original(connection, *args, **kwargs)

        monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)

    async def of(self, action: Any) -> int:
        before = self.count
        await action()
        return self.count - before


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> RoundTrips:
    return RoundTrips(monkeypatch)


async def test_exact_hit_and_write_are_one_round_trip_each(
    redis_url: str, unique_prefix: str, round_trips: RoundTrips
) -> None:
    cache = RedisCache(redis_url, ttl=60, prefix=unique_prefix)
    generations = [Generation(text="x")]
    await cache.alookup("warm up", "llm")  # the connection's handshake (HELLO, SETINFO)
    assert await round_trips.of(lambda: cache.aupdate("p", "llm", generations)) == 1
    assert await round_trips.of(lambda: cache.alookup("p", "llm")) == 1
    assert await round_trips.of(lambda: cache.alookup("miss", "llm")) == 1
    await cache.aclear()


class SlowEmbeddings(AsyncConceptEmbeddings):
    """Concept vectors that take 5 ms each: embedding costs more than a round trip."""

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        await asyncio.sleep(0.005)
        return self.embed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        await asyncio.sleep(0.005)
        return self.embed_query(text)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_semantic_round_trips(
    semantic_factory: Any, backend: str, round_trips: RoundTrips
) -> None:
    """Write: one round trip. Exact repeat: one, no embedding. Semantic hit with an
    embedder dearer than a round trip: the exact probe, then (after embedding) one vector
    query that brings the payload back; with the vector memoised, both in one."""
    embeddings = SlowEmbeddings()
    cache = semantic_factory(backend, embeddings=embeddings)
    await cache.aupdate("warm up", "llm", [Generation(text="w")])  # index, scripts, handshake
    await cache.alookup("warm up too", "llm")

    write = lambda: cache.aupdate(FRANCE, "llm", [Generation(text="P")])  # noqa: E731
    assert await round_trips.of(write) == 1
    calls = len(embeddings.calls)
    assert await round_trips.of(lambda: cache.alookup(FRANCE, "llm")) == 1
    assert len(embeddings.calls) == calls  # exact repeats embed nothing

    embedded_at: list[int] = []
    original = embeddings.aembed_query

    async def spy(text: str) -> list[float]:
        embedded_at.append(round_trips.count)
        return await original(text)

    embeddings.aembed_query = spy  # type: ignore[method-assign]
    before = round_trips.count
    hit = await cache.alookup_hit(FRANCE_PARAPHRASE, "llm")
    assert hit is not None and hit.kind == "semantic"
    assert embedded_at[0] - before == 1  # the exact probe
    assert round_trips.count - embedded_at[0] == 1  # the vector query, payload included

    # Asked again: the vector is memoised, so there is no embedding to save by probing
    # first; exact probe and vector query go together in one round trip.
    calls = len(embedded_at)
    hit = await cache.alookup_hit(FRANCE_PARAPHRASE, "llm")
    assert hit is not None and hit.kind == "semantic"
    assert len(embedded_at) == calls
    assert round_trips.count - before == 3
    # ... and an exact entry still wins over the vector query's neighbours.
    await cache.aupdate(FRANCE_PARAPHRASE, "llm", [Generation(text="own answer")])
    assert await round_trips.of(lambda: cache.alookup_hit(FRANCE_PARAPHRASE, "llm")) == 1
    exact = await cache.alookup_hit(FRANCE_PARAPHRASE, "llm")
    assert exact is not None and exact.kind == "exact"
    assert exact.value == [Generation(text="own answer")]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_cheap_embeddings_make_every_semantic_lookup_one_round_trip(
    semantic_factory: Any, backend: str, round_trips: RoundTrips
) -> None:
    """With an embedder cheaper than a round trip, probing first saves nothing: the
    lookup embeds, then sends the exact probe and the vector query together."""
    embeddings = AsyncConceptEmbeddings()  # microseconds per text
    cache = semantic_factory(backend, embeddings=embeddings)
    await cache.aupdate(FRANCE, "llm", [Generation(text="P")])
    for prompt in ("warm up", "warm up too", "warm up three"):  # costs measured
        await cache.alookup(prompt, "llm")
    for question in ("What's the capital of France?", "the capital of France is?"):
        calls = len(embeddings.calls)
        hit_trips = await round_trips.of(lambda q=question: cache.alookup(q, "llm"))
        assert hit_trips == 1
        assert len(embeddings.calls) == calls + 1  # embedded (not memoised before)
    hit = await cache.alookup_hit("Capital of France?", "llm")
    assert hit is not None and hit.kind == "semantic" and hit.value == [Generation(text="P")]
    exact = await cache.alookup_hit(FRANCE, "llm")
    assert exact is not None and exact.kind == "exact"


@pytest.mark.parametrize("backend", BACKENDS)
def test_sync_calls_inside_a_running_loop_complete(
    semantic_factory: Any, backend: str, redis_url: str, unique_prefix: str
) -> None:
    """Sync LangChain calls made from async code neither deadlock nor leave the loop stuck."""
    import threading

    semantic = semantic_factory(backend)
    exact = RedisCache(redis_url, prefix=f"{unique_prefix}-x")
    outcome: dict[str, Any] = {}

    async def scenario() -> None:
        model = FakeListChatModel(responses=["Paris", "other"], cache=semantic)
        outcome["semantic"] = [
            model.invoke(FRANCE).content,
            model.invoke(FRANCE_PARAPHRASE).content,
        ]
        exact.update("p", "llm", [Generation(text="x")])
        outcome["exact"] = exact.lookup("p", "llm")
        outcome["after"] = await asyncio.wait_for(asyncio.sleep(0.01, "loop alive"), 5)

    runner = threading.Thread(target=lambda: asyncio.run(scenario()), daemon=True)
    runner.start()
    runner.join(timeout=30)
    assert not runner.is_alive(), "a sync call inside a running loop deadlocked"
    assert outcome == {
        "semantic": ["Paris", "Paris"],
        "exact": [Generation(text="x")],
        "after": "loop alive",
    }
    exact.clear()


async def test_a_burst_larger_than_the_pool_waits_instead_of_failing(
    redis_url: str, unique_prefix: str
) -> None:
    cache = RedisCache(redis_url, prefix=unique_prefix, client_kwargs={"max_connections": 4})
    await cache.aupdate("p", "llm", [Generation(text="x")])
    results = await asyncio.gather(*(cache.alookup("p", "llm") for _ in range(300)))
    assert results == [[Generation(text="x")]] * 300
    pool = cache.core().store.client.connection_pool  # type: ignore[attr-defined]
    assert len(pool._available_connections) + len(pool._in_use_connections) <= 4
    await cache.aclear()


async def test_pooled_connections_closed_by_the_server_are_replaced_without_a_miss(
    redis_url: str, unique_prefix: str
) -> None:
    # llmemo's own per-loop pool hands out idle connections without probing them; one
    # the server closed meanwhile fails once and is reconnected by the client's retry.
    import redis.asyncio as aioredis

    cache = RedisCache(redis_url, prefix=unique_prefix)
    generations = [Generation(text="kept")]
    await cache.aupdate("p", "llm", generations)
    assert await cache.alookup("p", "llm") == generations
    client = cache.core().store.client  # type: ignore[attr-defined]
    pool = client.connection_pool
    assert type(pool).__name__ == "LoopConnectionPool"
    admin = aioredis.Redis.from_url(redis_url)
    try:
        for _ in range(3):
            # Lookups are sequential here: the pool holds one idle connection; kill it.
            assert len(pool._available_connections) == 1
            assert await admin.client_kill_filter(_id=await client.client_id()) == 1
            assert await cache.alookup("p", "llm") == generations
        assert cache.stats.errors == 0
        assert cache.stats.exact_hits == 4
        # Concurrent lookups share the pool without exceeding it.
        results = await asyncio.gather(*(cache.alookup("p", "llm") for _ in range(100)))
        assert results == [generations] * 100
        assert len(pool._in_use_connections) == 0
        assert len(pool._available_connections) <= pool.max_connections
    finally:
        await admin.aclose()
        await cache.aclear()
