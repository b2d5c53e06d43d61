"""Issue 15, items 8-11: first use, write load, clear() at size, oversized entries.

The first lookup of a process is as good as the second (one-time setup outside the
budget), writes have their own budget and breaker, administrative calls their own
timeout, and an oversized entry is refused before it is sent.
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from llmemo import cli
from llmemo.caches.semantic import SemanticCache
from llmemo.langchain import InMemorySemanticCache, RedisCache, RedisSemanticCache
from llmemo.policy import FailurePolicy

from fakes import AsyncConceptEmbeddings, ConceptEmbeddings
from redis_server import RedisServer

pytestmark = pytest.mark.redis

TESTS = Path(__file__).resolve().parents[1]
SRC = TESTS.parent / "src"
LLM = "fake-model"


def gens(text: str) -> list[Any]:
    from langchain_core.outputs import Generation

    return [Generation(text=text)]


def drop(url: str, unique_prefix: str) -> None:
    with redis.Redis.from_url(url) as client:
        for index in client.execute_command("FT._LIST"):
            if index.decode().startswith(unique_prefix):
                client.execute_command("FT.DROPINDEX", index)
        keys = list(client.scan_iter(match=f"{unique_prefix}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.unlink(*keys[start : start + 1000])


@pytest.fixture
def cleanup(redis_url: str, unique_prefix: str) -> Any:
    yield
    drop(redis_url, unique_prefix)


def run_fresh_process(code: str) -> str:
    """Run ``code`` in a new interpreter (nothing imported yet) and return its stdout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS)])}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


# -- item 8: the first lookup of a process ---------------------------------------------

FRESH = """
    import asyncio, sys
    from llmemo.langchain import RedisSemanticCache
    from fakes import ConceptEmbeddings

    async def main():
        cache = RedisSemanticCache(
            ConceptEmbeddings(), {url!r}, prefix={prefix!r}, name={prefix!r},
            vector_backend={backend!r},
        )
        {body}
        await cache.aclose()

    asyncio.run(main())
"""


@pytest.mark.parametrize(
    "backend",
    [
        # "auto" (the default) probes the server and imports the store's module (and
        # numpy) on first use: ~0.4 s in a fresh process, 4x the lookup's budget.
        pytest.param("auto", marks=pytest.mark.redisearch),
        pytest.param("redisearch", marks=pytest.mark.redisearch),
        pytest.param("vectorset", marks=pytest.mark.vectorset),
    ],
)
def test_the_first_lookup_of_a_fresh_process_hits(
    backend: str, redis_url: str, unique_prefix: str, cleanup: None
) -> None:
    common = {"url": redis_url, "prefix": unique_prefix, "backend": backend}
    wrote = run_fresh_process(
        FRESH.format(
            **common,
            body="from langchain_core.outputs import Generation; "
            "await cache.aupdate('What is the capital of France?', 'm', "
            "[Generation(text='Paris')]); print(cache.stats.writes)",
        )
    )
    assert wrote == "1"  # the first write of a fresh process is not dropped either
    # A new process: the first lookup imports numpy, connects, probes the server and
    # finds the index; none of it may eat the lookup's 100 ms budget.
    exact = run_fresh_process(
        FRESH.format(
            **common,
            body="hit = await cache.alookup('What is the capital of France?', 'm'); "
            "print(hit[0].text if hit else 'MISS', cache.stats.as_dict()['errors_timeout'])",
        )
    )
    assert exact == "Paris 0"
    semantic = run_fresh_process(
        FRESH.format(
            **common,
            body="hit = await cache.alookup('Tell me the capital of France', 'm'); "
            "print(hit[0].text if hit else 'MISS', cache.stats.as_dict()['errors_timeout'])",
        )
    )
    assert semantic == "Paris 0"


def ft_create_calls(url: str) -> int:
    """FT.CREATE commands the server has run, including refused ones ("already exists")."""
    with redis.Redis.from_url(url) as client:
        stats = client.info("commandstats").get("cmdstat_FT.CREATE", {})
    return int(stats.get("calls", 0)) + int(stats.get("failed_calls", 0))


