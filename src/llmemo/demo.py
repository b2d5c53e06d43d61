"""``llmemo demo``: exact, semantic and TTL caching through LangChain, end to end.

The walk-through of LangChain's Redis caching notebook, in its order: an exact cache, a
semantic cache (a paraphrase is served, a different question is not), a short TTL, and a
custom semantic cache with its own name, threshold and TTL. In process memory by default;
``--redis-url`` runs the same steps on Redis (with ``--cluster``, on a Redis Cluster), after
checking that the server has the vector search asked for. The embeddings are the real
local all-MiniLM-L6-v2 model (:class:`~llmemo.local.LocalEmbeddings`), warmed up before
the story; a call through a semantic cache reports its embedding and lookup time apart,
and "model time saved" counts the model's time only.
The chat model is OpenAI's when ``OPENAI_API_KEY`` is set and ``langchain-openai`` is
installed, otherwise a local stand-in with a simulated latency, labelled as such. Cache
timings are always real.

Every call prints one line that starts with ``[model call]`` or ``[served from cache]``;
the demo removes everything it wrote (on Redis: the keys under its own random prefix and
the RediSearch indexes it created) and nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import secrets
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from llmemo._quiet import quiet_progress_bars
from llmemo.config import validate_distance_threshold, validate_ttl
from llmemo.errors import BackendError, ConfigurationError, LlmemoError, MissingDependencyError

if TYPE_CHECKING:
    from langchain_core.caches import BaseCache
    from langchain_core.embeddings import Embeddings
    from langchain_core.language_models import BaseChatModel
    from redis.asyncio import Redis

    from llmemo.adapters.langchain import LangChainCache
    from llmemo.caches.base import CacheHit

__all__ = [
    "DEFAULT_CUSTOM_DISTANCE_THRESHOLD",
    "DEFAULT_CUSTOM_TTL",
    "DEFAULT_DISTANCE_THRESHOLD",
    "DEFAULT_LATENCY",
    "DEFAULT_TTL",
    "MODEL_CALL",
    "SERVED",
    "DemoOptions",
    "add_arguments",
    "connect_error",
    "main",
    "make_chat_model",
    "options_from_args",
    "redact_secrets",
    "redact_url",
    "run_demo",
    "simulated_answer",
]

FRANCE = "What is the capital of France?"
FRANCE_PARAPHRASE = "Can you tell me the capital city of France?"
#: Close in wording, different in meaning: a semantic cache must not answer it with "Paris".
OTHER_QUESTION = "What is the capital of Germany?"
TTL_QUESTION = "What is the tallest mountain on Earth?"
PLANET = "What's the largest planet in our solar system?"
PLANET_PARAPHRASE = "Which planet is the biggest in the solar system?"

# Thresholds chosen on all-MiniLM-L6-v2's cosine distances for these questions: France
# pair 0.082, planet pair 0.055, Germany vs France 0.337. 0.20 (langchain-redis' default)
# serves both pairs and refuses Germany; the custom cache's 0.15 still serves both pairs
# with a margin of ~0.07 while refusing anything near 0.2.
DEFAULT_DISTANCE_THRESHOLD = 0.20
DEFAULT_CUSTOM_DISTANCE_THRESHOLD = 0.15
DEFAULT_TTL = 2.0
DEFAULT_CUSTOM_TTL = 300.0
DEFAULT_LATENCY = 1.0
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
VECTOR_BACKENDS = ("auto", "redisearch", "vectorset")
LLM_CHOICES = ("auto", "openai", "simulated")

SERVED = "[served from cache]"
MODEL_CALL = "[model call]"

# Canned answers of the simulated model, picked by the words of the question.
_ANSWERS: tuple[tuple[frozenset[str], str], ...] = (
    (frozenset({"capital", "france"}), "The capital of France is Paris."),
    (frozenset({"capital", "germany"}), "The capital of Germany is Berlin."),
    (frozenset({"tallest", "mountain"}), "Mount Everest, 8,849 m above sea level."),
    (frozenset({"planet"}), "Jupiter is the largest planet in our solar system."),
)
_FALLBACK_ANSWER = "I am a simulated model: I only know a few demo answers."


def simulated_answer(question: str) -> str:
    """The stand-in model's answer: the first canned answer whose words all occur."""
    words = set(re.findall(r"[a-z]+", question.lower()))
    for needed, answer in _ANSWERS:
        if needed <= words:
            return answer
    return _FALLBACK_ANSWER


