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
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmemo.errors import ConfigurationError

if TYPE_CHECKING:
    import redis
    from redis.asyncio import Redis as AsyncRedis

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
class RedisClientFactory:
    """Makes llmemo's own Redis clients from a URL or from a given client's settings.

    Construction parses and validates (no I/O); :meth:`make_async` and :meth:`make_sync`
    build clients that connect lazily.
    """

    url: str | None
    settings: _Settings | None
    pool: dict[str, Any]
    extra: dict[str, Any]

    @classmethod
    def create(
        cls,
        redis_url: str | None,
        redis_client: Any = None,
        client_kwargs: dict[str, Any] | None = None,
        operation_timeout: float | None = None,
    ) -> RedisClientFactory:
        """Validate what the user gave.

        Connection settings: ``socket_timeout`` and ``socket_connect_timeout`` default to
        ``operation_timeout`` (the fail-open budget; 5 s without one), so a dead or
        black-holed server is detected within the budget on every path, and failed
        commands are retried once at once (no backoff: after a server restart the retry
        reconnects). ``client_kwargs`` override all of these.

        Args:
            redis_url: ``redis://``, ``rediss://`` or ``unix://`` URL, used when
                ``redis_client`` is ``None``.
            redis_client: A sync ``redis.Redis`` or a ``redis.asyncio.Redis`` whose
                connection settings are copied (it is not used or closed by llmemo).
            client_kwargs: Extra keyword arguments for llmemo's clients (e.g.
                ``socket_timeout``, ``max_connections``, and ``pool_timeout`` for the wait
                for a free connection); ``decode_responses`` is always ``False``.
            operation_timeout: The cache's per-operation budget in seconds, or ``None``.

        Raises:
            ConfigurationError: no usable URL or client, a cluster client (not supported
                here yet), ``decode_responses=True``, or an unknown connection class.
            TypeError: ``redis_client`` is not a redis-py client.
        """
        import redis
        import redis.asyncio as aioredis

        extra = dict(client_kwargs or {})
        if extra.pop("decode_responses", False):
            raise ConfigurationError("decode_responses must be False: llmemo stores opaque bytes")
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
        extra = {"socket_timeout": budget, "socket_connect_timeout": budget, **extra}
        if redis_client is None:
            if not isinstance(redis_url, str) or not redis_url:
                raise ConfigurationError(f"redis_url must be a non-empty URL; got {redis_url!r}")
            try:  # parse now: a malformed URL fails here, not at the first lookup
                redis.ConnectionPool.from_url(redis_url)
            except ValueError as exc:
                raise ConfigurationError(f"redis_url is not a valid Redis URL: {exc}") from exc
            return cls(redis_url, None, pool, extra)
        if isinstance(redis_client, (redis.RedisCluster, aioredis.RedisCluster)):
            raise ConfigurationError(
                "redis_client is a RedisCluster; cluster clients are not supported by this "
                "cache yet (pass a standalone client or URL)"
            )
        if not isinstance(redis_client, (redis.Redis, aioredis.Redis)):
            raise TypeError(
                "redis_client must be a redis.Redis or redis.asyncio.Redis; "
                f"got {type(redis_client).__qualname__}"
            )
        given = redis_client.connection_pool
        name = _counterpart(given.connection_class, redis.connection).__name__
        settings = _Settings(name, {**given.connection_kwargs, **extra})
        return cls(None, settings, pool, {})

    def _kwargs_for(self, connection_class: type) -> dict[str, Any]:
        assert self.settings is not None
        accepted = _accepted_parameters(connection_class)
        return {
            key: value
            for key, value in self.settings.kwargs.items()
            if key in accepted and key not in _NOT_COPIED
        }

    def make_async(self) -> AsyncRedis:
        """A new ``redis.asyncio.Redis`` (for the calling event loop) that owns its pool
        of :attr:`max_connections` connections (callers must not exceed it)."""
        import redis.asyncio as aioredis
        from redis.asyncio import connection as aio_connection
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        size = self.max_connections
        retry = {"retry": Retry(NoBackoff(), 1)}
        if self.url is not None:
            pool = aio_connection.ConnectionPool.from_url(
                self.url, decode_responses=False, max_connections=size, **retry, **self.extra
            )
        else:
            assert self.settings is not None
            connection_class = getattr(aio_connection, self.settings.connection_class_name)
            pool = aio_connection.ConnectionPool(
                connection_class=connection_class,
                decode_responses=False,
                max_connections=size,
                **{**retry, **self._kwargs_for(connection_class), **self.extra},
            )
        return aioredis.Redis.from_pool(pool)

    @property
    def max_connections(self) -> int:
        """Connections per pool; the adapters admit this many operations at once per loop."""
        return int(self.pool["max_connections"])

    def make_sync(self) -> redis.Redis:
        """A new thread-safe sync ``redis.Redis`` that owns its pool."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        retry = {"retry": Retry(NoBackoff(), 1)}
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
