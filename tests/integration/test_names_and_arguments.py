"""Issue 15 items 6, 7 and 16 on the real Redis: names that cannot collide with other
tools' or other configurations' keys, schema mismatches that fail open, and arguments
refused at construction instead of failing every call."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from typing import Any
from unittest.mock import Mock

import pytest
import redis
from langchain_core.embeddings import Embeddings
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.outputs import Generation

from llmemo.errors import BackendError, ConfigurationError, SchemaMismatchError
from llmemo.langchain import RedisCache, RedisSemanticCache
from llmemo.stores.redis import search as search_module

from fakes import ConceptEmbeddings, concept_vector

pytestmark = pytest.mark.redis

BACKENDS = [
    pytest.param("redisearch", marks=pytest.mark.redisearch),
    pytest.param("vectorset", marks=pytest.mark.vectorset),
]
FRANCE = "What is the capital of France?"
FRANCE_PARAPHRASE = "Can you tell me the capital city of France?"
BREAD = "How do I bake bread?"


class ShortEmbeddings(Embeddings):
    """The concept vectors cut to 16 dimensions: an embedding model of another size."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return [*concept_vector(text)[:15], 1.0]


@pytest.fixture
def admin(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url) as client:
        yield client


def _drop_indexes(client: redis.Redis, *names: str) -> None:
    for name in names:
        try:
            client.execute_command("FT.DROPINDEX", name)
        except redis.ResponseError:
            pass


def _delete_under(client: redis.Redis, pattern: str) -> None:
    found = list(client.scan_iter(match=pattern, count=1000))
    if found:
        client.unlink(*found)


def _llm(cache: Any, *responses: str) -> FakeListChatModel:
    return FakeListChatModel(responses=list(responses), cache=cache)


# -- item 6: a foreign index named like llmemo's default ----------------------------------


@pytest.mark.redisearch
def test_a_foreign_llmcache_index_never_fails_the_default_cache(admin: redis.Redis) -> None:
    # What langchain-redis' RedisSemanticCache and redisvl's SemanticCache leave behind with
    # their defaults: an index named "llmcache" over the key prefix "llmcache", with their
    # own fields, and entries "llmcache:<id>".
    admin.execute_command(
        "FT.CREATE",
        "llmcache",
        "ON",
        "HASH",
        "PREFIX",
        1,
        "llmcache",
        "SCHEMA",
        "prompt",
        "TEXT",
        "response",
        "TEXT",
        "inserted_at",
        "NUMERIC",
        "updated_at",
        "NUMERIC",
        "prompt_vector",
        "VECTOR",
        "FLAT",
        6,
        "TYPE",
        "FLOAT32",
        "DIM",
        768,
        "DISTANCE_METRIC",
        "COSINE",
    )
    foreign_key = "llmcache:4f6e65666f7265696768"
    admin.hset(foreign_key, mapping={"prompt": "old", "response": "kept"})
    cache = RedisSemanticCache(ConceptEmbeddings(), _url(admin), vector_backend="redisearch")
    try:
        model = _llm(cache, "Paris", "bread answer", "unexpected")
        assert model.invoke(FRANCE).content == "Paris"
        assert model.invoke(FRANCE).content == "Paris"  # served by the cache
        assert model.invoke(FRANCE_PARAPHRASE).content == "Paris"
        assert model.invoke(BREAD).content == "bread answer"
        assert cache.stats.writes == 2
        assert cache.stats.errors_backend == 0
        # llmemo's index is its own, and the foreign one is untouched.
        assert admin.execute_command("FT.INFO", "llmcache:v1:ix")
        info = admin.execute_command("FT.INFO", "llmcache")
        assert b"prompt_vector" in repr(info).encode()
        cache.clear()
        assert admin.hgetall(foreign_key) == {b"prompt": b"old", b"response": b"kept"}
    finally:
        cache.clear()
        _drop_indexes(admin, "llmcache", "llmcache:v1:ix")
        admin.unlink(foreign_key)