@dataclass(frozen=True)
class DemoOptions:
    """What ``llmemo demo`` runs with (validated on creation).

    Attributes:
        redis_url: Run on this Redis server, or ``None`` for process memory.
        vector_backend: ``"auto"``, ``"redisearch"`` or ``"vectorset"`` (Redis only).
        distance_threshold: Cosine distance of the semantic step (``[0, 2]``).
        custom_distance_threshold: Cosine distance of the custom semantic cache.
        ttl: Seconds an entry lives in the TTL step (the demo waits past it).
        custom_ttl: Seconds entries of the custom semantic cache live.
        latency: Seconds each call of the simulated model takes.
        llm: ``"auto"`` (OpenAI when configured, else simulated), ``"openai"`` or
            ``"simulated"``.
        openai_model: OpenAI chat model name, when OpenAI is used.
        cluster: ``redis_url`` names one node of a Redis Cluster.
    """

    redis_url: str | None = None
    vector_backend: str = "auto"
    distance_threshold: float = DEFAULT_DISTANCE_THRESHOLD
    custom_distance_threshold: float = DEFAULT_CUSTOM_DISTANCE_THRESHOLD
    ttl: float = DEFAULT_TTL
    custom_ttl: float = DEFAULT_CUSTOM_TTL
    latency: float = DEFAULT_LATENCY
    llm: str = "auto"
    openai_model: str = DEFAULT_OPENAI_MODEL
    cluster: bool = False

    def __post_init__(self) -> None:
        if self.cluster and self.redis_url is None:
            raise ConfigurationError("--cluster needs --redis-url (a node of the cluster)")
        validate_distance_threshold(self.distance_threshold, parameter="--distance-threshold")
        validate_distance_threshold(
            self.custom_distance_threshold, parameter="--custom-distance-threshold"
        )
        for name, value in (("--ttl", self.ttl), ("--custom-ttl", self.custom_ttl)):
            if validate_ttl(value, parameter=name) is None:
                raise ConfigurationError(f"{name} must be a number of seconds > 0")
        if not isinstance(self.latency, (int, float)) or not 0 <= self.latency < math.inf:
            raise ConfigurationError(f"--latency must be seconds >= 0; got {self.latency!r}")
        if self.vector_backend not in VECTOR_BACKENDS:
            raise ConfigurationError(
                f"--vector-backend must be one of {', '.join(VECTOR_BACKENDS)}; "
                f"got {self.vector_backend!r}"
            )
        if self.llm not in LLM_CHOICES:
            raise ConfigurationError(
                f"--llm must be one of {', '.join(LLM_CHOICES)}; got {self.llm!r}"
            )


# -- the chat model ----------------------------------------------------------------------


def _simulated_model_class() -> Any:
    # Defined on first use: importing llmemo.demo (for `llmemo --help`) stays light.
    from langchain_core.callbacks import (
        AsyncCallbackManagerForLLMRun,
        CallbackManagerForLLMRun,
    )
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from langchain_core.messages import AIMessage, BaseMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    class SimulatedChatModel(FakeListChatModel):
        """LangChain's fake chat model, answering by topic after a simulated latency."""

        latency: float = DEFAULT_LATENCY
        calls: int = 0

        @property
        def _llm_type(self) -> str:
            return "llmemo-demo-simulated"

        def _answer(self, messages: list[BaseMessage]) -> str:
            self.calls += 1
            return simulated_answer(str(messages[-1].content) if messages else "")

        def _call(
            self,
            messages: list[BaseMessage],
            stop: list[str] | None = None,
            run_manager: CallbackManagerForLLMRun | None = None,
            **kwargs: Any,
        ) -> str:
            time.sleep(self.latency)
            return self._answer(messages)

        async def _agenerate(
            self,
            messages: list[BaseMessage],
            stop: list[str] | None = None,
            run_manager: AsyncCallbackManagerForLLMRun | None = None,
            **kwargs: Any,
        ) -> ChatResult:
            await asyncio.sleep(self.latency)  # a remote call waits; it does not block the loop
            message = AIMessage(content=self._answer(messages))
            return ChatResult(generations=[ChatGeneration(message=message)])

    return SimulatedChatModel


def make_chat_model(options: DemoOptions) -> tuple[BaseChatModel, str, bool]:
    """Return ``(model, description, simulated)`` for ``options.llm``.

    Raises:
        ConfigurationError: ``llm="openai"`` without ``OPENAI_API_KEY``.
        MissingDependencyError: ``llm="openai"`` without ``langchain-openai``.
    """
    if options.llm != "simulated":
        has_key = bool(os.environ.get("OPENAI_API_KEY"))
        if has_key:
            try:
                from langchain_openai import ChatOpenAI  # type: ignore[import-not-found]
            except ImportError as exc:
                if options.llm == "openai":
                    raise MissingDependencyError(
                        f"--llm openai needs langchain-openai ({exc}): pip install langchain-openai"
                    ) from exc
            else:
                model: BaseChatModel = ChatOpenAI(model=options.openai_model, temperature=0)
                return model, f"OpenAI {options.openai_model} (real API calls)", False
        elif options.llm == "openai":
            raise ConfigurationError("--llm openai needs the OPENAI_API_KEY environment variable")
    cls = _simulated_model_class()
    model = cls(responses=[_FALLBACK_ANSWER], latency=options.latency)
    description = (
        f"SIMULATED: a local stand-in (LangChain's fake chat model) that takes "
        f"{options.latency:.2f} s per call; set OPENAI_API_KEY and install langchain-openai "
        "for a real model"
    )
    return model, description, True


# -- watching the cache ------------------------------------------------------------------


