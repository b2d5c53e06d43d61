"""Async Redis clients for the adapters, one per event loop, from what the user gave.

langchain-redis users pass a URL or a ready *sync* ``redis.Redis``; async users may pass
a ``redis.asyncio.Redis``. A ``redis.asyncio`` client is bound to the loop it first runs
on, and the adapters run on several loops (the caller's, ``asyncio.run`` after
``asyncio.run``, the sync wrapper's own), so llmemo never shares the given client across
loops: it copies the given client's connection settings (host, port or socket path, db,
credentials, TLS, timeouts, RESP version) into a fresh ``redis.asyncio`` client per loop,
and closes the clients it made. The given client itself is never used or closed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llmemo.errors import ConfigurationError

if TYPE_CHECKING:
    from redis.asyncio import Redis as AsyncRedis

__all__ = ["async_client_factory"]

# Settings that cannot cross from a sync to an async connection (driver objects of the
# sync world) or that llmemo must choose itself (stores move opaque bytes).
_NOT_COPIED = frozenset({"retry", "parser_class", "decode_responses", "encoding_errors"})


def _accepted_parameters(cls: type) -> frozenset[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            names.update(inspect.signature(init).parameters)
    names.discard("self")
    return frozenset(names)


def _async_connection_class(sync_or_async_class: type) -> type:
    from redis.asyncio import connection as aio

    by_name = {
        "Connection": aio.Connection,
        "SSLConnection": aio.SSLConnection,
        "UnixDomainSocketConnection": aio.UnixDomainSocketConnection,
    }
    for klass in sync_or_async_class.__mro__:
        if klass.__name__ in by_name:
            return by_name[klass.__name__]
    raise ConfigurationError(
        f"redis_client uses connection class {sync_or_async_class.__qualname__}, which "
        "llmemo cannot reproduce for asyncio; pass redis_url instead"
    )


def async_client_factory(
    redis_url: str | None,
    redis_client: Any = None,
    client_kwargs: dict[str, Any] | None = None,
) -> Callable[[], AsyncRedis]:
    """Return a factory of fresh ``redis.asyncio.Redis`` clients (one call per loop).

    Args:
        redis_url: ``redis://``, ``rediss://`` or ``unix://`` URL, used when
            ``redis_client`` is ``None``.
        redis_client: A sync ``redis.Redis`` or a ``redis.asyncio.Redis`` whose
            connection settings are copied (it is not used or closed by llmemo).
        client_kwargs: Extra keyword arguments for the clients made from ``redis_url``
            (e.g. ``socket_timeout``); ``decode_responses`` is always ``False``.

    Raises:
        ConfigurationError: no usable URL or client, a cluster client (not supported
            here yet), a client that decodes responses, or an unknown connection class.
        TypeError: ``redis_client`` is not a redis-py client.
    """
    import redis
    import redis.asyncio as aioredis
    from redis.asyncio.connection import ConnectionPool

    extra = dict(client_kwargs or {})
    if extra.pop("decode_responses", False):
        raise ConfigurationError("decode_responses must be False: llmemo stores opaque bytes")
    if redis_client is None:
        if not isinstance(redis_url, str) or not redis_url:
            raise ConfigurationError(f"redis_url must be a non-empty URL; got {redis_url!r}")
        url = redis_url
        # Parse now so a malformed URL fails at construction, not at the first lookup.
        try:
            ConnectionPool.from_url(url)
        except ValueError as exc:
            raise ConfigurationError(f"redis_url is not a valid Redis URL: {exc}") from exc
        return lambda: aioredis.Redis.from_url(url, decode_responses=False, **extra)

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
    pool = redis_client.connection_pool
    connection_class = _async_connection_class(pool.connection_class)
    accepted = _accepted_parameters(connection_class)
    settings = {
        key: value
        for key, value in pool.connection_kwargs.items()
        if key in accepted and key not in _NOT_COPIED
    }
    settings.update(extra)
    max_connections = getattr(pool, "max_connections", None)

    def make() -> AsyncRedis:
        new_pool = ConnectionPool(
            connection_class=connection_class,
            max_connections=max_connections,
            decode_responses=False,
            **settings,
        )
        return aioredis.Redis.from_pool(new_pool)

    return make
