"""Probing what a Redis server can do, for choosing a vector backend automatically."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from llmemo.errors import CapabilityError
from llmemo.stores.redis._errors import map_redis_errors

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

__all__ = ["detect_vector_backend", "has_redisearch", "has_vector_sets"]


async def has_redisearch(client: Redis | RedisCluster) -> bool:
    """Whether the server answers RediSearch's ``FT._LIST`` (one round trip)."""
    try:
        with map_redis_errors("FT._LIST"):
            await client.execute_command("FT._LIST")
    except CapabilityError:
        return False
    return True


async def has_vector_sets(client: Redis | RedisCluster) -> bool:
    """Whether the server knows Redis 8's ``VCARD`` (one round trip, on a key never used)."""
    try:
        with map_redis_errors("VCARD"):
            await client.execute_command("VCARD", "llmemo:probe:{none}")
    except CapabilityError:
        return False
    return True


async def detect_vector_backend(client: Redis | RedisCluster) -> Literal["redisearch", "vectorset"]:
    """Return ``"redisearch"`` when the server has the query engine, else ``"vectorset"``
    when it has vector sets.

    Raises:
        CapabilityError: the server has neither (names both requirements).
        BackendError: the probe itself failed (unreachable, timeout, ...).
    """
    if await has_redisearch(client):
        return "redisearch"
    if await has_vector_sets(client):
        return "vectorset"
    raise CapabilityError(
        "this Redis server has neither RediSearch (FT.*, Redis Stack / Redis 8 with the "
        "query engine) nor vector sets (VADD/VSIM, Redis 8): a semantic cache needs one"
    )