def _observed_cache_class() -> type[BaseCache]:
    from langchain_core.caches import RETURN_VAL_TYPE, BaseCache

    class ObservedCache(BaseCache):
        """Delegates to an llmemo LangChain cache, remembers the last lookup's hit and
        adds up the seconds spent in the cache (lookups and writes)."""

        def __init__(self, inner: LangChainCache) -> None:
            self.inner = inner
            self.last_hit: CacheHit | None = None
            self.cache_seconds = 0.0

        async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
            start = time.perf_counter()
            try:
                self.last_hit = hit = await self.inner.alookup_hit(prompt, llm_string)
            finally:
                self.cache_seconds += time.perf_counter() - start
            return None if hit is None else hit.value

        def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
            start = time.perf_counter()
            try:
                self.last_hit = hit = self.inner.lookup_hit(prompt, llm_string)
            finally:
                self.cache_seconds += time.perf_counter() - start
            return None if hit is None else hit.value

        async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
            start = time.perf_counter()
            try:
                await self.inner.aupdate(prompt, llm_string, return_val)
            finally:
                self.cache_seconds += time.perf_counter() - start

        def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
            start = time.perf_counter()
            try:
                self.inner.update(prompt, llm_string, return_val)
            finally:
                self.cache_seconds += time.perf_counter() - start

        async def aclear(self, **kwargs: Any) -> None:
            await self.inner.aclear(**kwargs)

        def clear(self, **kwargs: Any) -> None:
            self.inner.clear(**kwargs)

    return ObservedCache


def _timed_embeddings(inner: Embeddings) -> Any:
    """``inner`` behind a LangChain ``Embeddings`` that adds up the seconds its embedding
    calls take (``.seconds``), so that the story can tell embedding from lookup time."""
    from langchain_core.embeddings import Embeddings

    class TimedEmbeddings(Embeddings):
        def __init__(self) -> None:
            self.inner = inner
            self.seconds = 0.0

        def _timed(self, start: float) -> None:
            self.seconds += time.perf_counter() - start

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            start = time.perf_counter()
            try:
                return inner.embed_documents(texts)
            finally:
                self._timed(start)

        def embed_query(self, text: str) -> list[float]:
            start = time.perf_counter()
            try:
                return inner.embed_query(text)
            finally:
                self._timed(start)

        async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
            start = time.perf_counter()
            try:
                return await inner.aembed_documents(texts)
            finally:
                self._timed(start)

        async def aembed_query(self, text: str) -> list[float]:
            start = time.perf_counter()
            try:
                return await inner.aembed_query(text)
            finally:
                self._timed(start)

    return TimedEmbeddings()


@dataclass
class _Call:
    question: str
    answer: str
    seconds: float
    hit: CacheHit | None
    model_seconds: float
    embed_seconds: float
    cache_seconds: float


@dataclass
class _Tally:
    model_calls: int = 0
    exact_hits: int = 0
    semantic_hits: int = 0
    #: Seconds of each model call, without the cache's time (lookup, embedding, write).
    model_seconds: list[float] = field(default_factory=list)
    #: Seconds of each answer served from the cache, and of its embedding.
    served_seconds: list[float] = field(default_factory=list)
    served_embed_seconds: list[float] = field(default_factory=list)


def _shorten(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:9,.1f} ms"


# -- Redis bookkeeping -------------------------------------------------------------------


def _cluster_arg(cluster: bool) -> str:
    return ", cluster=True" if cluster else ""


