"""``publish_stats=True``: every counter reaches ``{root}:v1:stats`` — periodically while
the cache is used and on close — in the background, and never fails a call.

Real Redis; the publication interval is shortened through the module constant (no
wall-clock budget is asserted: the tests wait for the counters with a generous deadline).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis
from langchain_core.outputs import Generation

from llmemo.adapters import langchain_redis
from llmemo.langchain import RedisCache, RedisSemanticCache

from fakes import AsyncConceptEmbeddings

pytestmark = pytest.mark.redis

COUNTED = ("exact_hits", "semantic_hits", "misses", "writes")


@pytest.fixture
def client(redis_url: str, unique_prefix: str) -> Iterator[redis.Redis]:
    admin = redis.Redis.from_url(redis_url)
    try:
        yield admin
    finally:
        keys = list(admin.scan_iter(match=f"{unique_prefix}*", count=1000))
        if keys:
            admin.unlink(*keys)
        for index in admin.execute_command("FT._LIST") if _has_search(admin) else ():
            if index.decode().startswith(unique_prefix):
                admin.execute_command("FT.DROPINDEX", index)
        admin.close()


def _has_search(admin: redis.Redis) -> bool:
    try:
        admin.execute_command("FT._LIST")
    except redis.ResponseError:
        return False
    return True


def published(admin: redis.Redis, key: str) -> dict[str, int]:
    raw = admin.hgetall(key)
    return {k.decode(): int(v) for k, v in raw.items() if k != b"updated_at"}


def expected(cache: RedisCache | RedisSemanticCache) -> dict[str, int]:
    counts = cache.stats.as_dict()
    return {name: counts[name] for name in COUNTED if counts[name]}


def wait_for(admin: redis.Redis, key: str, want: dict[str, int], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        got = {k: v for k, v in published(admin, key).items() if k in COUNTED}
        if got == want or time.monotonic() > deadline:
            assert got == want
            return
        time.sleep(0.05)


def test_sync_close_publishes_every_counter(
    redis_url: str, unique_prefix: str, client: redis.Redis
) -> None:
    cache = RedisCache(redis_url=redis_url, prefix=unique_prefix, publish_stats=True)
    try:
        cache.update("p", "llm", [Generation(text="x")])
        for _ in range(3):
            assert cache.lookup("p", "llm") is not None
        assert cache.lookup("other", "llm") is None
    finally:
        cache.close()
    # Not just the first lookup: all four lookups and the write.
    every = {name: count for name, count in cache.stats.as_dict().items() if count}
    assert every["exact_hits"] == 3 and every["misses"] == 1 and every["writes"] == 1
    assert published(client, f"{unique_prefix}:v1:stats") == every


async def test_async_close_publishes_every_counter(
    redis_url: str, unique_prefix: str, client: redis.Redis
) -> None:
    cache = RedisCache(redis_url=redis_url, prefix=unique_prefix, publish_stats=True)
    try:
        await cache.aupdate("p", "llm", [Generation(text="x")])
        for _ in range(3):
            assert await cache.alookup("p", "llm") is not None
        assert await cache.alookup("other", "llm") is None
    finally:
        await cache.aclose()
        cache.close()
    stats_key = f"{unique_prefix}:v1:stats"
    wait_for(client, stats_key, {"exact_hits": 3, "misses": 1, "writes": 1})


@pytest.mark.redisearch
async def test_a_semantic_cache_publishes_on_close_and_when_its_loop_ends(
    redis_url: str, unique_prefix: str, client: redis.Redis
) -> None:
    cache = RedisSemanticCache(
        AsyncConceptEmbeddings(),
        redis_url=redis_url,
        prefix=unique_prefix,
        name="sem",
        publish_stats=True,
        vector_backend="redisearch",
    )
    stats_key = f"{unique_prefix}:sem:v1:stats"

    async def use() -> None:
        await cache.aupdate("What is the capital of France?", "llm", [Generation(text="P")])
        assert await cache.alookup("Tell me the capital of France", "llm") is not None
        assert await cache.alookup("What is the capital of France?", "llm") is not None

    await use()
    await cache.aclose()
    wait_for(client, stats_key, expected(cache))
    # A loop that ends without aclose() closes its core, which flushes too.
    await asyncio.to_thread(lambda: asyncio.run(use()))
    wait_for(client, stats_key, expected(cache))
    assert expected(cache)["exact_hits"] == 2 and expected(cache)["semantic_hits"] == 2


def test_counters_are_published_periodically_while_in_use(
    redis_url: str, unique_prefix: str, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(langchain_redis, "STATS_PUBLISH_INTERVAL", 0.05)
    cache = RedisCache(redis_url=redis_url, prefix=unique_prefix, publish_stats=True)
    stats_key = f"{unique_prefix}:v1:stats"
    try:
        cache.update("p", "llm", [Generation(text="x")])
        deadline = time.monotonic() + 30
        # Keep using the cache (no close): later lookups get published, not just the first.
        while published(client, stats_key).get("exact_hits", 0) < 5:
            assert time.monotonic() < deadline, published(client, stats_key)
            cache.lookup("p", "llm")
            time.sleep(0.06)
    finally:
        cache.close()


def test_publishing_to_a_dead_server_never_fails_a_call(unique_prefix: str) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cache = RedisCache(
        redis_url=f"redis://127.0.0.1:{port}", prefix=unique_prefix, publish_stats=True
    )
    try:
        assert cache.lookup("p", "llm") is None  # a miss (fail open), not an error
        cache.update("p", "llm", [Generation(text="x")])
    finally:
        cache.close()  # the flush fails quietly
