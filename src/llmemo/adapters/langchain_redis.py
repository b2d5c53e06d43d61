"""Drop-in replacements for langchain-redis' ``RedisCache`` and ``RedisSemanticCache``.

Same parameter names and defaults as langchain-redis 0.2.x, so switching is a change of
import. The differences are the point: native async (no thread pool), one round trip per
hit and per write, answers isolated per model configuration *inside* the query, TTL
written atomically with each entry, and ``clear()`` scoped to the cache's own keys.

Each running event loop gets its own ``redis.asyncio`` client (see
:mod:`llmemo.adapters._redis_clients`), created on first use there and closed when that
loop is shut down. The sync methods of :class:`RedisCache` use one thread-safe sync client
and no event loop. No constructor does I/O.

Redis Cluster: pass a ``RedisCluster`` (sync or asyncio) as ``redis_client``, or
``cluster=True`` with the URL of any node; llmemo's own clients are then cluster clients
(see :mod:`llmemo.adapters._redis_clients` and ``docs/cluster.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from llmemo import keys
from llmemo.adapters._redis_clients import RedisClientFactory
from llmemo.adapters._sync import run_sync
from llmemo.adapters.langchain import (
    DEFAULT_SINGLE_FLIGHT_TIMEOUT,
    CoreCache,
    LangChainCache,
    to_embedder,
)
from llmemo.caches.base import DEFAULT, CacheHit
from llmemo.caches.exact import ExactCache
from llmemo.caches.semantic import SemanticCache, resolve_verifier
from llmemo.config import (
    REDISEARCH_ALGORITHMS,
    REDISEARCH_VECTOR_TYPES,
    CacheConfig,
    SemanticConfig,
    validate_choice,
    validate_optional_positive_int,
)
from llmemo.errors import ConfigurationError
from llmemo.keys import validate_namespace
from llmemo.policy import ErrorMode, FailurePolicy
from llmemo.text import CONTEXT_POLICIES
from llmemo.verify.base import HitVerifier

logger = logging.getLogger("llmemo")

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings
    from redis.asyncio import Redis as AsyncRedis
    from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

    from llmemo.stores.base import Embedder, VectorStore

__all__ = ["RedisCache", "RedisSemanticCache", "VectorBackend"]

VectorBackend = Literal["auto", "redisearch", "vectorset"]
_BACKENDS = ("auto", "redisearch", "vectorset")
# The key llmemo.stores.redis.probe.has_vector_sets asks VCARD about.
_PROBE_KEY = "llmemo:probe:{none}"


#: HNSW search breadth the semantic drop-in asks for (see ``RedisSemanticCache``).
DEFAULT_EF_RUNTIME = 100
#: Seconds between two publications of a cache's counters to Redis (for ``llmemo stats``).
STATS_PUBLISH_INTERVAL = 10.0
#: Most seconds a close waits for the last publication of counters (then drops them).
STATS_FLUSH_TIMEOUT = 2.0


class _RedisLangChainCache(LangChainCache):
    """A LangChain cache whose per-loop cores own a Redis client each.

    With ``publish_stats=True`` it also publishes its counters to the server, so that
    ``llmemo stats`` can show hits and misses summed over every process: the counter
    increments since the last publication are added to the hash ``{root}:v1:stats`` (one
    pipelined round trip) after a lookup or a write once :data:`STATS_PUBLISH_INTERVAL`
    seconds have passed since the last one (the first lookup publishes at once), and
    when the cache is closed (``aclose()`` or its event loop ending, ``close()``).

    Publication never costs a call its time: after a call it runs in the background (a
    task on async paths, a short-lived thread with its own sync client on sync paths);
    only ``close``/``aclose`` wait for it, at most :data:`STATS_FLUSH_TIMEOUT` seconds.
    It is best effort: a failure drops those increments (they are never sent twice) and
    is logged at debug level, never raised. ``clear()`` removes entries, not this hash
    (``llmemo clear`` removes both).
    """

    _stats_key: str = ""
    _published: dict[str, int]
    _next_publish = 0.0

    def _start_publishing(
        self, root: str, enabled: bool, make_sync_client: Callable[[], Any]
    ) -> None:
        """Set up publication to ``{root}:v1:stats`` when ``enabled``; no I/O.

        Args:
            root: The cache's key root.
            enabled: ``publish_stats``.
            make_sync_client: Makes the sync client of background publications (made on
                first use, closed by :meth:`close`).
        """
        if not isinstance(enabled, bool):
            raise ConfigurationError(f"publish_stats must be a bool; got {enabled!r}")
        self._stats_key = f"{root}:{keys.KEY_SCHEMA}:stats" if enabled else ""
        self._published = {}
        self._publish_lock = threading.Lock()
        self._publish_tasks: set[asyncio.Task[None]] = set()
        self._publish_thread: threading.Thread | None = None
        self._make_stats_client = make_sync_client
        self._stats_client: Any = None
        # Its own lock: making a (cluster) client does I/O, which must never hold up the
        # counters' bookkeeping of a call.
        self._stats_client_lock = threading.Lock()

    def _take_deltas(self, *, force: bool = False) -> dict[str, int] | None:
        """The increments not yet published when a publication is due (always with
        ``force``), or ``None``; they count as published from here on."""
        if not self._stats_key:
            return None
        now = time.monotonic()
        if not force and now < self._next_publish:
            return None
        with self._publish_lock:
            if not force and now < self._next_publish:
                return None
            self._next_publish = now + STATS_PUBLISH_INTERVAL
            counters = self.stats.as_dict()
            deltas = {k: v - self._published.get(k, 0) for k, v in counters.items()}
            self._published = counters
        return {k: v for k, v in deltas.items() if v} or None

    # - after a call: in the background -

    def _publish_soon(self) -> None:
        """On a loop: publish due increments in a background task on this loop's client."""
        deltas = self._take_deltas()
        if deltas is None:
            return
        client = _client_of(self.core())
        if client is not None:
            task = asyncio.get_running_loop().create_task(self._publish(client, deltas))
            self._publish_tasks.add(task)
            task.add_done_callback(self._publish_tasks.discard)

    def _publish_soon_sync(self) -> None:
        """Without a loop: publish due increments from a short-lived background thread."""
        deltas = self._take_deltas()
        if deltas is None:
            return
        thread = threading.Thread(
            target=self._publish_blocking, args=(deltas,), name="llmemo-stats", daemon=True
        )
        self._publish_thread = thread
        thread.start()

    def _publish_blocking(self, deltas: dict[str, int]) -> None:
        try:
            with self._stats_client_lock:
                if self._stats_client is None:
                    self._stats_client = self._make_stats_client()
                client = self._stats_client
        except Exception:  # best effort: never raised into a call
            logger.debug("llmemo: could not publish counters to %s", self._stats_key)
            return
        _publish_sync(client, self._stats_key, deltas)

    def _after_lookup(self) -> None:
        self._publish_soon()

    def lookup_hit(self, prompt: str, llm_string: str) -> CacheHit | None:
        hit = super().lookup_hit(prompt, llm_string)
        self._publish_soon_sync()
        return hit

    lookup_hit.__doc__ = LangChainCache.lookup_hit.__doc__

    async def aupdate(self, prompt: str, llm_string: str, return_val: Any) -> None:
        try:
            await super().aupdate(prompt, llm_string, return_val)
        finally:
            self._publish_soon()

    aupdate.__doc__ = LangChainCache.aupdate.__doc__

    def update(self, prompt: str, llm_string: str, return_val: Any) -> None:
        try:
            if self._sync_core is None:
                # The base class's aupdate, not this class's: a background task left on
                # run_sync's private loop would only run on that loop's next call.
                run_sync(super().aupdate, prompt, llm_string, return_val)
            else:
                super().update(prompt, llm_string, return_val)
        finally:
            self._publish_soon_sync()

    update.__doc__ = LangChainCache.update.__doc__

    # - on close: the rest, bounded -

    def close(self) -> None:
        """Release what the sync methods hold; with ``publish_stats``, first publish the
        counters not yet published (waiting at most :data:`STATS_FLUSH_TIMEOUT` s)."""
        try:
            if self._stats_key:
                thread = self._publish_thread
                if thread is not None:
                    thread.join(STATS_FLUSH_TIMEOUT)
                deltas = self._take_deltas(force=True)
                if deltas is not None:
                    flush = threading.Thread(
                        target=self._publish_blocking, args=(deltas,), daemon=True
                    )
                    flush.start()
                    flush.join(STATS_FLUSH_TIMEOUT)  # a hung server costs close() this, once
                client, self._stats_client = self._stats_client, None
                if client is not None:
                    with contextlib.suppress(Exception):
                        client.close()
        finally:
            super().close()

    async def asetup(self) -> None:
        """Do the first use's one-time work now, for the calling event loop: connect,
        probe the server, check the index (a semantic cache also loads its embedder's
        model if it has ``awarm_up``, and creates a missing index). Optional: the first
        calls do it themselves, outside their time budgets; this moves it ahead of
        traffic.

        Raises:
            BackendError: the server failed (whatever the failure policy).
            ConfigurationError: an existing index does not fit this cache.
        """
        setup = getattr(self.core(), "setup", None)
        if setup is not None:
            await setup()

    async def _publish(self, client: Any, deltas: dict[str, int]) -> None:
        try:
            async with client.pipeline(transaction=False) as pipe:
                for name, amount in deltas.items():
                    pipe.hincrby(self._stats_key, name, amount)
                pipe.hset(self._stats_key, "updated_at", f"{time.time():.3f}")
                await pipe.execute()
        except Exception:  # best effort: the counters of one interval are lost, not a call
            logger.debug("llmemo: could not publish counters to %s", self._stats_key)

    async def _close_core(self, core: CoreCache) -> None:
        client = _client_of(core)
        try:
            if client is not None and self._stats_key:
                await self._flush(client)
            await core.aclose()
        finally:
            if client is not None:
                await client.aclose()

    async def _flush(self, client: Any) -> None:
        """Wait for this loop's publications, then publish the rest through ``client``:
        at most :data:`STATS_FLUSH_TIMEOUT` seconds in all, never raising."""
        loop = asyncio.get_running_loop()
        pending = [task for task in self._publish_tasks if task.get_loop() is loop]
        deltas = self._take_deltas(force=True)
        work = [*pending] + ([self._publish(client, deltas)] if deltas is not None else [])
        if not work:
            return
        try:
            await asyncio.wait_for(asyncio.gather(*work), STATS_FLUSH_TIMEOUT)
        except Exception:  # best effort (a timeout too): these increments are lost
            logger.debug("llmemo: could not publish counters to %s", self._stats_key)


