"""A :class:`~llmemo.stores.base.KeyStore` on plain Redis string keys (``redis.asyncio``).

Works with a standalone ``redis.asyncio.Redis`` and with ``redis.asyncio.cluster.RedisCluster``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from llmemo.errors import ConfigurationError
from llmemo.stores.redis._autopipeline import pipelining_runner
from llmemo.stores.redis._common import (
    check_client,
    client_from_url,
    glob_escape,
    node_name,
    ttl_to_ms,
    unlink_matching,
    validate_admin_timeout,
)
from llmemo.stores.redis._errors import map_redis_errors

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["RedisKeyStore"]


class RedisKeyStore:
    """Key → bytes store on Redis strings, with per-key TTL.

    Each operation is one command (one round trip) on a standalone server: ``GET``,
    ``MGET``, ``SET key value PX ms`` (value and TTL written atomically), ``UNLINK``.
    Concurrent :meth:`get` calls on one event loop share round trips: a ``GET`` issued
    while another is in flight is pipelined with the others issued in the same turn of
    the loop (one write, one connection; see
    :class:`~llmemo.stores.redis._autopipeline.AutoPipeline`); a lone ``GET`` is sent at
    once.
    :meth:`clear` scans with ``SCAN MATCH`` and deletes in batches with ``UNLINK``.

    On a cluster client, :meth:`get_many` issues one ``MGET`` per hash slot, pipelined
    (one round trip per node, not atomic across slots), and :meth:`clear` scans every
    primary.

    Errors: driver errors are raised as :class:`~llmemo.errors.BackendUnavailableError`,
    :class:`~llmemo.errors.BackendTimeoutError` or :class:`~llmemo.errors.BackendError`
    (see :mod:`llmemo.stores.redis._errors`), ``from`` the redis-py exception. A key that
    holds another Redis type (a hash, a list, ...) makes :meth:`get` raise
    :class:`~llmemo.errors.BackendError` (``WRONGTYPE``); the cache layer counts that as a
    miss. :meth:`get_many` follows ``MGET`` and returns ``None`` for such keys.

    Loop affinity: a ``redis.asyncio`` client and its pool belong to the event loop that
    first used them. Use a store (and its client) on one loop only; build one per loop.

    Timeouts are the client's: set ``socket_timeout`` / ``socket_connect_timeout`` on it
    (or pass them to :meth:`from_url`) to bound how long an operation may take.

    Args:
        client: A ready ``redis.asyncio.Redis`` or ``redis.asyncio.cluster.RedisCluster``
            created with ``decode_responses=False`` (the default). The store does not
            close a client it was given; the caller does. No I/O happens here.
        scan_count: ``COUNT`` hint for each ``SCAN`` call in :meth:`clear` (> 0).
        delete_batch: Keys per ``UNLINK`` in :meth:`clear` (> 0).
        admin_timeout: Seconds each command of :meth:`clear` may take (its replies are
            read with this timeout instead of the client's ``socket_timeout``, which
            caches set to their short budget); ``None``: the socket timeout.

    Raises:
        ConfigurationError: ``client`` decodes responses (values are opaque bytes and a
            decoding client would turn them into ``str`` or fail on non-UTF-8 payloads),
            is not a ``redis.asyncio`` client, or a batch size is not positive.
    """

    __slots__ = (
        "_admin",
        "_client",
        "_delete_batch",
        "_get",
        "_is_cluster",
        "_owns_client",
        "_pipeline",
        "_scan_count",
    )

    def __init__(
        self,
        client: Redis | RedisCluster,
        *,
        scan_count: int = 1000,
        delete_batch: int = 500,
        admin_timeout: float | None = None,
    ) -> None:
        check_client(client, type(self).__name__)
        if scan_count <= 0:
            raise ConfigurationError(f"scan_count must be > 0, got {scan_count!r}")
        if delete_batch <= 0:
            raise ConfigurationError(f"delete_batch must be > 0, got {delete_batch!r}")
        self._client = client
        self._get, self._pipeline = pipelining_runner(client)
        self._is_cluster = isinstance(client, RedisCluster)
        self._scan_count = scan_count
        self._delete_batch = delete_batch
        self._admin = validate_admin_timeout(admin_timeout)
        self._owns_client = False

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        cluster: bool = False,
        scan_count: int = 1000,
        delete_batch: int = 500,
        **client_kwargs: Any,
    ) -> Self:
        """Build a store with its own client from a URL; no I/O until the first operation.

        Args:
            url: ``redis://[user:password@]host:port/db``, ``rediss://...`` (TLS) or
                ``unix:///path/to/socket?db=0``.
            cluster: Build a ``RedisCluster`` client (the URL names one startup node).
            scan_count: See the class.
            delete_batch: See the class.
            **client_kwargs: Passed to ``from_url`` of the redis-py client (e.g.
                ``socket_timeout``, ``max_connections``). ``decode_responses=True`` is
                rejected.

        Returns:
            A store that owns its client: :meth:`aclose` closes it.

        Raises:
            ConfigurationError: ``decode_responses=True`` was passed, or a batch size is
                not positive.
        """
        client = client_from_url(url, cluster=cluster, **client_kwargs)
        store = cls(client, scan_count=scan_count, delete_batch=delete_batch)
        store._owns_client = True
        return store

    @property
    def client(self) -> Redis | RedisCluster:
        """The redis-py client this store uses."""
        return self._client

    def node_of(self, key: str) -> str | None:
        """The cluster node owning ``key`` (per the slot map; ``None`` when standalone):
        caches keep one circuit breaker per node, so a dead shard opens only its own."""
        return node_name(self._client, key) if self._is_cluster else None

    async def get(self, key: str) -> bytes | None:
        """Return the value of ``key`` (one ``GET``), or ``None`` if absent or expired.

        While another ``get`` of this store is in flight on the loop, the ``GET`` is
        pipelined with the others issued in the same turn of the loop (see the class).

        Raises:
            BackendError: The key holds a non-string Redis type, or the server failed.
        """
        with map_redis_errors("GET"):
            value = await self._get("GET", key)
        # redis-py types replies as bytes | str; this client never decodes (checked in
        # __init__), so they are bytes.
        return cast("bytes | None", value)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Return one value or ``None`` per key, in the order given.

        One ``MGET`` on a standalone server; on a cluster, one ``MGET`` per slot, pipelined.
        No command is sent for an empty ``keys``. Keys holding a non-string type read as
        ``None`` (``MGET`` semantics).
        """
        if not keys:
            return []
        with map_redis_errors("MGET"):
            if isinstance(self._client, RedisCluster):
                values = await self._client.mget_nonatomic(list(keys))
            else:
                values = await self._client.mget(list(keys))
        return cast("list[bytes | None]", values)

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """Store ``value`` under ``key`` with one ``SET`` (``SET key value PX ms`` with a TTL).

        Replaces any previous value, type and TTL of ``key``; value and TTL are written by
        one command, so no reader sees the value without its expiry.

        Args:
            key: The key.
            value: The payload (``bytes``, ``bytearray`` or ``memoryview``).
            ttl: Seconds (> 0, finite), rounded to whole milliseconds with a 1 ms minimum;
                or ``None`` for no expiry.

        Raises:
            ConfigurationError: ``ttl`` is not ``None`` or a finite number > 0.
            TypeError: ``value`` is not bytes-like.
        """
        if not isinstance(value, bytes | bytearray | memoryview):
            raise TypeError(f"value must be bytes, got {type(value).__name__}")
        px = ttl_to_ms(ttl)
        with map_redis_errors("SET"):
            await self._client.set(key, value, px=px)

    async def try_lock(self, key: str, ttl: float) -> bool:
        """One ``SET key 1 NX PX ms``: whether this caller took the lock. The lock is
        never released explicitly; it expires after ``ttl`` seconds.

        Raises:
            ConfigurationError: bad ``ttl``.
        """
        with map_redis_errors("SET NX"):
            return bool(await self._client.set(key, b"1", nx=True, px=ttl_to_ms(ttl)))

    async def delete(self, key: str) -> bool:
        """Remove ``key`` with ``UNLINK`` (memory freed in the background).

        Returns:
            Whether the key existed.
        """
        with map_redis_errors("UNLINK"):
            removed: int = await self._client.unlink(key)
        return removed > 0

    async def prepare(self) -> None:
        """Connect now (one ``PING``; on a cluster, fetch the slot map), so that the first
        cache call does not spend its budget on it. Optional; idempotent.

        Raises:
            BackendError: the server is unreachable or failed.
        """
        with map_redis_errors("PING"):
            if self._is_cluster:
                await self._client.initialize()
            else:
                await self._client.execute_command("PING")

    async def clear(self, prefix: str, *, progress: Callable[[int], object] | None = None) -> int:
        """Remove every key starting with ``prefix`` (literally) and nothing else.

        Scans with ``SCAN MATCH <escaped prefix>*`` (glob characters in ``prefix`` match
        themselves) and deletes in ``UNLINK`` batches; on a cluster, every primary is
        scanned. Not atomic: keys written while it runs may survive, and ``SCAN`` may
        report a key twice (it is counted once).

        Args:
            prefix: A non-empty key prefix.
            progress: Called with the running count after each ``UNLINK`` batch.

        Returns:
            How many keys were removed.

        Raises:
            ConfigurationError: ``prefix`` is empty.
        """
        if not isinstance(prefix, str) or not prefix:
            raise ConfigurationError(
                "prefix must be a non-empty string; clear() never empties a whole database"
            )
        pattern = glob_escape(prefix) + "*"
        with map_redis_errors("clear"):
            return await unlink_matching(
                self._client,
                pattern,
                self._delete_batch,
                count=self._scan_count,
                timeout=self._admin,
                progress=progress,
            )

    async def aclose(self) -> None:
        """Close the client if this store created it (:meth:`from_url`); idempotent.

        First waits for the replies of pipelined ``GET`` commands that callers still await
        (bounded by the client's ``socket_timeout`` and the callers' own time budgets:
        a batch all of whose callers gave up is stopped at once). A client passed to
        the constructor is left open for its owner to close.
        """
        # No "already closed" short-cut: redis-py reconnects lazily if the store is used
        # after aclose(), and closing again must release those connections too.
        # Client.aclose() is itself safe to call repeatedly.
        if self._pipeline is not None:
            await self._pipeline.wait_idle()  # lookups already sent get their replies
        if self._owns_client:
            with map_redis_errors("close"):
                await self._client.aclose()

    def __repr__(self) -> str:
        kind = "cluster" if self._is_cluster else "standalone"
        return f"{type(self).__name__}({kind}, owns_client={self._owns_client})"
