"""LangChain's own standard cache suites, unmodified, for the Redis drop-ins."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import redis
from langchain_core.caches import BaseCache
from langchain_tests.integration_tests import AsyncCacheTestSuite, SyncCacheTestSuite

from llmemo.langchain import RedisCache, RedisSemanticCache

from fakes import AsyncConceptEmbeddings, ConceptEmbeddings

pytestmark = pytest.mark.redis


def _drop_index(url: str, name: str) -> None:
    with redis.Redis.from_url(url) as client:
        try:
            client.execute_command("FT.DROPINDEX", name)
        except redis.ResponseError:
            pass


class TestRedisCacheSync(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self, redis_url: str, unique_prefix: str) -> Iterator[BaseCache]:
        cache = RedisCache(redis_url, ttl=60, prefix=unique_prefix)
        yield cache
        cache.clear()


class TestRedisCacheAsync(AsyncCacheTestSuite):
    @pytest.fixture
    async def cache(self, redis_url: str, unique_prefix: str) -> AsyncIterator[BaseCache]:
        cache = RedisCache(redis_url, ttl=60, prefix=unique_prefix)
        yield cache
        await cache.aclear()


@pytest.mark.redisearch
class TestRedisSemanticCacheRediSearchSync(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self, redis_url: str, unique_prefix: str) -> Iterator[BaseCache]:
        cache = RedisSemanticCache(
            ConceptEmbeddings(),
            redis_url,
            name=unique_prefix,
            prefix=unique_prefix,
            vector_backend="redisearch",
        )
        yield cache
        cache.clear()
        _drop_index(redis_url, f"{unique_prefix}:v1:ix")


@pytest.mark.redisearch
class TestRedisSemanticCacheRediSearchAsync(AsyncCacheTestSuite):
    @pytest.fixture
    async def cache(self, redis_url: str, unique_prefix: str) -> AsyncIterator[BaseCache]:
        cache = RedisSemanticCache(
            AsyncConceptEmbeddings(),
            redis_url,
            name=unique_prefix,
            prefix=unique_prefix,
            vector_backend="redisearch",
        )
        yield cache
        await cache.aclear()
        _drop_index(redis_url, f"{unique_prefix}:v1:ix")


@pytest.mark.vectorset
class TestRedisSemanticCacheVectorSetSync(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self, redis_url: str, unique_prefix: str) -> Iterator[BaseCache]:
        cache = RedisSemanticCache(
            ConceptEmbeddings(),
            redis_url,
            name=unique_prefix,
            prefix=unique_prefix,
            vector_backend="vectorset",
        )
        yield cache
        cache.clear()


@pytest.mark.vectorset
class TestRedisSemanticCacheVectorSetAsync(AsyncCacheTestSuite):
    @pytest.fixture
    async def cache(self, redis_url: str, unique_prefix: str) -> AsyncIterator[BaseCache]:
        cache = RedisSemanticCache(
            AsyncConceptEmbeddings(),
            redis_url,
            name=unique_prefix,
            prefix=unique_prefix,
            vector_backend="vectorset",
        )
        yield cache
        await cache.aclear()