def _client_of(core: CoreCache) -> Any:
    """The Redis client of a per-loop core's store, if it has one."""
    return getattr(getattr(core, "store", None), "client", None)


def _policy_and_clients(
    policy: FailurePolicy | None,
    errors: ErrorMode,
    redis_url: str | None,
    redis_client: Any,
    client_kwargs: dict[str, Any] | None,
    cluster: bool,
) -> tuple[FailurePolicy, RedisClientFactory]:
    """A drop-in's failure policy (``policy``, else the defaults with ``errors``) and its
    client factory, whose socket timeouts follow that policy's read and write budgets.

    Raises:
        ConfigurationError / TypeError: as :meth:`RedisClientFactory.create`.
    """
    policy = policy if policy is not None else FailurePolicy(errors=errors)
    clients = RedisClientFactory.create(
        redis_url,
        redis_client,
        client_kwargs,
        policy.operation_timeout,
        cluster=cluster,
        write_timeout=policy.write_timeout,
    )
    return policy, clients


def _publish_sync(client: Any, stats_key: str, deltas: dict[str, int]) -> None:
    try:
        with client.pipeline(transaction=False) as pipe:
            for name, amount in deltas.items():
                pipe.hincrby(stats_key, name, amount)
            pipe.hset(stats_key, "updated_at", f"{time.time():.3f}")
            pipe.execute()
    except Exception:  # best effort, as on the async path
        logger.debug("llmemo: could not publish counters to %s", stats_key)