class _RedisHousekeeping:
    """The demo's own view of the server: reachability, key counts, indexes it created.

    On a cluster (``client`` a ``redis.asyncio.cluster.RedisCluster``) keys are counted on
    every primary and indexes are listed and dropped on each primary (a cache keeps one
    RediSearch index per primary); an index is then ``(primary name, index name)``.
    """

    def __init__(self, client: Redis, prefix: str) -> None:
        from redis.asyncio.cluster import RedisCluster

        self.client = client
        self.prefix = prefix
        self.cluster: Any = client if isinstance(client, RedisCluster) else None
        self.indexes_before: set[tuple[str | None, str]] | None = None

    async def check(self, url: str) -> None:
        """PING the server; without ``--cluster``, make sure it is no cluster node.

        Raises:
            BackendUnavailableError: unreachable or refused the credentials (the message
                names the redacted URL and says "authentication failed" for the latter).
            ConfigurationError: a cluster node without ``--cluster``.
        """
        from llmemo.errors import BackendUnavailableError
        from llmemo.stores.redis._errors import map_redis_errors

        try:
            if self.cluster is not None:
                with map_redis_errors("cluster topology"):
                    await self.cluster.initialize()
            with map_redis_errors("PING"):
                await self.client.ping()
            if self.cluster is None and await self._is_cluster_node():
                raise ConfigurationError(
                    f"{redact_url(url)} is a node of a Redis Cluster: pass --cluster"
                )
        except BackendUnavailableError as exc:
            raise connect_error(exc, url, "Redis") from exc

    async def _is_cluster_node(self) -> bool:
        """Whether the server says it is a cluster node (``INFO cluster``); ``False``
        when it will not say (INFO refused by an ACL or renamed)."""
        from llmemo.errors import BackendTimeoutError, BackendUnavailableError
        from llmemo.stores.redis._errors import map_redis_errors

        try:
            with map_redis_errors("INFO cluster"):
                info = await self.client.info("cluster")
        except (BackendUnavailableError, BackendTimeoutError):
            raise
        except BackendError:
            return False
        return str(info.get("cluster_enabled", 0)) == "1"

    async def check_vector_backend(self, backend: str) -> str:
        """The vector backend the semantic steps will use: ``backend``, or the probed one
        for ``"auto"`` (RediSearch, else vector sets). On a cluster, a primary is asked.

        Raises:
            CapabilityError: the server lacks it (the message says what is missing and
                what to pass instead).
        """
        from llmemo.errors import CapabilityError

        search = await self._answers("FT._LIST")
        if backend == "redisearch" and not search:
            raise CapabilityError(
                "--vector-backend redisearch: this Redis server has no RediSearch (FT.* "
                "commands: Redis 8 with the query engine, Redis Stack, or the search "
                "module loaded); try --vector-backend vectorset or auto"
            )
        if backend == "redisearch" or (backend == "auto" and search):
            return "redisearch"
        if not await self._answers("VCARD", "llmemo:probe:{none}"):  # a key never used
            raise CapabilityError(
                f"--vector-backend {backend}: this Redis server has no vector sets (VADD/"
                "VSIM, Redis 8 or later)"
                + ("" if backend == "auto" else "; try --vector-backend redisearch or auto")
                + (" nor RediSearch (FT.*): the semantic steps need one" if not search else "")
            )
        return "vectorset"

    async def _answers(self, *command: Any) -> bool:
        """Whether the server knows ``command``: on a cluster, the primary that owns
        its key (a keyed command) or the first primary (a keyless one)."""
        from llmemo.errors import CapabilityError
        from llmemo.stores.redis._errors import map_redis_errors

        try:
            with map_redis_errors(str(command[0])):
                if self.cluster is not None and len(command) > 1:
                    await self.cluster.execute_command(*command)  # routed by its key
                else:
                    node = None if self.cluster is None else self.cluster.get_primaries()[0]
                    await self._on(node, *command)
        except CapabilityError:
            return False
        return True

    async def count_keys(self) -> int:
        from llmemo.stores.redis._errors import map_redis_errors

        count = 0
        match = f"{self.prefix}:*"
        with map_redis_errors("SCAN"):
            if self.cluster is None:
                async for _ in self.client.scan_iter(match=match, count=1000):
                    count += 1
                return count
            for node in self.cluster.get_primaries():
                cursor = 0
                while True:
                    cursors, batch = await self.cluster.scan(
                        cursor=cursor, match=match, count=1000, target_nodes=node
                    )
                    count += len(batch)
                    cursor = int(cursors[node.name])
                    if cursor == 0:
                        break
        return count

    async def indexes(self) -> set[tuple[str | None, str]] | None:
        """``(primary name or None, index name)`` of the RediSearch indexes, or ``None``
        without RediSearch."""
        from llmemo.errors import CapabilityError
        from llmemo.stores.redis._errors import map_redis_errors

        found: set[tuple[str | None, str]] = set()
        nodes = [None] if self.cluster is None else self.cluster.get_primaries()
        for node in nodes:
            try:
                with map_redis_errors("FT._LIST"):
                    names = await self._on(node, "FT._LIST")
            except CapabilityError:
                return None
            for n in names:
                found.add((node and node.name, n.decode() if isinstance(n, bytes) else str(n)))
        return found

    async def _on(self, node: Any, *args: Any) -> Any:
        """Send a command to the server, or to ``node`` (a cluster primary)."""
        if node is None:
            return await self.client.execute_command(*args)  # type: ignore[no-untyped-call]
        return await self.cluster.execute_command(*args, target_nodes=node)

    async def drop_new_indexes(self) -> list[str]:
        """Drop the indexes under the demo's prefix that did not exist before it ran."""
        from llmemo.stores.redis._errors import map_redis_errors

        now = await self.indexes()
        if now is None:
            return []
        before = self.indexes_before or set()
        dropped = []
        for node_name, name in sorted(now - before, key=lambda item: (item[1], item[0] or "")):
            if name.startswith(f"{self.prefix}:"):
                node = None if node_name is None else self.cluster.get_node(node_name=node_name)
                with map_redis_errors("FT.DROPINDEX"):
                    await self._on(node, "FT.DROPINDEX", name)
                dropped.append(name if node_name is None else f"{name} on {node_name}")
        return dropped


# -- the demo ----------------------------------------------------------------------------


