"""llmemo: an async-first exact and semantic cache for LLM responses.

The core API is async and backend-agnostic::

    from llmemo import ExactCache, MemoryKeyStore

    cache = ExactCache(MemoryKeyStore(max_entries=10_000), ttl=3600)
    await cache.aupdate(prompt, llm_string, value)
    hit = await cache.alookup(prompt, llm_string)   # CacheHit | None

LangChain caches live in :mod:`llmemo.langchain`. Importing ``llmemo`` loads neither
numpy, redis nor LangChain; they load where they are used.
"""

# No ``from __future__ import annotations`` here: it would bind ``annotations`` in this
# namespace and leak it into ``dir(llmemo)`` (nothing here needs it).

from llmemo.caches.base import CacheHit, CacheRuntime, CacheStats
from llmemo.caches.exact import ExactCache
from llmemo.caches.semantic import SemanticCache
from llmemo.config import CacheConfig, SemanticConfig
from llmemo.embedders import LangChainEmbedder
from llmemo.errors import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    CapabilityError,
    ConfigurationError,
    LlmemoError,
    MissingDependencyError,
    SchemaMismatchError,
    SerializationError,
    WrongTypeError,
)
from llmemo.options import CallOptions, options
from llmemo.policy import FailurePolicy
from llmemo.stores.base import Embedder, KeyStore, VectorMatch, VectorStore
from llmemo.stores.memory import MemoryKeyStore, MemoryVectorStore

__version__ = "0.1.0.dev0"

__all__ = [
    "BackendError",
    "BackendTimeoutError",
    "BackendUnavailableError",
    "CacheConfig",
    "CacheHit",
    "CacheRuntime",
    "CacheStats",
    "CallOptions",
    "CapabilityError",
    "ConfigurationError",
    "Embedder",
    "ExactCache",
    "FailurePolicy",
    "KeyStore",
    "LangChainEmbedder",
    "LlmemoError",
    "MemoryKeyStore",
    "MemoryVectorStore",
    "MissingDependencyError",
    "SchemaMismatchError",
    "SemanticCache",
    "SemanticConfig",
    "SerializationError",
    "VectorMatch",
    "VectorStore",
    "WrongTypeError",
    "__version__",
    "options",
]