class RedisCache(_RedisLangChainCache):
    """Exact LangChain cache on Redis strings: one ``GET`` per lookup, one ``SET PX`` per write.

    Keys are ``{prefix}:v1:x:{partition}:{prompt_id}``: the partition hashes the prefix
    and ``llm_string``, so two models never share an answer; ``clear()`` removes
    ``{prefix}:v1:x:*`` only (SCAN + UNLINK), never other keys.
    """

    def __init__(
        self,
        redis_url: str = "redis://localhost:6379",
        ttl: float | None = None,
        prefix: str = "redis",
        redis_client: Any = None,
        *,
        errors: ErrorMode = "open",
        policy: FailurePolicy | None = None,
        single_flight: bool = True,
        single_flight_timeout: float = DEFAULT_SINGLE_FLIGHT_TIMEOUT,
        cross_process_wait: float | None = None,
        publish_stats: bool = False,
        client_kwargs: dict[str, Any] | None = None,
        cluster: bool = False,
    ) -> None:
        """Create the cache; connects on first use, not here.

        Args:
            redis_url: Server URL (``redis://``, ``rediss://``, ``unix://``, with
                ``user:password@`` if needed); ignored when ``redis_client`` is given.
            ttl: Seconds an entry lives, or ``None`` for no expiry.
            prefix: Key prefix of this cache (1-64 of ``[A-Za-z0-9_.:-]``).
            redis_client: A sync ``redis.Redis`` / ``redis.RedisCluster`` or an asyncio
                ``redis.asyncio.Redis`` / ``redis.asyncio.cluster.RedisCluster``; llmemo
                copies its connection settings (and a cluster's nodes) into clients of
                its own and never uses or closes the given one.
            errors: ``"open"`` (default): a failed lookup is a miss and a failed write is
                dropped, within the policy's time budget; ``"raise"``: they raise.
            policy: The full failure policy (budgets, breaker); overrides ``errors``.
            single_flight: Concurrent misses of the same prompt wait for the first
                one's model call instead of calling the model too (in this process).
            single_flight_timeout: Most seconds such a caller waits for the first one
                (then it calls the model itself); see
                :class:`~llmemo.adapters.langchain.LangChainCache`.
            cross_process_wait: Seconds a process waits for another process that is
                already computing the same entry (a ``SET NX PX`` lease beside it), or
                ``None`` (default) for single-flight within this process only.
            publish_stats: Publish this cache's counters to ``{root}:v1:stats`` for
                ``llmemo stats`` (off by default): in the background at most every 10 s
                while it is used, and the rest on ``close()``/``aclose()``.
            client_kwargs: Extra arguments for llmemo's clients (``socket_timeout``,
                ``max_connections``, ``pool_timeout``, ...).
            cluster: ``redis_url`` names a node of a Redis Cluster (exact keys spread over
                every shard). Implied by a ``RedisCluster`` ``redis_client``.

        Raises:
            ConfigurationError: a parameter is invalid (the message names it).
            TypeError: ``redis_client`` is not a redis-py client.
        """
        config = CacheConfig(namespace=validate_namespace(prefix, parameter="prefix"), ttl=ttl)
        policy, clients = _policy_and_clients(
            policy, errors, redis_url, redis_client, client_kwargs, cluster
        )
        self.prefix = config.namespace
        self.ttl = config.ttl

        def make_core() -> CoreCache:
            from llmemo.stores.redis.keystore import RedisKeyStore

            store = RedisKeyStore(clients.make_async(), admin_timeout=policy.admin_timeout)
            return ExactCache(store, namespace=config.namespace, ttl=config.ttl)

        from llmemo.stores.redis.blocking import BlockingRedisKeyStore

        if clients.is_cluster:
            # redis-py's sync RedisCluster fetches the slot map in its constructor: make
            # it on first use, not here (no I/O in constructors).
            sync_store = BlockingRedisKeyStore(
                client_factory=clients.make_sync, cluster=True, owns_client=True
            )
        else:
            sync_store = BlockingRedisKeyStore(clients.make_sync(), owns_client=True)
        sync_core = ExactCache(sync_store, namespace=config.namespace, ttl=config.ttl)
        super().__init__(
            core_factory=make_core,
            sync_core=sync_core,
            max_in_flight=clients.max_connections,
            policy=policy,
            single_flight=single_flight,
            single_flight_timeout=single_flight_timeout,
            cross_process_wait=cross_process_wait,
        )
        self._start_publishing(config.namespace, publish_stats, clients.make_sync)