class _Demo:
    def __init__(
        self,
        options: DemoOptions,
        embeddings: Embeddings,
        model: BaseChatModel,
        simulated: bool,
        out: TextIO,
    ) -> None:
        self.options = options
        self.embeddings = _timed_embeddings(embeddings)
        self.model = model
        self.simulated = simulated
        self.out = out
        self.tally = _Tally()
        self.prefix = f"llmemo-demo-{secrets.token_hex(4)}"
        self.caches: list[LangChainCache] = []
        self.observer_cls = _observed_cache_class()

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    # - caches -

    def _track(self, cache: LangChainCache) -> LangChainCache:
        self.caches.append(cache)
        return cache

    def exact_cache(self, label: str, ttl: float | None) -> tuple[LangChainCache, str]:
        from llmemo.langchain import InMemoryCache, RedisCache

        prefix = f"{self.prefix}:{label}"
        url = self.options.redis_url
        if url is None:
            code = f"InMemoryCache(ttl={ttl!r}, namespace={prefix!r})"
            return self._track(InMemoryCache(ttl=ttl, namespace=prefix)), code
        cluster = self.options.cluster
        code = f"RedisCache(redis_url=..., ttl={ttl!r}, prefix={prefix!r}{_cluster_arg(cluster)})"
        cache = RedisCache(redis_url=url, ttl=ttl, prefix=prefix, cluster=cluster)
        return self._track(cache), code

    def semantic_cache(
        self, name: str, threshold: float, ttl: float | None
    ) -> tuple[LangChainCache, str]:
        from llmemo.langchain import InMemorySemanticCache, RedisSemanticCache

        url = self.options.redis_url
        if url is None:
            namespace = f"{self.prefix}:{name}"
            code = (
                f"InMemorySemanticCache(embeddings, distance_threshold={threshold}, "
                f"ttl={ttl!r}, namespace={namespace!r})"
            )
            cache: LangChainCache = InMemorySemanticCache(
                self.embeddings, distance_threshold=threshold, ttl=ttl, namespace=namespace
            )
            return self._track(cache), code
        backend = self.options.vector_backend
        code = (
            f"RedisSemanticCache(embeddings, redis_url=..., name={name!r}, "
            f"prefix={self.prefix!r}, distance_threshold={threshold}, ttl={ttl!r}, "
            f"vector_backend={backend!r}{_cluster_arg(self.options.cluster)})"
        )
        cache = RedisSemanticCache(
            self.embeddings,
            redis_url=url,
            distance_threshold=threshold,
            ttl=ttl,
            name=name,
            prefix=self.prefix,
            vector_backend=backend,  # type: ignore[arg-type]
            cluster=self.options.cluster,
        )
        return self._track(cache), code

    def use(self, cache: LangChainCache) -> Any:
        from langchain_core.globals import set_llm_cache

        observer = self.observer_cls(cache)  # type: ignore[call-arg]
        set_llm_cache(observer)
        return observer

    # - calls -

    async def ask(self, observer: Any, question: str, note: str = "") -> _Call:
        observer.last_hit = None
        cache_before, embed_before = observer.cache_seconds, self.embeddings.seconds
        start = time.perf_counter()
        message = await self.model.ainvoke(question)
        seconds = time.perf_counter() - start
        cache = observer.cache_seconds - cache_before
        embed = self.embeddings.seconds - embed_before
        answer = message.content if isinstance(message.content, str) else str(message.content)
        hit = observer.last_hit
        call = _Call(question, answer, seconds, hit, max(0.0, seconds - cache), embed, cache)
        # Embedding is part of the cache's time, never of the model's. A miss's cache
        # time also holds the write of the model's answer.
        rest = _ms(max(0.0, cache - embed)).strip()
        costs = f"embedding {_ms(embed).strip()}, lookup {rest}"
        if hit is None:
            self.tally.model_calls += 1
            self.tally.model_seconds.append(call.model_seconds)
            how = "simulated model" if self.simulated else "model"
            spent = f"{how} {_ms(call.model_seconds).strip()}"
            if embed > 0:
                spent += f"; cache: embedding {_ms(embed).strip()}, lookup and write {rest}"
            detail = f"({spent}{'; ' + note if note else ''})"
            tag = MODEL_CALL
        else:
            self.tally.served_seconds.append(seconds)
            self.tally.served_embed_seconds.append(embed)
            if hit.kind == "exact":
                self.tally.exact_hits += 1
                detail = "(exact match)"
            else:
                self.tally.semantic_hits += 1
                detail = f"(semantic match, cosine distance {hit.distance:.3f}; {costs})"
            if note:
                detail = f"{detail[:-1]}; {note})"
            tag = SERVED
        self.say(f"  {tag:<19} {_ms(seconds)}  {question!r} -> {_shorten(answer)!r} {detail}")
        return call

    async def distance(self, a: str, b: str) -> float:
        # For the output only: through the untimed embeddings, so the calls' figures
        # hold only what the cache spent.
        va, vb = await self.embeddings.inner.aembed_documents([a, b])
        dot = sum(x * y for x, y in zip(va, vb, strict=True))
        norm = math.sqrt(sum(x * x for x in va) * sum(y * y for y in vb))
        return float(1.0 - dot / norm)

    # - steps -

    async def step_exact(self) -> None:
        self.say("== 1. Exact cache: the same prompt twice ==")
        cache, code = self.exact_cache("exact", None)
        self.say(f"  set_llm_cache({code})")
        observer = self.use(cache)
        first = await self.ask(observer, FRANCE)
        second = await self.ask(observer, FRANCE)
        if second.hit is not None and second.seconds > 0:
            self.say(
                f"  speed-up: {first.seconds / second.seconds:,.0f}x "
                f"({_ms(first.seconds).strip()} -> {_ms(second.seconds).strip()})"
            )
        await cache.aclear()
        self.say("  cache.clear(): the exact cache is empty again")
        self.say()

    async def step_semantic(self) -> None:
        threshold = self.options.distance_threshold
        self.say("== 2. Semantic cache: same meaning, other words ==")
        cache, code = self.semantic_cache("semantic", threshold, None)
        self.say(f"  set_llm_cache({code})")
        observer = self.use(cache)
        await self.ask(observer, FRANCE)
        await self.ask(observer, FRANCE_PARAPHRASE)
        far = await self.distance(OTHER_QUESTION, FRANCE)  # for the output only
        verdict = "within" if far <= threshold else "above"
        await self.ask(
            observer,
            OTHER_QUESTION,
            note=f"distance to the cached question {far:.3f}, {verdict} threshold {threshold}",
        )
        backend = getattr(cache, "vector_backend", None)
        if backend is not None:
            self.say(f"  vector backend: {backend}")
        self.say()

    async def step_ttl(self) -> None:
        ttl = self.options.ttl
        self.say(f"== 3. Time to live: an entry that expires after {ttl:g} s ==")
        cache, code = self.exact_cache("ttl", ttl)
        self.say(f"  set_llm_cache({code})")
        observer = self.use(cache)
        await self.ask(observer, TTL_QUESTION)
        await self.ask(observer, TTL_QUESTION, note="before expiry")
        wait = ttl + min(1.0, max(0.3, ttl / 4))
        self.say(f"  waiting {wait:.1f} s for the entry to expire ...")
        await asyncio.sleep(wait)
        after = await self.ask(observer, TTL_QUESTION, note="after expiry")
        if after.hit is None:
            self.say(f"  entry gone after expiry: the third call went to the model ({wait:.1f} s)")
        else:
            self.say("  entry still served after its TTL: unexpected")
        self.say()

    async def step_custom(self) -> None:
        threshold = self.options.custom_distance_threshold
        ttl = self.options.custom_ttl
        self.say(f"== 4. A custom semantic cache: name, threshold {threshold}, ttl {ttl:g} s ==")
        cache, code = self.semantic_cache("custom_cache", threshold, ttl)
        self.say(f"  set_llm_cache({code})")
        observer = self.use(cache)
        await self.ask(observer, PLANET)
        await self.ask(observer, PLANET_PARAPHRASE)
        self.say()

    async def cleanup(self, housekeeping: _RedisHousekeeping | None) -> None:
        """Clear and close every cache the demo made, then (on Redis) drop the indexes it
        created and count what is left under its prefix.

        Best effort: every step is tried; failures are printed, and the first is raised
        at the end.
        """
        failures: list[LlmemoError] = []
        for cache in self.caches:
            try:
                await cache.aclear()
            except LlmemoError as exc:
                failures.append(exc)
                self.say(f"  could not clear a cache: {exc}")
            await cache.aclose()
            cache.close()
        if housekeeping is not None:
            try:
                dropped = await housekeeping.drop_new_indexes()
                left = await housekeeping.count_keys()
            except LlmemoError as exc:
                failures.append(exc)
                self.say(f"  could not finish the clean-up on Redis: {exc}")
            else:
                indexes = f"; dropped RediSearch index(es) {', '.join(dropped)}" if dropped else ""
                self.say(f"  cleared {len(self.caches)} caches{indexes}")
                self.say(f"  Redis keys under {self.prefix}:* after the demo: {left}")
        else:
            self.say(f"  cleared {len(self.caches)} caches (process memory)")
        if failures:
            raise failures[0]

    def summary(self) -> None:
        tally = self.tally
        served = tally.exact_hits + tally.semantic_hits
        total = tally.model_calls + served
        model = "simulated model" if self.simulated else "model"
        self.say(
            f"== Summary: {total} questions, {tally.model_calls} {model} calls, {served} served "
            f"from cache ({tally.exact_hits} exact, {tally.semantic_hits} semantic) =="
        )
        if tally.model_seconds and served:
            mean = sum(tally.model_seconds) / len(tally.model_seconds)
            self.say(
                f"  model time saved: about {served * mean:.1f} s ({served} answers x "
                f"{mean:.2f} s, the mean {model} call; embedding excluded)"
            )
            cost = sum(tally.served_seconds)
            embed = sum(tally.served_embed_seconds)
            self.say(
                f"  cache time of the {served} answers served: {_ms(cost).strip()} "
                f"(embedding {_ms(embed).strip()}, lookup {_ms(max(0.0, cost - embed)).strip()})"
            )


