"""A key store on a *sync* redis-py client, for llmemo's sync face only.

Its methods are coroutines that never suspend: each one calls the blocking client and
returns. The sync wrappers of the LangChain adapters drive the async core over this store
without any event loop (``coroutine.send(None)`` runs it to completion), which makes a
sync exact hit one blocking ``GET`` plus llmemo's own CPU work, instead of a hop through
an event loop and the slower asyncio client.

Never use this store from code running on an event loop: every call blocks the thread.
The sync client and its pool are thread-safe, so one store serves every thread. A sync
``redis.RedisCluster`` works too (reads grouped per slot, ``clear()`` on every primary).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, cast

from llmemo.errors import ConfigurationError
from llmemo.stores.redis._common import glob_escape, node_name, ttl_to_ms
from llmemo.stores.redis._errors import map_redis_errors

if TYPE_CHECKING:
    import redis

__all__ = ["BlockingRedisKeyStore"]


class BlockingRedisKeyStore:
    """The :class:`~llmemo.stores.base.KeyStore` contract on a sync ``redis.Redis``.

    Same commands and semantics as :class:`~llmemo.stores.redis.keystore.RedisKeyStore`
    (``GET``, ``MGET``, ``SET … PX``, ``UNLINK``, ``SCAN`` + ``UNLINK``), same error
    mapping. On a ``redis.RedisCluster``, :meth:`get_many` sends one ``MGET`` per hash
    slot (not atomic across slots) and :meth:`clear` scans every primary.

    Args:
        client: A sync ``redis.Redis`` or ``redis.RedisCluster`` with
            ``decode_responses=False``; or ``None`` with ``client_factory``.
        client_factory: Makes the client on first use (once, thread-safely), for clients
            whose constructor does I/O: redis-py's sync ``RedisCluster`` fetches the
            slot map when it is built. A failure there is raised, mapped, by the
            operation that needed the client (and retried by the next one).
        cluster: The factory makes a ``redis.RedisCluster`` (known without calling it).
        owns_client: Close the client in :meth:`aclose`.
        scan_count: ``COUNT`` hint per ``SCAN`` in :meth:`clear`.
        delete_batch: Keys per ``UNLINK`` in :meth:`clear`.

    Raises:
        ConfigurationError: the client decodes responses (checked when it is made), not
            exactly one of ``client`` and ``client_factory``, or a batch size is not > 0.
    """

    __slots__ = (
        "_client",
        "_delete_batch",
        "_factory",
        "_is_cluster",
        "_lock",
        "_owns_client",
        "_scan_count",
    )

    def __init__(
        self,
        client: redis.Redis | redis.RedisCluster | None = None,
        *,
        client_factory: Callable[[], redis.Redis | redis.RedisCluster] | None = None,
        cluster: bool = False,
        owns_client: bool = False,
        scan_count: int = 1000,
        delete_batch: int = 500,
    ) -> None:
        if (client is None) == (client_factory is None):
            raise ConfigurationError("pass exactly one of client and client_factory")
        if scan_count <= 0 or delete_batch <= 0:
            raise ConfigurationError("scan_count and delete_batch must be > 0")
        import redis

        if client is not None:
            _check_encoder(client)
        self._client = client
        self._factory = client_factory
        self._lock = threading.Lock()
        self._is_cluster = cluster or isinstance(client, redis.RedisCluster)
        self._owns_client = owns_client
        self._scan_count = scan_count
        self._delete_batch = delete_batch

    def _connected(self) -> redis.Redis | redis.RedisCluster:
        client = self._client
        if client is None:
            with self._lock:
                client = self._client
                if client is None:
                    assert self._factory is not None
                    client = self._factory()
                    _check_encoder(client)
                    self._client = client
        return client

    @property
    def client(self) -> redis.Redis | redis.RedisCluster:
        """The sync redis-py client this store uses (made now if it has a factory)."""
        with map_redis_errors("connect"):
            return self._connected()

    def node_of(self, key: str) -> str | None:
        """The cluster node owning ``key`` (``None`` when standalone or not connected yet)."""
        client = self._client
        return node_name(client, key) if self._is_cluster and client is not None else None

    async def get(self, key: str) -> bytes | None:
        """One blocking ``GET``."""
        with map_redis_errors("GET"):
            return cast("bytes | None", self._connected().get(key))

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """One blocking ``MGET`` (none for an empty ``keys``); one per slot on a cluster."""
        if not keys:
            return []
        with map_redis_errors("MGET"):
            client = self._connected()
            if self._is_cluster:
                values = cast("redis.RedisCluster", client).mget_nonatomic(list(keys))
            else:
                values = client.mget(list(keys))
            return cast("list[bytes | None]", values)

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """One blocking ``SET key value [PX ms]``: value and TTL together."""
        if not isinstance(value, bytes | bytearray | memoryview):
            raise TypeError(f"value must be bytes, got {type(value).__name__}")
        px = ttl_to_ms(ttl)
        with map_redis_errors("SET"):
            self._connected().set(key, value, px=px)

    async def try_lock(self, key: str, ttl: float) -> bool:
        """One blocking ``SET key 1 NX PX ms``: whether this caller took the lock (it
        expires by itself after ``ttl`` seconds)."""
        with map_redis_errors("SET NX"):
            return bool(self._connected().set(key, b"1", nx=True, px=ttl_to_ms(ttl)))

    async def delete(self, key: str) -> bool:
        """One blocking ``UNLINK``; whether the key existed."""
        with map_redis_errors("UNLINK"):
            return self._connected().unlink(key) > 0

    async def clear(self, prefix: str) -> int:
        """Remove every key starting with ``prefix`` (literally); how many were removed.

        Raises:
            ConfigurationError: ``prefix`` is empty.
        """
        if not isinstance(prefix, str) or not prefix:
            raise ConfigurationError(
                "prefix must be a non-empty string; clear() never empties a whole database"
            )
        removed = 0
        batch: list[bytes] = []
        with map_redis_errors("clear"):
            client = self._connected()
            for key in client.scan_iter(match=glob_escape(prefix) + "*", count=self._scan_count):
                batch.append(key)
                if len(batch) >= self._delete_batch:
                    removed += client.unlink(*batch)
                    batch.clear()
            if batch:
                removed += client.unlink(*batch)
        return removed

    async def aclose(self) -> None:
        """Close the client if this store owns it (and has made it); idempotent."""
        if self._owns_client and self._client is not None:
            with map_redis_errors("close"):
                self._client.close()


def _check_encoder(client: redis.Redis | redis.RedisCluster) -> None:
    if client.get_encoder().decode_responses:
        raise ConfigurationError(
            "client must be created with decode_responses=False: values are opaque bytes"
        )