class RedisSemanticCache(_RedisLangChainCache):
    """Semantic LangChain cache on Redis: RediSearch (``FT.*``) or Redis 8 vector sets.

    A lookup tries the exact entry first (one ``HGET``/``GET``, no embedding), then
    embeds the final user turn and runs one vector query filtered to the partition of
    this cache, model configuration and conversation context; the payload comes back in
    the same round trip. A write embeds once (memoised after a miss) and writes vector,
    payload and TTL in one round trip.

    Keys live under ``{prefix}:{name}`` (or ``{prefix}`` when ``name == prefix``, the
    default): ``{root}:v1:...``, and the RediSearch index is ``{root}:v1:ix``, never
    the bare ``llmcache`` that langchain-redis and redisvl use; ``clear()`` removes only
    this cache's keys.
    """

    def __init__(
        self,
        embeddings: Embeddings | Embedder,
        redis_url: str = "redis://localhost:6379",
        distance_threshold: float = 0.2,
        ttl: float | None = None,
        name: str = "llmcache",
        prefix: str = "llmcache",
        redis_client: Any = None,
        *,
        vector_backend: VectorBackend = "auto",
        algorithm: str = "HNSW",
        dtype: str | None = None,
        ef_runtime: int | None = DEFAULT_EF_RUNTIME,
        exact_first: bool = True,
        verifier: HitVerifier | None = DEFAULT,
        candidates: int | None = None,
        errors: ErrorMode = "open",
        policy: FailurePolicy | None = None,
        single_flight: bool = True,
        single_flight_timeout: float = DEFAULT_SINGLE_FLIGHT_TIMEOUT,
        publish_stats: bool = False,
        client_kwargs: dict[str, Any] | None = None,
        cluster: bool = False,
        recreate_index_on_mismatch: bool = False,
        context: str = "exact",
    ) -> None:
        """Create the cache; connects (and probes or creates the index) on first use.

        Args:
            embeddings: Any LangChain ``Embeddings`` or llmemo ``Embedder``.
            redis_url: Server URL; ignored when ``redis_client`` is given.
            distance_threshold: Largest cosine distance in ``[0, 2]`` served as a hit.
            ttl: Seconds an entry lives, or ``None``.
            name: Cache name; two names under one prefix are two separate caches.
            prefix: Key prefix.
            redis_client: A sync or asyncio ``Redis`` or ``RedisCluster`` whose
                connection settings (and a cluster's nodes) llmemo copies (never used or
                closed by llmemo).
            vector_backend: ``"redisearch"`` (``FT.*``), ``"vectorset"`` (Redis 8
                ``VADD``/``VSIM``) or ``"auto"``: RediSearch when the server has it, else
                vector sets (probed once, on first use).
            algorithm: RediSearch index algorithm, ``"HNSW"`` or ``"FLAT"``.
            dtype: RediSearch vector type: ``"FLOAT16"``, ``"FLOAT32"`` or
                ``"FLOAT64"``; ``None`` (default): FLOAT16 for a new index, the type of
                an existing one (an index made by llmemo before FLOAT16 became the
                default stays FLOAT32). FLOAT16 halves the vectors' memory (the index and
                each entry hold one copy: measured 3.9 KB against 5.7 KB per entry at
                100k entries of 384 dimensions) for distances within about 0.0001 of
                FLOAT32's and the same hits. Vector sets ignore it (they store 8-bit
                quantized vectors).
            ef_runtime: HNSW search breadth (RediSearch ``EF_RUNTIME``, vector sets ``EF``);
                the servers' defaults (10) miss about half of near duplicates in large
                partitions (measured: 53 % recall at 50k entries), each miss a paid model
                call; 100 found 98 % at ~1.8x the query time. ``None``: server default.
            exact_first: Probe for the exact prompt (one round trip, no embedding) before
                the vector query; ``False`` makes every lookup embed and saves that round
                trip on semantic hits and misses.
            verifier: A :class:`~llmemo.verify.HitVerifier` that must accept a semantic
                candidate before it is served; by default a
                :class:`~llmemo.verify.RulesVerifier` (numbers, negation, entities and
                roles must agree); ``None`` serves the nearest, as langchain-redis does.
            candidates: Nearest entries the verifier may try (default 4 with a verifier).
            errors: ``"open"`` (default) or ``"raise"``, as for :class:`RedisCache`.
            policy: The full failure policy (budgets, breaker); overrides ``errors``.
            single_flight: Concurrent misses of the same prompt wait for the first
                one's model call instead of calling the model too (in this process).
            single_flight_timeout: Most seconds such a caller waits for the first one
                (then it calls the model itself); see
                :class:`~llmemo.adapters.langchain.LangChainCache`.
            publish_stats: Publish this cache's counters to ``{root}:v1:stats`` for
                ``llmemo stats`` (off by default): in the background at most every 10 s
                while it is used, and the rest on ``close()``/``aclose()``.
            client_kwargs: Extra arguments for llmemo's clients (``socket_timeout``,
                ``max_connections``, ``pool_timeout``, ...).
            cluster: ``redis_url`` names a node of a Redis Cluster. Each partition's
                entries share a hash slot; a RediSearch index is kept on every primary
                and each query goes to the primary owning the partition. Implied by a
                ``RedisCluster`` ``redis_client``.
            recreate_index_on_mismatch: When this cache's RediSearch index exists with
                another schema (e.g. another embedding dimension), drop it and create
                this cache's instead (documents are kept; those that do not fit are left
                out of the new index). Off by default: the mismatch is then a backend
                fault (:class:`~llmemo.errors.SchemaMismatchError`): with
                ``errors="open"`` lookups miss and writes are dropped, counted and
                logged, never raised.
            context: Context policy for chat prompts: ``"exact"`` (default: the system
                prompt and every earlier turn must match exactly) or ``"tolerant"`` (a
                final message that stands on its own is served after any plain
                conversation; system prompts and tools must still match). See
                :func:`llmemo.text.split_prompt` and docs/semantic-hits.md.

        Raises:
            ConfigurationError: a parameter is invalid (the message names it), including
                a ``name`` with ``:`` or a ``:``-segment like ``v1`` in ``name`` or
                ``prefix``.
            TypeError: ``embeddings`` or ``redis_client`` is of the wrong kind.
        """
        root = keys.semantic_root(prefix, name)
        config = SemanticConfig(
            namespace=root,
            ttl=ttl,
            distance_threshold=distance_threshold,
        )
        if vector_backend not in _BACKENDS:
            raise ConfigurationError(
                f"vector_backend must be one of {', '.join(map(repr, _BACKENDS))}; "
                f"got {vector_backend!r}"
            )
        algorithm = validate_choice(algorithm, REDISEARCH_ALGORITHMS, parameter="algorithm")
        if dtype is not None:
            dtype = validate_choice(dtype, REDISEARCH_VECTOR_TYPES, parameter="dtype")
        embedder = to_embedder(embeddings)
        validate_optional_positive_int(candidates, parameter="candidates")
        if context not in CONTEXT_POLICIES:
            raise ConfigurationError(
                f"context must be one of {', '.join(map(repr, CONTEXT_POLICIES))}; got {context!r}"
            )
        verifier = resolve_verifier(verifier)
        policy, clients = _policy_and_clients(
            policy, errors, redis_url, redis_client, client_kwargs, cluster
        )
        self.name = name
        self.prefix = prefix
        self.ttl = config.ttl
        self.distance_threshold = config.distance_threshold
        validate_optional_positive_int(ef_runtime, parameter="ef_runtime")
        if not isinstance(recreate_index_on_mismatch, bool):
            raise ConfigurationError(
                f"recreate_index_on_mismatch must be a bool; got {recreate_index_on_mismatch!r}"
            )
        chooser = self._backend_choice = _BackendChoice(
            vector_backend,
            root,
            algorithm,
            dtype,
            ef_runtime,
            recreate=recreate_index_on_mismatch,
            admin_timeout=policy.admin_timeout,
        )

        def make_core() -> CoreCache:
            store = chooser.store(clients.make_async())
            return SemanticCache(
                store,
                embedder,
                namespace=config.namespace,
                distance_threshold=config.distance_threshold,
                ttl=config.ttl,
                exact_first=exact_first,
                verifier=verifier,
                candidates=candidates,
                context=context,
            )

        super().__init__(
            core_factory=make_core,
            max_in_flight=clients.max_connections,
            policy=policy,
            single_flight=single_flight,
            single_flight_timeout=single_flight_timeout,
        )
        self._start_publishing(root, publish_stats, clients.make_sync)

    @property
    def vector_backend(self) -> str:
        """The backend in use: ``"redisearch"`` or ``"vectorset"`` (``"auto"`` until the
        first use has probed the server)."""
        return self._backend_choice.backend