async def _warm_up(embeddings: Embeddings, out: TextIO) -> None:
    """Load the model and run a first embedding (``warm_up()``, when the embeddings have
    one) before the story, so that no call of the story pays for it; then time one
    embedding, so that the story's figures can be read against it."""
    import anyio.to_thread

    warm_up = getattr(embeddings, "warm_up", None)
    if not callable(warm_up):
        return
    print(
        "loading the embedding model all-MiniLM-L6-v2 (CPU; a few seconds) ...",
        file=out,
        flush=True,
    )
    start = time.perf_counter()
    await anyio.to_thread.run_sync(warm_up)
    ready = time.perf_counter() - start
    start = time.perf_counter()
    await embeddings.aembed_query("How long does one embedding take?")
    one = time.perf_counter() - start
    print(
        f"embedding model ready in {ready:.1f} s (loaded and warmed up); one embedding "
        f"now takes {_ms(one).strip()}",
        file=out,
        flush=True,
    )


async def run_demo(
    options: DemoOptions,
    *,
    embeddings: Embeddings | None = None,
    out: TextIO | None = None,
) -> None:
    """Run the whole demo on the calling event loop, printing to ``out`` (default stdout).

    Args:
        options: What to run on and with.
        embeddings: Embeddings to use instead of a new
            :class:`~llmemo.local.LocalEmbeddings`; warmed up (``warm_up()``, if they
            have one) before the story, so that no call of the story pays for it.
        out: Where the story is printed.

    Raises:
        ConfigurationError: a bad option (e.g. a malformed ``redis_url``).
        MissingDependencyError: the ``local`` extra (or, for OpenAI, langchain-openai)
            is missing.
        BackendError: Redis is unreachable or refused the credentials, failed mid-way
            (what the demo wrote is still cleaned up when the server is reachable), or
            lacks the vector search ``options.vector_backend`` asks for (a
            :class:`~llmemo.errors.CapabilityError`, raised before the story starts).
    """
    from langchain_core.globals import get_llm_cache, set_llm_cache

    stream = out if out is not None else sys.stdout
    model, model_description, simulated = make_chat_model(options)
    if embeddings is None:
        from llmemo.local import LocalEmbeddings

        embeddings = LocalEmbeddings()
    demo = _Demo(options, embeddings, model, simulated, stream)
    housekeeping: _RedisHousekeeping | None = None
    client: Redis | None = None
    if options.redis_url is not None:
        client = await _connect(options.redis_url, cluster=options.cluster)
        housekeeping = _RedisHousekeeping(client, demo.prefix)
    previous_cache = get_llm_cache()
    try:
        if housekeeping is not None:
            await housekeeping.check(options.redis_url or "")
            # Before any story: a server that cannot run the semantic steps ends the
            # demo here (exit code 1), instead of telling a story of failed lookups.
            await housekeeping.check_vector_backend(options.vector_backend)
            housekeeping.indexes_before = await housekeeping.indexes()
            before = await housekeeping.count_keys()
            kind = "Redis Cluster" if options.cluster else "Redis"
            where = f"{kind} at {redact_url(options.redis_url or '')}"
        else:
            where = "process memory (no server)"
        demo.say(f"llmemo demo: caches in {where}")
        demo.say(f"chat model: {model_description}")
        demo.say("embeddings: all-MiniLM-L6-v2, local on CPU (llmemo.local.LocalEmbeddings)")
        if housekeeping is not None:
            demo.say(f"key prefix of this run: {demo.prefix} ({before} keys under it before)")
        failed = True
        try:
            with quiet_progress_bars():
                await _warm_up(embeddings, stream)
                demo.say()
                await demo.step_exact()
                await demo.step_semantic()
                await demo.step_ttl()
                await demo.step_custom()
            failed = False
        finally:
            set_llm_cache(previous_cache)
            demo.say("== Clean-up: remove what the demo wrote, nothing else ==")
            try:
                await demo.cleanup(housekeeping)
            except LlmemoError:
                if not failed:
                    raise
                # Otherwise the step's error is the one to report; the clean-up's
                # failure has been printed.
            demo.say()
        demo.summary()
    finally:
        set_llm_cache(previous_cache)
        if client is not None:
            await client.aclose()