@pytest.mark.redisearch
async def test_concurrent_first_writers_share_one_index_creation(
    redis_url: str, unique_prefix: str, cleanup: None
) -> None:
    cache = RedisSemanticCache(
        AsyncConceptEmbeddings(),
        redis_url,
        prefix=unique_prefix,
        name=unique_prefix,
        vector_backend="redisearch",
        single_flight=False,
    )
    before = ft_create_calls(redis_url)
    prompts = [f"question number {i} about topic {i * 7}" for i in range(8)]
    await asyncio.gather(*(cache.aupdate(p, LLM, gens(p)) for p in prompts))
    assert cache.stats.writes == 8
    assert cache.stats.writes_dropped == 0
    assert ft_create_calls(redis_url) - before == 1
    for prompt in prompts:
        assert await cache.alookup(prompt, LLM) == gens(prompt)
    await cache.aclose()


async def test_explicit_setup_connects_and_creates_the_index(
    redis_url: str, unique_prefix: str, cleanup: None, require_capability: Any
) -> None:
    require_capability("redisearch")
    cache = RedisSemanticCache(
        ConceptEmbeddings(),
        redis_url,
        prefix=unique_prefix,
        name=unique_prefix,
        vector_backend="redisearch",
    )
    before = ft_create_calls(redis_url)
    await cache.asetup()
    with redis.Redis.from_url(redis_url) as client:
        assert f"{unique_prefix}:v1:ix".encode() in client.execute_command("FT._LIST")
    assert isinstance(cache.core(), SemanticCache)
    await asyncio.gather(*(cache.aupdate(f"q {i} {i}", LLM, gens("a")) for i in range(4)))
    assert cache.stats.writes == 4
    assert ft_create_calls(redis_url) - before == 1
    exact = RedisCache(redis_url, prefix=unique_prefix)
    await exact.asetup()  # connects; nothing else to do
    await exact.aclose()
    exact.close()
    await cache.aclose()


class SlowLoadingEmbeddings(AsyncConceptEmbeddings):
    """Loads a "model" for 0.5 s on the first warm-up, as LocalEmbeddings does for seconds."""

    def __init__(self) -> None:
        super().__init__()
        self.warmed = 0

    async def awarm_up(self) -> None:
        await asyncio.sleep(0.5)
        self.warmed += 1


async def test_a_model_load_is_not_inside_the_embed_budget() -> None:
    embeddings = SlowLoadingEmbeddings()
    cache = InMemorySemanticCache(embeddings, policy=FailurePolicy(embed_timeout=0.2))
    stored = await asyncio.gather(
        *(cache.aupdate(f"first write {i}", LLM, gens("x")) for i in range(4))
    )
    assert stored == [None] * 4
    assert cache.stats.writes == 4
    assert cache.stats.embedder_errors == 0
    assert embeddings.warmed == 1  # one load shared by the concurrent first writers


@pytest.mark.model
def test_the_first_embedding_of_local_embeddings_is_not_dropped() -> None:
    # A cold process, as a user's first run: importing the runtime and loading the model
    # (building its graph on a machine's first run) can take longer than the 2 s embed
    # budget given here; one short embedding does not.
    out = run_fresh_process(
        """
        import asyncio
        from langchain_core.outputs import Generation
        from llmemo import FailurePolicy
        from llmemo.langchain import InMemorySemanticCache
        from llmemo.local import LocalEmbeddings

        async def main():
            embeddings = LocalEmbeddings()
            cache = InMemorySemanticCache(embeddings, policy=FailurePolicy(embed_timeout=2.0))
            prompt = "What is the capital of France?"
            await cache.aupdate(prompt, "m", [Generation(text="Paris")])
            hit = await cache.alookup(prompt, "m")
            counters = cache.stats.as_dict()
            print(counters["writes"], counters["embedder_errors"], hit[0].text if hit else "MISS")

        asyncio.run(main())
        """
    )
    assert out == "1 0 Paris"