class _BackendChoice:
    """Builds vector stores for one cache; resolves ``"auto"`` once, by probing."""

    def __init__(
        self,
        backend: str,
        root: str,
        algorithm: str,
        dtype: str | None,
        ef_runtime: int | None,
        *,
        recreate: bool = False,
        admin_timeout: float | None = None,
    ) -> None:
        self.admin_timeout = admin_timeout
        self.backend = backend
        self.root = root
        self.algorithm = algorithm
        self.dtype = dtype
        self.ef_runtime = ef_runtime
        self.recreate = recreate

    def build(self, client: AsyncRedis | AsyncRedisCluster, backend: str) -> VectorStore:
        if backend == "redisearch":
            from llmemo.stores.redis.search import RedisSearchVectorStore

            ef = self.ef_runtime if self.algorithm == "HNSW" else None
            return RedisSearchVectorStore(
                client,
                self.root,
                algorithm=self.algorithm,
                dtype=self.dtype,
                ef_runtime=ef,
                recreate_index_on_mismatch=self.recreate,
                admin_timeout=self.admin_timeout,
            )
        from llmemo.stores.redis.vectorset import RedisVectorSetStore

        return RedisVectorSetStore(
            client, self.root, ef_runtime=self.ef_runtime, admin_timeout=self.admin_timeout
        )

    def store(self, client: AsyncRedis | AsyncRedisCluster) -> VectorStore:
        if self.backend != "auto":
            return self.build(client, self.backend)
        return _ProbingVectorStore(client, self)


