"""LangChain's own standard cache suites, unmodified, for every in-memory adapter."""

from __future__ import annotations

import pytest
from langchain_core.caches import BaseCache
from langchain_tests.integration_tests import AsyncCacheTestSuite, SyncCacheTestSuite

from llmemo.langchain import InMemoryCache, InMemorySemanticCache

from fakes import AsyncConceptEmbeddings, ConceptEmbeddings


class TestInMemoryCacheSync(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self) -> BaseCache:
        return InMemoryCache(ttl=60, maxsize=1000)


class TestInMemoryCacheAsync(AsyncCacheTestSuite):
    @pytest.fixture
    async def cache(self) -> BaseCache:
        return InMemoryCache(ttl=60, maxsize=1000)


class TestInMemorySemanticCacheSync(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self) -> BaseCache:
        return InMemorySemanticCache(ConceptEmbeddings(), distance_threshold=0.2)


class TestInMemorySemanticCacheAsync(AsyncCacheTestSuite):
    @pytest.fixture
    async def cache(self) -> BaseCache:
        return InMemorySemanticCache(AsyncConceptEmbeddings(), distance_threshold=0.2)