def _url(client: redis.Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"


@pytest.mark.redisearch
def test_recreate_index_on_mismatch_is_a_parameter_of_the_cache(
    admin: redis.Redis, unique_prefix: str
) -> None:
    assert "recreate_index_on_mismatch" in inspect.signature(RedisSemanticCache).parameters
    with pytest.raises(ConfigurationError, match="recreate_index_on_mismatch"):
        RedisSemanticCache(ConceptEmbeddings(), _url(admin), recreate_index_on_mismatch="yes")
    old = RedisSemanticCache(
        ShortEmbeddings(),
        _url(admin),
        prefix=unique_prefix,
        name=unique_prefix,
        vector_backend="redisearch",
        errors="raise",
    )
    old.update(FRANCE, "llm", [Generation(text="old")])
    index = f"{unique_prefix}:v1:ix"
    strict = RedisSemanticCache(
        ConceptEmbeddings(),
        _url(admin),
        prefix=unique_prefix,
        name=unique_prefix,
        vector_backend="redisearch",
        errors="raise",
    )
    with pytest.raises(SchemaMismatchError, match="recreate_index_on_mismatch=True"):
        strict.update(BREAD, "llm", [Generation(text="x")])
    fixed = RedisSemanticCache(
        ConceptEmbeddings(),
        _url(admin),
        prefix=unique_prefix,
        name=unique_prefix,
        vector_backend="redisearch",
        errors="raise",
        recreate_index_on_mismatch=True,
    )
    try:
        fixed.update(BREAD, "llm", [Generation(text="bread")])
        assert fixed.lookup("How do I bake bread", "llm") == [Generation(text="bread")]
    finally:
        fixed.clear()
        _drop_indexes(admin, index)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_changed_embedding_dimension_fails_open_and_is_counted(
    admin: redis.Redis, unique_prefix: str, backend: str
) -> None:
    def make(embeddings: Any, errors: str = "open") -> RedisSemanticCache:
        return RedisSemanticCache(
            embeddings,
            _url(admin),
            prefix=unique_prefix,
            name=unique_prefix,
            vector_backend=backend,
            errors=errors,  # type: ignore[arg-type]
        )

    before = make(ConceptEmbeddings())
    try:
        before.update(FRANCE, "llm", [Generation(text="Paris")])
        after = make(ShortEmbeddings())  # the embedding model changed size
        for _ in range(3):  # writes and lookups never raise
            after.update(FRANCE_PARAPHRASE, "llm", [Generation(text="x")])
            assert after.lookup(FRANCE_PARAPHRASE, "llm") is None
            assert after.lookup(FRANCE, "llm") == [Generation(text="Paris")]  # exact: no vector
        assert after.stats.writes == 0
        assert after.stats.writes_dropped == 3
        assert after.stats.errors_backend + after.stats.breaker_skips >= 6
        # Through a chat model: the model answers, the cache never raises.
        model = _llm(make(ShortEmbeddings()), "fresh", "fresh again")
        assert model.invoke(BREAD).content == "fresh"
        # With errors="raise" the mismatch is a backend error naming the dimension.
        with pytest.raises(SchemaMismatchError, match=r"(?i)dim") as caught:
            make(ShortEmbeddings(), "raise").update(BREAD, "llm", [Generation(text="y")])
        assert isinstance(caught.value, BackendError)
    finally:
        before.clear()
        _drop_indexes(admin, f"{unique_prefix}:v1:ix")


@pytest.mark.redisearch
def test_writes_an_index_of_another_schema_cannot_index_are_dropped(
    admin: redis.Redis, unique_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server restarted, and someone recreated the cache's index with another
    # dimension: the hashes would still be written, but never found by a query.
    monkeypatch.setattr(search_module, "_INDEX_RECHECK_S", 0.0)
    monkeypatch.setattr(search_module, "_REFUSED_INDEX_RECHECK_S", 0.0)
    cache = RedisSemanticCache(
        ConceptEmbeddings(),
        _url(admin),
        prefix=unique_prefix,
        name=unique_prefix,
        vector_backend="redisearch",
    )
    index = f"{unique_prefix}:v1:ix"
    try:
        cache.update(FRANCE, "llm", [Generation(text="Paris")])
        assert cache.stats.writes == 1
        _drop_indexes(admin, index)
        admin.execute_command(
            "FT.CREATE",
            index,
            "ON",
            "HASH",
            "PREFIX",
            1,
            f"{unique_prefix}:v1:s:",
            "SCHEMA",
            "vec",
            "VECTOR",
            "HNSW",
            6,
            "TYPE",
            "FLOAT32",
            "DIM",
            16,
            "DISTANCE_METRIC",
            "COSINE",
            "partition",
            "TAG",
            "CASESENSITIVE",
        )
        cache.update(BREAD, "llm", [Generation(text="bread")])
        assert cache.stats.writes == 1  # not counted as a success
        assert cache.stats.writes_dropped == 1
        assert cache.lookup(BREAD, "llm") is None
        # The index is gone (a restart without it): the next write makes it again, and
        # the entries written before are found through it.
        _drop_indexes(admin, index)
        cache.update(BREAD, "llm", [Generation(text="bread")])
        assert cache.stats.writes == 2
        assert cache.lookup("How do I bake bread", "llm") == [Generation(text="bread")]
        assert cache.lookup(FRANCE_PARAPHRASE, "llm") == [Generation(text="Paris")]
    finally:
        cache.clear()
        _drop_indexes(admin, index)


# -- item 7: arguments checked at construction -------------------------------------------


@pytest.mark.parametrize("name", ["a:v2", "x:y", "v1"])
def test_names_that_would_fail_every_call_are_refused(redis_url: str, name: str) -> None:
    with pytest.raises(ConfigurationError, match="name"):
        RedisSemanticCache(ConceptEmbeddings(), redis_url, name=name)


@pytest.mark.parametrize("prefix", ["a:v2", "v7:b"])
def test_prefixes_with_a_schema_segment_are_refused(redis_url: str, prefix: str) -> None:
    with pytest.raises(ConfigurationError, match="prefix"):
        RedisCache(redis_url, prefix=prefix)
    with pytest.raises(ConfigurationError, match="prefix"):
        RedisSemanticCache(ConceptEmbeddings(), redis_url, prefix=prefix, name="n")


@pytest.mark.parametrize(
    "query",
    [
        "decode_responses=true",
        "decode_responses=false",  # redis-py keeps the string "false": true
        "single_connection_client=true",
        "socket_timout=1",  # a typo: every connection would refuse it
    ],
)
def test_url_options_that_would_fail_every_call_are_refused(redis_url: str, query: str) -> None:
    url = f"{redis_url}?{query}"
    option = query.split("=")[0]
    with pytest.raises(ConfigurationError, match=option):
        RedisCache(url, prefix="p")
    with pytest.raises(ConfigurationError, match=option):
        RedisSemanticCache(ConceptEmbeddings(), url)
    if option != "socket_timout":
        with pytest.raises(ConfigurationError, match=option):
            RedisCache(redis_url, prefix="p", client_kwargs={option: True})


@pytest.mark.parametrize("query", ["single_connection_client=true", "socket_timout=1"])
@pytest.mark.parametrize("kind", ["search", "vectorset", "keys"])
def test_store_urls_with_options_connections_refuse_fail_at_construction(
    redis_url: str, query: str, kind: str
) -> None:
    from llmemo.stores.redis.keystore import RedisKeyStore
    from llmemo.stores.redis.search import RedisSearchVectorStore
    from llmemo.stores.redis.vectorset import RedisVectorSetStore

    url = f"{redis_url}?{query}"
    with pytest.raises(ConfigurationError, match=query.split("=")[0]):
        if kind == "keys":
            RedisKeyStore.from_url(url)
        else:
            store = RedisSearchVectorStore if kind == "search" else RedisVectorSetStore
            store.from_url(url, "n")


def test_url_options_that_work_are_still_accepted(redis_url: str, unique_prefix: str) -> None:
    cache = RedisCache(
        f"{redis_url}?health_check_interval=5&socket_keepalive=true", prefix=unique_prefix
    )
    cache.update("p", "llm", [Generation(text="x")])
    assert cache.lookup("p", "llm") == [Generation(text="x")]

    async def go() -> None:
        assert await cache.alookup("p", "llm") == [Generation(text="x")]
        await cache.aclear()

    asyncio.run(go())


class DuckEmbeddings:
    """Not a LangChain Embeddings, but speaks its sync methods."""

    def embed_query(self, text: str) -> list[float]:
        return concept_vector(text)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [concept_vector(t) for t in texts]


class AsyncDuckEmbeddings(DuckEmbeddings):
    def __init__(self) -> None:
        self.async_calls = 0

    async def aembed_query(self, text: str) -> list[float]:
        self.async_calls += 1
        return concept_vector(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        self.async_calls += 1
        return [concept_vector(t) for t in texts]


def _mocked() -> Mock:
    mock = Mock(spec=Embeddings)
    mock.embed_query.side_effect = concept_vector
    mock.embed_documents.side_effect = lambda texts: [concept_vector(t) for t in texts]
    return mock


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["mock", "duck", "async-duck"])
def test_mocked_and_duck_typed_embeddings_work(
    admin: redis.Redis, unique_prefix: str, backend: str, kind: str
) -> None:
    embeddings = {"mock": _mocked, "duck": DuckEmbeddings, "async-duck": AsyncDuckEmbeddings}[
        kind
    ]()
    cache = RedisSemanticCache(
        embeddings,
        _url(admin),
        prefix=unique_prefix,
        name=unique_prefix,
        vector_backend=backend,
        errors="raise",
    )
    try:
        cache.update(FRANCE, "llm", [Generation(text="Paris")])
        assert cache.lookup(FRANCE_PARAPHRASE, "llm") == [Generation(text="Paris")]

        async def go() -> None:
            assert await cache.alookup(FRANCE_PARAPHRASE, "llm") == [Generation(text="Paris")]

        asyncio.run(go())
        if isinstance(embeddings, AsyncDuckEmbeddings):
            assert embeddings.async_calls > 0
    finally:
        cache.clear()
        _drop_indexes(admin, f"{unique_prefix}:v1:ix")


@pytest.mark.parametrize(
    "embeddings", [object(), "text", Mock(spec=["embed_query"])], ids=["object", "str", "half"]
)
def test_objects_that_cannot_embed_are_refused_at_construction(
    redis_url: str, embeddings: Any
) -> None:
    with pytest.raises(TypeError, match="embeddings"):
        RedisSemanticCache(embeddings, redis_url)


def test_an_embedder_with_a_sync_embed_is_refused_at_construction(redis_url: str) -> None:
    class SyncEmbed:
        def embed(self, texts: list[str]) -> list[list[float]]:
            return [concept_vector(t) for t in texts]

    with pytest.raises(TypeError, match="embed"):
        RedisSemanticCache(SyncEmbed(), redis_url)  # type: ignore[arg-type]


# -- item 16: distinct (prefix, name) configurations are distinct caches -------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_distinct_prefix_and_name_pairs_never_share_entries(
    admin: redis.Redis, unique_prefix: str, backend: str
) -> None:
    # ("t", "a:x") and ("t:a", "x") joined to the same "t:a:x" before; a ':' in a name
    # is now refused, and the pairs that remain map to distinct keys.
    with pytest.raises(ConfigurationError, match="name"):
        RedisSemanticCache(ConceptEmbeddings(), _url(admin), prefix=unique_prefix, name="a:x")
    pairs = [
        (unique_prefix, "a"),
        (f"{unique_prefix}:a", "a"),
        (f"{unique_prefix}:a", "x"),
        (f"{unique_prefix}:a:x", "llmcache"),
        (unique_prefix, unique_prefix),
    ]
    caches = [
        RedisSemanticCache(
            ConceptEmbeddings(),
            _url(admin),
            prefix=p,
            name=n,
            vector_backend=backend,
            errors="raise",
        )
        for p, n in pairs
    ]
    try:
        for i, cache in enumerate(caches):
            cache.update(FRANCE, "llm", [Generation(text=f"answer {i}")])
        for i, cache in enumerate(caches):
            assert cache.lookup(FRANCE, "llm") == [Generation(text=f"answer {i}")]
            assert cache.lookup(FRANCE_PARAPHRASE, "llm") == [Generation(text=f"answer {i}")]
        caches[0].clear()
        assert caches[0].lookup(FRANCE, "llm") is None
        for i, cache in enumerate(caches[1:], start=1):
            assert cache.lookup(FRANCE, "llm") == [Generation(text=f"answer {i}")]
    finally:
        for cache in caches:
            cache.clear()
            root = cache.prefix if cache.name == cache.prefix else f"{cache.prefix}:{cache.name}"
            _drop_indexes(admin, f"{root}:v1:ix")
        _delete_under(admin, f"{unique_prefix}*")