class _ProbingVectorStore:
    """Probes the server on first use, then delegates to the chosen store."""

    def __init__(self, client: AsyncRedis | AsyncRedisCluster, choice: _BackendChoice) -> None:
        self.client = client
        self._choice = choice
        self._store: VectorStore | None = None

    async def _resolve(self) -> VectorStore:
        if self._store is None:
            if self._choice.backend == "auto":
                from llmemo.stores.redis.probe import detect_vector_backend

                self._choice.backend = await detect_vector_backend(await self._probe_target())
            self._store = self._choice.build(self.client, self._choice.backend)
        return self._store

    async def _probe_target(self) -> Any:
        """What the probe talks to: the client, or on a cluster one primary.

        The probe's ``FT._LIST`` names no key, which a cluster client cannot route, so on
        a cluster both probe commands go to the primary owning the probe's ``VCARD`` key
        (a node speaks ``execute_command`` like a client; every node runs the same build).
        """
        from redis.asyncio.cluster import RedisCluster

        if not isinstance(self.client, RedisCluster):
            return self.client
        from llmemo.stores.redis._errors import map_redis_errors

        with map_redis_errors("probe"):
            await self.client.initialize()
            return self.client.get_node_from_key(_PROBE_KEY)

    def node_of_partition(self, partition: str) -> str | None:
        node_of = getattr(self._store, "node_of_partition", None)
        return None if node_of is None else node_of(partition)

    async def add(self, *args: Any, **kwargs: Any) -> None:
        await (await self._resolve()).add(*args, **kwargs)

    async def get(self, partition: str, entry_id: str) -> bytes | None:
        return await (await self._resolve()).get(partition, entry_id)

    async def search(self, *args: Any, **kwargs: Any) -> Any:
        return await (await self._resolve()).search(*args, **kwargs)

    async def delete(self, partition: str, entry_id: str) -> bool:
        return await (await self._resolve()).delete(partition, entry_id)

    async def prepare(self, dimension: int | None = None) -> None:
        store = await self._resolve()
        prepare = getattr(store, "prepare", None)
        if prepare is not None:
            await prepare(dimension)

    async def clear(self, *, progress: Any = None) -> int:
        store = await self._resolve()
        if progress is None:
            return await store.clear()
        return await store.clear(progress=progress)  # type: ignore[call-arg]

    async def aclose(self) -> None:
        if self._store is not None:
            await self._store.aclose()
