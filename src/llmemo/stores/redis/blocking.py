"""A key store on a *sync* redis-py client, for llmemo's sync face only.

Its methods are coroutines that never suspend: each one calls the blocking client and
returns. The sync wrappers of the LangChain adapters drive the async core over this store
without any event loop (``coroutine.send(None)`` runs it to completion), which makes a
sync exact hit one blocking ``GET`` plus llmemo's own CPU work, instead of a hop through
an event loop and the slower asyncio client.

Never use this store from code running on an event loop: every call blocks the thread.
The sync client and its pool are thread-safe, so one store serves every thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from llmemo.errors import ConfigurationError
from llmemo.stores.redis._common import glob_escape, ttl_to_ms
from llmemo.stores.redis._errors import map_redis_errors

if TYPE_CHECKING:
    import redis

__all__ = ["BlockingRedisKeyStore"]


class BlockingRedisKeyStore:
    """The :class:`~llmemo.stores.base.KeyStore` contract on a sync ``redis.Redis``.

    Same commands and semantics as :class:`~llmemo.stores.redis.keystore.RedisKeyStore`
    (``GET``, ``MGET``, ``SET … PX``, ``UNLINK``, ``SCAN`` + ``UNLINK``), same error
    mapping; standalone servers only.

    Args:
        client: A sync ``redis.Redis`` with ``decode_responses=False``.
        owns_client: Close the client in :meth:`aclose`.
        scan_count: ``COUNT`` hint per ``SCAN`` in :meth:`clear`.
        delete_batch: Keys per ``UNLINK`` in :meth:`clear`.

    Raises:
        ConfigurationError: the client decodes responses, or a batch size is not > 0.
    """

    __slots__ = ("_client", "_delete_batch", "_owns_client", "_scan_count")

    def __init__(
        self,
        client: redis.Redis,
        *,
        owns_client: bool = False,
        scan_count: int = 1000,
        delete_batch: int = 500,
    ) -> None:
        if client.get_encoder().decode_responses:
            raise ConfigurationError(
                "client must be created with decode_responses=False: values are opaque bytes"
            )
        if scan_count <= 0 or delete_batch <= 0:
            raise ConfigurationError("scan_count and delete_batch must be > 0")
        self._client = client
        self._owns_client = owns_client
        self._scan_count = scan_count
        self._delete_batch = delete_batch

    @property
    def client(self) -> redis.Redis:
        """The sync redis-py client this store uses."""
        return self._client

    async def get(self, key: str) -> bytes | None:
        """One blocking ``GET``."""
        with map_redis_errors("GET"):
            return cast("bytes | None", self._client.get(key))

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """One blocking ``MGET`` (none for an empty ``keys``)."""
        if not keys:
            return []
        with map_redis_errors("MGET"):
            return cast("list[bytes | None]", self._client.mget(list(keys)))

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """One blocking ``SET key value [PX ms]``: value and TTL together."""
        if not isinstance(value, bytes | bytearray | memoryview):
            raise TypeError(f"value must be bytes, got {type(value).__name__}")
        px = ttl_to_ms(ttl)
        with map_redis_errors("SET"):
            self._client.set(key, value, px=px)

    async def delete(self, key: str) -> bool:
        """One blocking ``UNLINK``; whether the key existed."""
        with map_redis_errors("UNLINK"):
            return self._client.unlink(key) > 0

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
            for key in self._client.scan_iter(
                match=glob_escape(prefix) + "*", count=self._scan_count
            ):
                batch.append(key)
                if len(batch) >= self._delete_batch:
                    removed += self._client.unlink(*batch)
                    batch.clear()
            if batch:
                removed += self._client.unlink(*batch)
        return removed

    async def aclose(self) -> None:
        """Close the client if this store owns it; idempotent."""
        if self._owns_client:
            with map_redis_errors("close"):
                self._client.close()
