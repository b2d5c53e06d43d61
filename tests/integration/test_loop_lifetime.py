"""Per-loop Redis clients die with their event loop, however the loop is closed.

A LangChain adapter keeps one ``redis.asyncio`` client per event loop. A loop closed with
``loop.close()`` and no ``shutdown_asyncgens()`` (a thread that makes a loop per call and
just closes it), a loop run by ``asyncio.run``, and the private loops of the sync face must
all give their connections back: the server's client count stays bounded, not one per loop.
Connections are counted on the server (``CLIENT LIST``), by a client name unique to the test.
"""

from __future__ import annotations

import asyncio
import gc
import secrets
import threading
import weakref

import pytest
import redis

from llmemo.adapters._sync import PerLoop
from llmemo.langchain import RedisCache, RedisSemanticCache

from fakes import ConceptEmbeddings

pytestmark = pytest.mark.redis

LOOPS = 30


def connected(url: str, name: str) -> int:
    """Connections the server holds for clients named ``name``."""
    with redis.Redis.from_url(url) as admin:
        return sum(1 for client in admin.client_list() if client.get("name") == name)


def client_name() -> str:
    return f"llmemo-loops-{secrets.token_hex(4)}"


def test_loops_closed_without_shutdown_asyncgens_release_their_connections(
    redis_url: str, unique_prefix: str
) -> None:
    name = client_name()
    cache = RedisCache(redis_url, prefix=unique_prefix, client_kwargs={"client_name": name})
    for i in range(LOOPS):
        loop = asyncio.new_event_loop()
        try:
            assert loop.run_until_complete(cache.alookup(f"prompt {i}", "llm")) is None
        finally:
            loop.close()  # no shutdown_asyncgens(): what a hand-rolled loop per call does
    del loop
    gc.collect()
    assert connected(redis_url, name) <= 2
    cache.close()


def test_closed_loops_are_not_kept_alive(redis_url: str, unique_prefix: str) -> None:
    """Neither a hand-closed loop nor one run by ``asyncio.run`` stays referenced by llmemo."""
    cache = RedisCache(redis_url, prefix=unique_prefix)
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def lookup() -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        await cache.alookup("prompt", "llm")

    for _ in range(5):
        asyncio.run(lookup())
        loop = asyncio.new_event_loop()
        loop.run_until_complete(lookup())
        loop.close()
    del loop
    gc.collect()
    assert [ref for ref in loops if ref() is not None] == []
    cache.close()


def test_a_loop_closed_inside_a_running_loop_still_closes_its_objects() -> None:
    """``close()`` called from a thread that runs another loop cannot run the closed loop
    there: the objects are closed on it from a helper thread instead."""
    closed: list[object] = []

    async def close(obj: object) -> None:
        await asyncio.sleep(0)  # a real closer awaits I/O on its loop
        closed.append(obj)

    per_loop: PerLoop[object] = PerLoop(object, close)
    inner = asyncio.new_event_loop()

    async def make() -> object:
        return per_loop.get()

    made = inner.run_until_complete(make())

    async def outer() -> None:
        inner.close()

    asyncio.run(outer())
    assert closed == [made]


def test_per_loop_objects_are_closed_once_and_forgotten_on_close() -> None:
    closed: list[object] = []

    async def close(obj: object) -> None:
        closed.append(obj)

    per_loop: PerLoop[object] = PerLoop(object, close)

    async def get() -> object:
        return per_loop.get()

    made = []
    for _ in range(3):
        made.append(asyncio.run(get()))  # shutdown_asyncgens, then close
        loop = asyncio.new_event_loop()
        made.append(loop.run_until_complete(get()))
        loop.close()
    assert closed == made


def test_an_object_made_by_a_closer_while_the_loop_closes_is_closed_too() -> None:
    closed: list[object] = []

    async def close(obj: object) -> None:
        closed.append(obj)

    late: PerLoop[object] = PerLoop(object, close)

    async def close_and_touch_late(obj: object) -> None:
        closed.append(obj)
        late.get()  # e.g. a closer that publishes counters through another client

    early: PerLoop[object] = PerLoop(object, close_and_touch_late)
    loop = asyncio.new_event_loop()

    async def make() -> object:
        return early.get()

    first = loop.run_until_complete(make())
    loop.close()
    assert len(closed) == 2 and closed[0] is first


def test_a_loop_whose_close_cannot_be_wrapped_is_closed_by_shutdown_asyncgens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the close hook (a loop class without instance attributes), llmemo's async
    generator on the loop closes the objects when ``asyncio.run`` finalizes generators,
    and the loop is forgotten afterwards."""
    import llmemo.adapters._sync as sync_module

    monkeypatch.setattr(sync_module, "_hook_close", lambda loop: False)
    closed: list[object] = []

    async def close(obj: object) -> None:
        closed.append(obj)

    per_loop: PerLoop[object] = PerLoop(object, close)
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def get() -> object:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        return per_loop.get()

    made = [asyncio.run(get()) for _ in range(3)]
    gc.collect()
    assert closed == made
    assert [ref for ref in loops if ref() is not None] == []


@pytest.mark.vectorset
def test_sync_calls_from_many_threads_release_their_connections(
    redis_url: str, unique_prefix: str
) -> None:
    """The sync face of a semantic cache runs on a private loop per thread; a thread that
    ends takes its loop's client with it."""
    name = client_name()
    cache = RedisSemanticCache(
        ConceptEmbeddings(),
        redis_url,
        prefix=unique_prefix,
        name=unique_prefix,
        vector_backend="vectorset",
        client_kwargs={"client_name": name},
    )
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            cache.lookup(f"question {i}", "llm")
        except BaseException as exc:  # reported below
            errors.append(exc)

    for i in range(LOOPS):
        thread = threading.Thread(target=work, args=(i,))
        thread.start()
        thread.join()
    gc.collect()
    assert errors == []
    assert connected(redis_url, name) <= 2
    cache.clear()


@pytest.mark.vectorset
def test_sync_calls_inside_many_running_loops_share_one_background_client(
    redis_url: str, unique_prefix: str
) -> None:
    """A sync call made inside a running loop runs on llmemo's one background loop: new
    loops add no connection."""
    name = client_name()
    cache = RedisSemanticCache(
        ConceptEmbeddings(),
        redis_url,
        prefix=unique_prefix,
        name=unique_prefix,
        vector_backend="vectorset",
        client_kwargs={"client_name": name},
    )

    async def sync_inside_a_loop(i: int) -> None:
        cache.lookup(f"question {i}", "llm")  # a sync model.invoke in async code does this

    for i in range(LOOPS):
        loop = asyncio.new_event_loop()
        loop.run_until_complete(sync_inside_a_loop(i))
        loop.close()
    del loop
    gc.collect()
    assert connected(redis_url, name) <= 2
    cache.clear()