async def _connect(url: str, *, cluster: bool = False) -> Redis:
    import redis.asyncio as aioredis
    from redis.asyncio.cluster import RedisCluster

    timeouts: dict[str, Any] = {"socket_connect_timeout": 5.0, "socket_timeout": 30.0}
    try:
        if cluster:  # connects on first use (check())
            client: Any = RedisCluster.from_url(url, **timeouts)
            return client  # type: ignore[no-any-return]
        return aioredis.Redis.from_url(url, **timeouts)
    except ValueError as exc:
        raise ConfigurationError(f"--redis-url is not a valid Redis URL: {exc}") from exc


# Query parameters whose values are secrets (redis-py reads ``password`` from the query).
_SECRET_QUERY_RE = re.compile(r"pass|secret|token|credential", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` with every secret replaced by ``***`` (for messages).

    The user-info's password (everything after the first ``:`` up to the *last* ``@``
    before the host, so a password holding ``@`` is hidden whole; the whole user-info
    when it has no ``:``, since redis-py users put bare tokens there) and the values of
    query parameters named like a secret (``password=``) are masked, for every scheme
    (``redis://``, ``rediss://``, ``unix://``). The scheme, host, port, path and other
    parameters stay, so the message still says which server.
    """
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:  # unparseable: mask anything that may be a user-info or a query
        return re.sub(r"//.*@", "//***@", url.split("?", 1)[0]) + ("?***" if "?" in url else "")
    netloc = parts.netloc
    user_info, at, host = netloc.rpartition("@")
    if at:
        user, colon, _ = user_info.partition(":")
        netloc = f"{user}:***@{host}" if colon else f"***@{host}"
    query = "&".join(
        f"{name}=***" if _SECRET_QUERY_RE.search(name) else f"{name}{sep}{value}"
        for name, sep, value in (item.partition("=") for item in parts.query.split("&") if item)
    )
    out = f"{parts.scheme}://{netloc}{parts.path}" if parts.scheme else netloc + parts.path
    if query:
        out += f"?{query}"
    if parts.fragment:
        out += "#***"
    return out


def connect_error(exc: BackendError, url: str, what: str) -> BackendError:
    """The one-line error for a failed connection to ``url`` (``what``: "Redis", "Redis
    Cluster"), of the type of ``exc``: ``authentication failed`` when the server refused
    the credentials (a wrong password, or none where one is required), else ``cannot
    reach``. No secret of ``url`` is in it."""
    import redis

    cause = exc.__cause__
    detail = redact_secrets(str(cause or exc), url)
    if isinstance(cause, redis.AuthenticationError):
        return type(exc)(
            f"authentication failed at {what} {redact_url(url)}: {detail} (check the user "
            "and password in --redis-url)"
        )
    return type(exc)(f"cannot reach {what} at {redact_url(url)}: {detail}")


def redact_secrets(text: str, url: str | None) -> str:
    """``text`` (e.g. an error message) with every secret of ``url`` replaced by ``***``:
    the password of its user-info and secret query values, as written and decoded, and
    the URL itself. Text without them comes back unchanged."""
    if not url:
        return text
    from urllib.parse import parse_qsl, unquote, urlsplit

    text = text.replace(url, redact_url(url))
    secrets: set[str] = set()
    try:
        parts = urlsplit(url)
    except ValueError:
        return text
    user_info, at, _ = parts.netloc.rpartition("@")
    if at:
        user, colon, password = user_info.partition(":")
        secrets.add(password if colon else user)
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if _SECRET_QUERY_RE.search(name):
            secrets.add(value)
    for secret in sorted(secrets | {unquote(s) for s in secrets}, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text


# -- command line ------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options to ``parser``."""
    parser.add_argument(
        "--redis-url",
        metavar="URL",
        help="run on this Redis (redis://, rediss://, unix://) instead of process memory; "
        "needs RediSearch or Redis 8 vector sets",
    )
    parser.add_argument(
        "--vector-backend",
        choices=VECTOR_BACKENDS,
        default="auto",
        help="vector search on Redis: probed (auto, the default), RediSearch FT.* or "
        "Redis 8 vector sets",
    )
    parser.add_argument(
        "--distance-threshold",
        type=float,
        default=DEFAULT_DISTANCE_THRESHOLD,
        metavar="D",
        help="cosine distance (0-2) served by the semantic cache (default %(default)s)",
    )
    parser.add_argument(
        "--custom-distance-threshold",
        type=float,
        default=DEFAULT_CUSTOM_DISTANCE_THRESHOLD,
        metavar="D",
        help="cosine distance of the custom semantic cache (default %(default)s)",
    )
    parser.add_argument(
        "--ttl",
        type=float,
        default=DEFAULT_TTL,
        metavar="SECONDS",
        help="time to live of the TTL step's entry; the demo waits past it (default %(default)s)",
    )
    parser.add_argument(
        "--custom-ttl",
        type=float,
        default=DEFAULT_CUSTOM_TTL,
        metavar="SECONDS",
        help="time to live of the custom semantic cache's entries (default %(default)s)",
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=DEFAULT_LATENCY,
        metavar="SECONDS",
        help="seconds per call of the simulated model (default %(default)s)",
    )
    parser.add_argument(
        "--llm",
        choices=LLM_CHOICES,
        default="auto",
        help="chat model: OpenAI when OPENAI_API_KEY is set and langchain-openai is "
        "installed (auto, the default), always OpenAI, or always the simulated stand-in",
    )
    parser.add_argument(
        "--openai-model",
        default=DEFAULT_OPENAI_MODEL,
        metavar="NAME",
        help="OpenAI chat model when OpenAI is used (default %(default)s)",
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="--redis-url names one node of a Redis Cluster (keys are counted and the "
        "demo's RediSearch indexes dropped on every primary)",
    )


def options_from_args(args: argparse.Namespace) -> DemoOptions:
    """Build :class:`DemoOptions` from parsed arguments.

    Raises:
        ConfigurationError: an option is out of range (the message names it).
    """
    return DemoOptions(
        redis_url=args.redis_url,
        vector_backend=args.vector_backend,
        distance_threshold=args.distance_threshold,
        custom_distance_threshold=args.custom_distance_threshold,
        ttl=args.ttl,
        custom_ttl=args.custom_ttl,
        latency=args.latency,
        llm=args.llm,
        openai_model=args.openai_model,
        cluster=args.cluster,
    )


def main(argv: list[str] | None = None) -> int:
    """``llmemo demo [options]``; returns the process exit code (see :mod:`llmemo.cli`)."""
    from llmemo.cli import main as cli_main

    return cli_main(["demo", *(sys.argv[1:] if argv is None else argv)])
