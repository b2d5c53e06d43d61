"""Redis clients for the adapters, made from what the user gave (a URL or a client).

langchain-redis users pass a URL or a ready *sync* ``redis.Redis``; async users may pass
a ``redis.asyncio.Redis``. A ``redis.asyncio`` client is bound to the loop it first runs
on, and the adapters run on several loops (the caller's, ``asyncio.run`` after
``asyncio.run``), so llmemo never shares the given client: it copies the given client's
connection settings (host, port or socket path, db, credentials, TLS, timeouts, RESP
version) into clients of its own — a fresh ``redis.asyncio`` client per event loop, and
one thread-safe sync client for the sync face — and closes what it made. The given client
itself is never used or closed.

Pool sizes: redis-py's default pools raise "Too many connections" past their size instead
of waiting, which would turn a burst of concurrent lookups into errors. The sync client
uses a *blocking* pool (a thread waits up to ``pool_timeout`` seconds for a connection).
The asyncio clients use plain pools of ``max_connections`` (default
:data:`DEFAULT_MAX_CONNECTIONS`), and the adapters admit at most that many operations at
once per loop (a semaphore, ~1 µs), because redis-py's asyncio blocking pool costs tens of
microseconds on every command (measured: a GET 1.4x slower).

Redis Cluster: given a ``redis.cluster.RedisCluster`` or ``redis.asyncio.cluster.RedisCluster``
(or ``cluster=True`` with a URL), llmemo makes cluster clients of its own the same way: the
given client's known nodes become the startup nodes, and its credentials, TLS settings, RESP
version and ``address_remap`` are copied. The asyncio cluster client has one pool *per node*
and raises ``MaxConnectionsError`` past its size instead of waiting; an admitted operation
holds at most one connection per node at a time, so a per-node pool of ``max_connections``
plus a little headroom (topology refreshes) never runs out under the adapters' admission
limit. The sync cluster client gets blocking per-node pools. llmemo's cluster clients read
from primaries only and do not require full slot coverage, so the shards that are up keep
serving while a failed primary's slots are being taken over.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmemo.errors import ConfigurationError

if TYPE_CHECKING:
    import redis
    from redis.asyncio import Redis as AsyncRedis
    from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

__all__ = ["DEFAULT_MAX_CONNECTIONS", "DEFAULT_POOL_TIMEOUT", "RedisClientFactory"]

#: Connections per pool (one pool per event loop, one for the sync face).
DEFAULT_MAX_CONNECTIONS = 64
#: Seconds a caller waits for a free pooled connection before a connection error.
DEFAULT_POOL_TIMEOUT = 5.0
#: Socket timeouts when the cache has no per-operation budget.
DEFAULT_SOCKET_TIMEOUT = 5.0

# Settings that cannot cross between sync and async connections (driver objects of one
# world) or that llmemo must choose itself (stores move opaque bytes).
_NOT_COPIED = frozenset({"retry", "parser_class", "decode_responses", "encoding_errors"})
_CONNECTION_CLASSES = ("UnixDomainSocketConnection", "SSLConnection", "Connection")
#: Connections per node beyond ``max_connections`` in llmemo's asyncio cluster pools, for
#: the topology refreshes (``CLUSTER SLOTS``, ``COMMAND``) that run beside admitted work.
CLUSTER_POOL_HEADROOM = 4
# Per-connection settings a cluster client's nodes share that llmemo copies into its own
# cluster clients (plus every ``ssl_*`` option); timeouts come from the cache's budget.
_CLUSTER_COPIED = frozenset(
    {"username", "password", "credential_provider", "client_name", "protocol", "ssl"}
)


def _accepted_parameters(cls: type) -> frozenset[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            names.update(inspect.signature(init).parameters)
    names.discard("self")
    return frozenset(names)


def _counterpart(connection_class: type, module: Any) -> type:
    """The class of ``module`` (sync or asyncio connections) matching ``connection_class``."""
    for klass in connection_class.__mro__:
        if klass.__name__ in _CONNECTION_CLASSES:
            return getattr(module, klass.__name__)  # type: ignore[no-any-return]
    raise ConfigurationError(
        f"redis_client uses connection class {connection_class.__qualname__}, which llmemo "
        "cannot reproduce; pass redis_url instead"
    )


@dataclass(frozen=True)
class _Settings:
    connection_class_name: str
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class _ClusterSettings:
    """How to reach a cluster: startup nodes and shared connection settings."""

    startup_nodes: tuple[tuple[str, int], ...]
    kwargs: dict[str, Any]


def _cluster_settings(client: Any) -> _ClusterSettings:
    """Startup nodes and copyable settings of a sync or asyncio ``RedisCluster``."""
    manager = client.nodes_manager
    seen: dict[tuple[str, int], None] = {}
    # Every node the given client knows (if it has connected), then its startup nodes.
    for node in [*client.get_nodes(), *manager.startup_nodes.values()]:
        seen.setdefault((str(node.host), int(node.port)), None)
    given = client.get_connection_kwargs()
    kwargs = {
        key: value
        for key, value in given.items()
        if (key in _CLUSTER_COPIED or key.startswith("ssl_")) and value is not None
    }
    connection_class = given.get("connection_class")
    if getattr(connection_class, "__name__", "") == "SSLConnection":
        kwargs["ssl"] = True
    if getattr(manager, "address_remap", None) is not None:
        kwargs["address_remap"] = manager.address_remap
    return _ClusterSettings(tuple(seen), kwargs)


def _is_cluster_client(client: Any) -> bool:
    import redis
    import redis.asyncio as aioredis

    return isinstance(client, (redis.RedisCluster, aioredis.RedisCluster))


@functools.cache
def loop_pool_class() -> type[Any]:
    """The connection pool of llmemo's own ``redis.asyncio`` clients (one client per event
    loop, used by one cache only).

    redis-py's pool takes an ``asyncio.Lock``, records observability counters and probes
    the socket for unread data (``can_read``) on every checkout: about 15 us per command,
    more than llmemo's own work on a cache hit. Within one event loop, with connections
    that llmemo always reads to the end (redis-py disconnects a connection interrupted
    mid-reply before it comes back), none of that is needed: a checkout pops an idle
    connection and a release pushes it back. A connection the server closed meanwhile
    fails its next command, which the clients' retry (one immediate reconnect) absorbs.
    New connections, and anything else, go through redis-py's own code. Falls back to
    redis-py's pool if its internals are not the ones this relies on.
    """
    from redis.asyncio.connection import ConnectionPool

    probe = ConnectionPool()
    if not (
        isinstance(getattr(probe, "_available_connections", None), list)
        and isinstance(getattr(probe, "_in_use_connections", None), set)
    ):
        return ConnectionPool  # pragma: no cover - another redis-py layout

    class LoopConnectionPool(ConnectionPool):
        async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
            try:
                connection = self._available_connections.pop()
            except IndexError:
                return await super().get_connection()  # type: ignore[no-untyped-call]
            self._in_use_connections.add(connection)
            if not connection.is_connected:
                try:
                    await connection.connect()  # type: ignore[no-untyped-call]
                except BaseException:
                    await self.release(connection)
                    raise
            return connection

        async def release(self, connection: Any) -> None:
            self._in_use_connections.remove(connection)
            if connection.should_reconnect():
                await connection.disconnect()
            self._available_connections.append(connection)

    return LoopConnectionPool


_SINGLE_CONNECTION_REFUSED = (
    "{where} cannot set single_connection_client: llmemo's clients keep a pool of "
    "connections (one per event loop, max_connections in client_kwargs)"
)


def _check_url_options(url: str, connection_class: type) -> None:
    """Refuse, at construction, the query parameters of a URL that would make every
    call fail later: ``decode_responses`` (llmemo reads bytes; redis-py lets the URL's
    value, even ``false`` as a string, override llmemo's), ``single_connection_client``
    (a client option, not a connection's), and any name the connections do not take.

    Raises:
        ConfigurationError: naming the parameter.
    """
    from urllib.parse import parse_qs, urlsplit

    import redis.asyncio.connection as aio_connection

    options = set(parse_qs(urlsplit(url).query, keep_blank_values=True))
    if "decode_responses" in options:
        raise ConfigurationError(
            "redis_url may not set decode_responses: llmemo's clients always read bytes "
            "(stored entries are opaque bytes)"
        )
    if "single_connection_client" in options:
        raise ConfigurationError(_SINGLE_CONNECTION_REFUSED.format(where="redis_url"))
    accepted = _accepted_parameters(connection_class) & _accepted_parameters(
        _counterpart(connection_class, aio_connection)
    )
    # Pool-level options redis-py's URL parser knows (max_connections, timeout) are
    # consumed by the pool, not the connections.
    unknown = sorted(options - accepted - {"max_connections", "timeout", "db"})
    if unknown:
        raise ConfigurationError(
            f"redis_url has query parameter(s) {', '.join(unknown)} that Redis "
            "connections do not accept"
        )


@dataclass(frozen=True)
class RedisClientFactory:
    """Makes llmemo's own Redis clients from a URL or from a given client's settings.

    Construction parses and validates (no I/O); :meth:`make_async` and :meth:`make_sync`
    build clients that connect lazily.
    """

    url: str | None
    settings: _Settings | None
    pool: dict[str, Any]
    extra: dict[str, Any]
    #: Set when llmemo's clients are cluster clients (``url`` or these settings).
    cluster: _ClusterSettings | None = None
    is_cluster: bool = False
    #: Socket timeouts of the asyncio clients (not set by the user in client_kwargs):
    #: the longest of the read and write budgets, which the caches' guards enforce
    #: per call on the event loop.
    async_timeouts: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        redis_url: str | None,
        redis_client: Any = None,
        client_kwargs: dict[str, Any] | None = None,
        operation_timeout: float | None = None,
        *,
        cluster: bool = False,
        write_timeout: float | None = None,
    ) -> RedisClientFactory:
        """Validate what the user gave.

        Connection settings: ``socket_timeout`` and ``socket_connect_timeout`` default to
        ``operation_timeout`` (the read budget; 5 s without one) on the sync clients,
        whose calls no event loop can time, and to the longer of ``operation_timeout``
        and ``write_timeout`` on the asyncio clients, whose calls the caches' guards
        time per call (a read within the read budget, a write within the write
        budget); so a dead or black-holed server is detected within the budget on every
        path. Failed commands are retried once at once (no backoff: after a server
        restart the retry reconnects). ``client_kwargs`` override all of these.
        Administrative commands (``clear()``, index creation) read their replies with
        the stores' ``admin_timeout`` instead.

        Args:
            redis_url: ``redis://``, ``rediss://`` or ``unix://`` URL, used when
                ``redis_client`` is ``None`` (with ``cluster``: one startup node, TCP only).
            redis_client: A sync ``redis.Redis`` / ``redis.RedisCluster`` or an asyncio
                ``redis.asyncio.Redis`` / ``redis.asyncio.cluster.RedisCluster`` whose
                connection settings (and, for a cluster, known nodes) are copied; it is
                not used or closed by llmemo. A cluster client makes llmemo's clients
                cluster clients, whatever ``cluster`` says.
            client_kwargs: Extra keyword arguments for llmemo's clients (e.g.
                ``socket_timeout``, ``max_connections`` (per node on a cluster), and
                ``pool_timeout`` for the wait for a free connection);
                ``decode_responses`` is always ``False``.
            operation_timeout: The cache's read budget in seconds, or ``None``.
            cluster: ``redis_url`` names a node of a Redis Cluster.
            write_timeout: The cache's write budget in seconds, or ``None``.

        Raises:
            ConfigurationError: no usable URL or client, ``decode_responses=True`` (in
                ``client_kwargs`` or the URL's query), ``single_connection_client`` or
                another query parameter the connections would not accept (each would
                fail every call), an unknown connection class, or a ``unix://`` URL with
                ``cluster``. The message names the parameter.
            TypeError: ``redis_client`` is not a redis-py client.
        """
        import redis
        import redis.asyncio as aioredis

        extra = dict(client_kwargs or {})
        if extra.pop("decode_responses", False):
            raise ConfigurationError("decode_responses must be False: llmemo stores opaque bytes")
        if "single_connection_client" in extra:
            raise ConfigurationError(_SINGLE_CONNECTION_REFUSED.format(where="client_kwargs"))
        if "retry" in extra:
            raise ConfigurationError(
                "client_kwargs cannot set retry: llmemo's sync and asyncio clients each retry "
                "a failed command once, without backoff, within the cache's time budget"
            )
        pool = {
            "max_connections": extra.pop("max_connections", DEFAULT_MAX_CONNECTIONS),
            "timeout": extra.pop("pool_timeout", DEFAULT_POOL_TIMEOUT),
        }
        budget = DEFAULT_SOCKET_TIMEOUT if operation_timeout is None else operation_timeout
        longest = max(budget, DEFAULT_SOCKET_TIMEOUT if write_timeout is None else write_timeout)
        timeouts = ("socket_timeout", "socket_connect_timeout")
        async_timeouts = {name: longest for name in timeouts if name not in extra}
        extra = {"socket_timeout": budget, "socket_connect_timeout": budget, **extra}
        if not isinstance(cluster, bool):
            raise ConfigurationError(f"cluster must be a bool; got {cluster!r}")
        if redis_client is None:
            if not isinstance(redis_url, str) or not redis_url:
                raise ConfigurationError(f"redis_url must be a non-empty URL; got {redis_url!r}")
            try:  # parse now: a malformed URL fails here, not at the first lookup
                parsed = redis.ConnectionPool.from_url(redis_url)
            except ValueError as exc:
                raise ConfigurationError(f"redis_url is not a valid Redis URL: {exc}") from exc
            _check_url_options(redis_url, parsed.connection_class)
            if cluster and not redis_url.startswith(("redis://", "rediss://")):
                raise ConfigurationError(
                    "a Redis Cluster is reached over TCP: redis_url must be redis:// or "
                    f"rediss:// with cluster=True; got {redis_url.split(':', 1)[0]}://"
                )
            return cls(
                redis_url, None, pool, extra, is_cluster=cluster, async_timeouts=async_timeouts
            )
        if _is_cluster_client(redis_client):
            nodes = _cluster_settings(redis_client)
            if not nodes.startup_nodes:
                raise ConfigurationError("redis_client is a RedisCluster that names no node")
            return cls(
                None,
                None,
                pool,
                extra,
                cluster=nodes,
                is_cluster=True,
                async_timeouts=async_timeouts,
            )
        if not isinstance(redis_client, (redis.Redis, aioredis.Redis)):
            raise TypeError(
                "redis_client must be a redis.Redis, redis.RedisCluster, redis.asyncio.Redis "
                f"or redis.asyncio.cluster.RedisCluster; got {type(redis_client).__qualname__}"
            )
        if cluster:
            raise ConfigurationError(
                "cluster=True, but redis_client is a standalone client; pass a RedisCluster"
            )
        given = redis_client.connection_pool
        name = _counterpart(given.connection_class, redis.connection).__name__
        settings = _Settings(name, {**given.connection_kwargs, **extra})
        return cls(None, settings, pool, {}, async_timeouts=async_timeouts)

    def _kwargs_for(self, connection_class: type) -> dict[str, Any]:
        assert self.settings is not None
        accepted = _accepted_parameters(connection_class)
        return {
            key: value
            for key, value in self.settings.kwargs.items()
            if key in accepted and key not in _NOT_COPIED
        }

    def make_async(self) -> AsyncRedis | AsyncRedisCluster:
        """A new ``redis.asyncio.Redis`` (for the calling event loop) that owns its pool
        of :attr:`max_connections` connections (callers must not exceed it); on a cluster
        a ``redis.asyncio.cluster.RedisCluster`` with such a pool per node."""
        import redis.asyncio as aioredis
        from redis.asyncio import connection as aio_connection
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError

        size = self.max_connections
        # One immediate retry on connection errors (a server restart drops pooled
        # connections); never on timeouts, which already spent the budget.
        retry = {"retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))}
        if self.is_cluster:
            return self._make_async_cluster()
        pool_class = loop_pool_class()
        if self.url is not None:
            pool = pool_class.from_url(
                self.url,
                decode_responses=False,
                max_connections=size,
                **retry,
                **{**self.extra, **self.async_timeouts},
            )
        else:
            assert self.settings is not None
            connection_class = getattr(aio_connection, self.settings.connection_class_name)
            pool = pool_class(
                connection_class=connection_class,
                decode_responses=False,
                max_connections=size,
                **{
                    **retry,
                    **self._kwargs_for(connection_class),
                    **self.extra,
                    **self.async_timeouts,
                },
            )
        return aioredis.Redis.from_pool(pool)

    def _cluster_kwargs(self, accepted: frozenset[str]) -> dict[str, Any]:
        copied = {} if self.cluster is None else self.cluster.kwargs
        kwargs = {key: value for key, value in copied.items() if key in accepted}
        # require_full_coverage=False: a client that finds a slot uncovered (a failed
        # primary not replaced yet) keeps serving the other slots instead of refusing
        # to start; reads stay on primaries (replicas may lag, and the vector-set
        # search script writes).
        return {"require_full_coverage": False, **kwargs, **self.extra}

    def _make_async_cluster(self) -> AsyncRedisCluster:
        from redis.asyncio.cluster import ClusterNode, RedisCluster
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        common: dict[str, Any] = {
            "decode_responses": False,
            "max_connections": self.max_connections + CLUSTER_POOL_HEADROOM,
            # The cluster client retries once after refreshing its view of the topology
            # (it never sleeps between attempts); node connections do not retry.
            "retry": Retry(NoBackoff(), 1),
            **self._cluster_kwargs(_accepted_parameters(RedisCluster)),
            **self.async_timeouts,
        }
        if self.url is not None:
            return RedisCluster.from_url(self.url, **common)
        assert self.cluster is not None
        nodes = [ClusterNode(host, port) for host, port in self.cluster.startup_nodes]
        return RedisCluster(startup_nodes=nodes, **common)

    def _make_sync_cluster(self) -> redis.RedisCluster:
        import redis
        from redis.backoff import NoBackoff
        from redis.cluster import REDIS_ALLOWED_KEYS, ClusterNode
        from redis.retry import Retry

        accepted = _accepted_parameters(redis.RedisCluster) | frozenset(REDIS_ALLOWED_KEYS)
        common: dict[str, Any] = {
            "decode_responses": False,
            # Blocking per-node pools: a thread waits up to pool_timeout for a connection.
            "connection_pool_class": redis.BlockingConnectionPool,
            **self.pool,
            "retry": Retry(NoBackoff(), 1),
            **self._cluster_kwargs(accepted),
        }
        if self.url is not None:
            return redis.RedisCluster.from_url(self.url, **common)
        assert self.cluster is not None
        # redis-py builds nodes with connection_pool_class only on its URL path, so the
        # first startup node goes in as a URL (its scheme carries TLS), the rest as nodes.
        (host, port), *others = self.cluster.startup_nodes
        scheme = "rediss" if common.pop("ssl", False) else "redis"
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        nodes = [ClusterNode(h, p) for h, p in others]  # type: ignore[no-untyped-call]
        return redis.RedisCluster(url=f"{scheme}://{netloc}", startup_nodes=nodes, **common)

    @property
    def max_connections(self) -> int:
        """Connections per pool; the adapters admit this many operations at once per loop."""
        return int(self.pool["max_connections"])

    def make_sync(self) -> redis.Redis | redis.RedisCluster:
        """A new thread-safe sync ``redis.Redis`` that owns its pool (on a cluster, a
        ``redis.RedisCluster`` with a blocking pool per node)."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        if self.is_cluster:
            return self._make_sync_cluster()
        # As for the asyncio clients: retry connection errors once, never timeouts.
        retry = {"retry": Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))}
        if self.url is not None:
            pool = redis.BlockingConnectionPool.from_url(
                self.url, decode_responses=False, **self.pool, **{**retry, **self.extra}
            )
        else:
            assert self.settings is not None
            connection_class = getattr(redis.connection, self.settings.connection_class_name)
            pool = redis.BlockingConnectionPool(  # type: ignore[no-untyped-call]
                connection_class=connection_class,
                decode_responses=False,
                **self.pool,
                **{**retry, **self._kwargs_for(connection_class), **self.extra},
            )
        return redis.Redis.from_pool(pool)