# -- item 9: writes under load, and failing writes beside working reads --------------


@pytest.mark.redisearch
@pytest.mark.parametrize("concurrency", [32, 128])
async def test_a_concurrent_fill_drops_no_write(
    concurrency: int, redis_url: str, unique_prefix: str, cleanup: None
) -> None:
    cache = RedisSemanticCache(
        AsyncConceptEmbeddings(),
        redis_url,
        prefix=unique_prefix,
        name=unique_prefix,
        vector_backend="redisearch",
        single_flight=False,
    )
    total = 1024
    prompts = [f"fill entry {i} on subject {i % 97} variant {i // 97}" for i in range(total)]
    gate = asyncio.Semaphore(concurrency)

    async def write(prompt: str) -> None:
        async with gate:
            await cache.aupdate(prompt, LLM, gens(prompt))

    await asyncio.gather(*(write(p) for p in prompts))
    counters = cache.stats.as_dict()
    assert counters["writes_dropped"] == 0, counters
    assert counters["writes"] == total
    assert counters["breaker_opens"] == 0
    await cache.aclose()


@pytest.mark.redisearch
async def test_a_full_server_drops_writes_and_keeps_serving_reads(caplog: Any) -> None:
    with RedisServer() as server:
        url = server.url
        # Reads get a budget of seconds: what is under test is that failing writes never
        # switch reads off, not that a loaded machine answers within 100 ms.
        patient = FailurePolicy(operation_timeout=5.0)
        cache = RedisSemanticCache(
            AsyncConceptEmbeddings(),
            url,
            prefix="full",
            name="full",
            vector_backend="redisearch",
            single_flight=False,
            policy=patient,
        )
        exact = RedisCache(url, prefix="fullx", single_flight=False, policy=patient)
        stored = [f"stored question {i} about theme {i}" for i in range(20)]
        for prompt in stored:
            await cache.aupdate(prompt, LLM, gens(prompt))
            await exact.aupdate(prompt, LLM, gens(prompt))
        assert cache.stats.writes == 20
        with redis.Redis.from_url(url) as admin:
            used = int(admin.info("memory")["used_memory"])
            admin.config_set("maxmemory-policy", "noeviction")
            admin.config_set("maxmemory", used // 2)  # already over: every write fails
            for round_ in range(10):
                for i, prompt in enumerate(stored):
                    new = f"new question {round_} {i} about theme {i + 50}"
                    await cache.aupdate(new, LLM, gens(new))
                    await exact.aupdate(new, LLM, gens(new))
                    assert await cache.alookup(prompt, LLM) == gens(prompt)
                    assert await exact.alookup(prompt, LLM) == gens(prompt)
            admin.config_set("maxmemory", 0)
        for each in (cache, exact):
            counters = each.stats.as_dict()
            assert counters["writes"] == 20
            assert counters["writes_dropped"] == 200
            assert counters["errors_backend"] >= 1  # OOM replies, then breaker skips
            assert counters["breaker_skips"] >= 100
            snapshot = each.runtime.snapshot()
            assert snapshot["store_breaker"] == "closed"
            assert snapshot["write_breaker"] in ("open", "half-open")
            assert counters["misses"] == 0
        await cache.aclose()
        await exact.aclose()
        exact.close()


# -- item 10: clear() at any size --------------------------------------------------------


#: The fills below are the tests' setup, not what they test: no time budget, errors
#: raise, so that a loaded CI machine (an HNSW insert queued behind 63 others can take
#: seconds there) never drops one and fails the count. Write budgets are tested above.
FILL_POLICY = FailurePolicy(errors="raise", operation_timeout=None, write_timeout=None)


async def fill(cache: Any, total: int, concurrency: int = 64) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def write(i: int) -> None:
        async with gate:
            prompt = f"entry {i} about subject {i % 101} in variant {i // 101}"
            await cache.aupdate(prompt, LLM, gens("x"))

    await asyncio.gather(*(write(i) for i in range(total)))


async def filled_cache(kind: str, redis_url: str, prefix: str, total: int) -> Any:
    """A ``RedisCache`` (``kind="exact"``) or RediSearch ``RedisSemanticCache`` under
    ``prefix``, with :data:`FILL_POLICY`, holding ``total`` entries (every write counted)."""
    cache: Any
    if kind == "exact":
        cache = RedisCache(redis_url, prefix=prefix, single_flight=False, policy=FILL_POLICY)
    else:
        cache = RedisSemanticCache(
            AsyncConceptEmbeddings(),
            redis_url,
            prefix=prefix,
            name=prefix,
            vector_backend="redisearch",
            single_flight=False,
            policy=FILL_POLICY,
        )
    await fill(cache, total)
    assert cache.stats.writes == total
    return cache


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind",
    ["exact", pytest.param("redisearch", marks=pytest.mark.redisearch)],
)
async def test_clear_removes_50k_entries_with_progress(
    kind: str, redis_url: str, unique_prefix: str, cleanup: None
) -> None:
    total = 50_000
    cache = await filled_cache(kind, redis_url, unique_prefix, total)
    seen: list[int] = []
    started = time.perf_counter()
    removed = await cache.core().aclear(progress=seen.append)
    elapsed = time.perf_counter() - started
    print(f"\nclear() of {total:,} {kind} entries: {elapsed:.2f} s", file=sys.stderr)  # noqa: T201
    assert removed == total
    assert seen and seen[-1] == total and seen == sorted(seen)
    with redis.Redis.from_url(redis_url) as client:
        assert list(client.scan_iter(match=f"{unique_prefix}*:v1:[xs]:*", count=1000)) == []
    await cache.aclose()


