"""LangChain caches backed by llmemo: ``set_llm_cache(InMemoryCache())`` and friends.

Importing this module imports ``langchain_core`` (redis and numpy load on first use of a
Redis cache); ``import llmemo`` imports none of them.
"""

from __future__ import annotations

from llmemo.adapters.langchain import (
    InMemoryCache,
    InMemorySemanticCache,
    LangChainCache,
)
from llmemo.adapters.langchain_redis import RedisCache, RedisSemanticCache

__all__ = [
    "InMemoryCache",
    "InMemorySemanticCache",
    "LangChainCache",
    "RedisCache",
    "RedisSemanticCache",
]