@pytest.mark.slow
@pytest.mark.redisearch
async def test_llmemo_clear_removes_50k_semantic_entries_with_progress(
    redis_url: str, unique_prefix: str, cleanup: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The command's own client and timeout (not a cache's): 50k indexed entries, whose
    # UNLINKs take far longer than a cache's read budget, removed with progress lines.
    total = 50_000
    cache = await filled_cache("redisearch", redis_url, unique_prefix, total)
    await cache.aclose()
    monkeypatch.setattr(cli, "PROGRESS_AFTER_S", 0.0)  # report from the first batch on
    monkeypatch.setattr(cli, "PROGRESS_EVERY_S", 0.0)
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    argv = ["clear", "--redis-url", redis_url, "--prefix", unique_prefix]
    code = await asyncio.to_thread(cli.main, [*argv, "--name", unique_prefix, "--yes"])
    monkeypatch.undo()
    assert code == cli.EXIT_OK, err.getvalue()
    assert f"{total:,} deleted" in err.getvalue()  # progress, then the final count
    assert f"deleted {total:,} keys" in out.getvalue()
    with redis.Redis.from_url(redis_url) as client:
        assert list(client.scan_iter(match=f"{unique_prefix}*:v1:s:*", count=1000)) == []


@pytest.mark.redisearch
async def test_clear_of_thousands_of_indexed_entries_is_not_a_timeout(
    redis_url: str, unique_prefix: str, cleanup: None
) -> None:
    def make(policy: FailurePolicy | None, **client_kwargs: Any) -> RedisSemanticCache:
        return RedisSemanticCache(
            AsyncConceptEmbeddings(),
            redis_url,
            prefix=unique_prefix,
            name=unique_prefix,
            vector_backend="redisearch",
            single_flight=False,
            policy=policy,
            client_kwargs=client_kwargs,
        )

    # Filled under the default budgets (a loaded machine must not drop the fill) ...
    filler = make(None)
    await fill(filler, 3000, concurrency=8)
    await filler.aclose()
    with redis.Redis.from_url(redis_url) as client:
        stored = len(list(client.scan_iter(match=f"{unique_prefix}:v1:s:*", count=1000)))
    assert stored == filler.stats.writes == 3000
    # ... and cleared by a cache whose sockets time out at 50 ms: an UNLINK of 500
    # indexed entries takes longer; clear() reads its replies with admin_timeout instead.
    cache = make(FailurePolicy(operation_timeout=0.05, write_timeout=0.05), socket_timeout=0.05)
    seen: list[int] = []
    await cache.aclear(progress=seen.append)  # LangChain's aclear(**kwargs)
    assert seen and seen[-1] == stored and seen == sorted(seen)
    with redis.Redis.from_url(redis_url) as client:
        assert list(client.scan_iter(match=f"{unique_prefix}*:v1:s:*", count=1000)) == []
    await cache.aclose()


# -- item 11: an oversized entry ------------------------------------------------------


@pytest.mark.parametrize("kind", ["exact", pytest.param("semantic", marks=pytest.mark.redisearch)])
async def test_an_oversized_entry_is_refused_before_sending(
    kind: str, redis_url: str, unique_prefix: str, cleanup: None
) -> None:
    cache: Any
    if kind == "exact":
        cache = RedisCache(redis_url, prefix=unique_prefix, single_flight=False)
    else:
        cache = RedisSemanticCache(
            AsyncConceptEmbeddings(),
            redis_url,
            prefix=unique_prefix,
            name=unique_prefix,
            vector_backend="redisearch",
            single_flight=False,
        )
    huge = "x" * (64 * 1024 * 1024)
    for i in range(6):  # more than breaker_threshold
        await cache.aupdate(f"huge {i}", LLM, gens(huge))
    await cache.aupdate("small", LLM, gens("fine"))
    counters = cache.stats.as_dict()
    assert counters["writes_too_large"] == 6
    assert counters["writes_dropped"] == 6
    assert counters["writes"] == 1
    assert cache.stats.errors == 0
    assert counters["breaker_opens"] == 0
    assert await cache.alookup("small", LLM) == gens("fine")
    assert await cache.alookup("huge 0", LLM) is None  # never sent
    await cache.aclose()


def test_max_entry_bytes_is_configurable_and_checked() -> None:
    from llmemo.errors import ConfigurationError

    assert FailurePolicy().max_entry_bytes == 4 * 1024 * 1024
    assert FailurePolicy(max_entry_bytes=None).max_entry_bytes is None
    for bad in (0, -1, 1.5, True, "1"):
        with pytest.raises(ConfigurationError, match="max_entry_bytes"):
            FailurePolicy(max_entry_bytes=bad)  # type: ignore[arg-type]
    for name in ("write_timeout", "setup_timeout", "admin_timeout"):
        with pytest.raises(ConfigurationError, match=name):
            FailurePolicy(**{name: 0})


def test_async_clients_time_out_at_the_write_budget_and_sync_clients_at_the_read_budget() -> None:
    from llmemo.adapters._redis_clients import RedisClientFactory

    factory = RedisClientFactory.create("redis://127.0.0.1:1", None, None, 0.1, write_timeout=2.0)
    sync_kwargs = factory.make_sync().connection_pool.connection_kwargs
    async_kwargs = factory.make_async().connection_pool.connection_kwargs  # type: ignore[union-attr]
    assert sync_kwargs["socket_timeout"] == 0.1
    assert async_kwargs["socket_timeout"] == 2.0
    assert async_kwargs["socket_connect_timeout"] == 2.0
    chosen = RedisClientFactory.create(
        "redis://127.0.0.1:1", None, {"socket_timeout": 0.5}, 0.1, write_timeout=2.0
    )
    assert chosen.make_async().connection_pool.connection_kwargs["socket_timeout"] == 0.5  # type: ignore[union-attr]
    assert chosen.make_sync().connection_pool.connection_kwargs["socket_timeout"] == 0.5
