"""Concurrent ``GET``s of one event loop share round trips (RedisKeyStore's auto-pipeline).

Against the session's real Redis. Each test checks that every caller gets its own reply,
that the connection stays in step (a later batch still pairs replies with callers), and
how many writes carried the ``GET``s.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aredis
from redis import exceptions as rex
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from llmemo.errors import BackendTimeoutError, BackendUnavailableError, WrongTypeError
from llmemo.stores.redis.keystore import RedisKeyStore

pytestmark = pytest.mark.redis

WIDTH = 64


class Wire:
    """What the connections of one pool wrote (the ``GET``s in each write), and a switch
    that breaks the connection at a chosen reply."""

    def __init__(self) -> None:
        self.gets_per_write: list[int] = []
        self.break_at_read: int | None = None  # the n-th reply read after arming (1-based)
        self.reads = 0
        self.disconnects = 0


def _pool_class(wire: Wire) -> type[Connection]:
    class Observed(Connection):
        # send_packed_command is not overridden (that would take the lean path away): the
        # writer is wrapped instead, so every write the lean sends make is seen.
        async def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
            await super().connect_check_health(*args, **kwargs)
            writer = self._writer
            assert writer is not None
            if getattr(writer, "observed", False):
                return  # runs on every checkout and reconnect: wrap each writer once
            writer.observed = True  # type: ignore[attr-defined]
            write, writelines = writer.write, writer.writelines

            def count(data: bytes) -> None:
                gets = data.count(b"\r\n$3\r\nGET\r\n")
                if gets:
                    wire.gets_per_write.append(gets)

            def counting_write(data: bytes) -> None:
                count(bytes(data))
                write(data)

            def counting_writelines(chunks: Any) -> None:
                chunks = list(chunks)
                count(b"".join(bytes(c) for c in chunks))
                writelines(chunks)

            writer.write = counting_write  # type: ignore[method-assign]
            writer.writelines = counting_writelines  # type: ignore[method-assign]

        async def read_response(self, *args: Any, **kwargs: Any) -> Any:
            if wire.break_at_read is not None:
                wire.reads += 1
                if wire.reads == wire.break_at_read:
                    wire.break_at_read = None
                    await self.disconnect()
                    raise rex.ConnectionError("connection dropped by the test")
            return await super().read_response(*args, **kwargs)

        async def disconnect(self, *args: Any, **kwargs: Any) -> None:
            if self.is_connected:
                wire.disconnects += 1
            await super().disconnect(*args, **kwargs)

    return Observed


@pytest.fixture
def wire() -> Wire:
    return Wire()


def _store(redis_url: str, wire: Wire, retries: int = 1) -> RedisKeyStore:
    return RedisKeyStore.from_url(  # owns its client and pool: store.aclose() closes them
        redis_url, connection_class=_pool_class(wire), retry=Retry(NoBackoff(), retries)
    )


@pytest.fixture
async def store(redis_url: str, wire: Wire) -> AsyncIterator[RedisKeyStore]:
    """A store on an observed pool whose connections retry once."""
    st = _store(redis_url, wire)
    try:
        yield st
    finally:
        await st.aclose()


@pytest.fixture
async def filled(
    redis_url: str, unique_prefix: str
) -> AsyncIterator[tuple[list[str], dict[str, bytes | None]]]:
    """``WIDTH`` keys: most hold distinct values, every seventh is absent."""
    client = aredis.Redis.from_url(redis_url)
    keys = [f"{unique_prefix}:{i}" for i in range(WIDTH)]
    expected: dict[str, bytes | None] = {}
    for i, key in enumerate(keys):
        expected[key] = None if i % 7 == 3 else f"value {i}".encode() * (i + 1)
        if expected[key] is not None:
            await client.set(key, expected[key])
    try:
        yield keys, expected
    finally:
        await client.delete(*keys)
        await client.aclose()


async def _all_in_step(store: RedisKeyStore, expected: dict[str, bytes | None]) -> None:
    """A concurrent round whose every reply must reach its own caller."""
    keys = list(expected)
    got = await asyncio.gather(*(store.get(k) for k in keys))
    assert dict(zip(keys, got, strict=True)) == expected


async def test_concurrent_gets_share_one_write_and_each_gets_its_own_value(
    store: RedisKeyStore, wire: Wire, filled: tuple[list[str], dict[str, bytes | None]]
) -> None:
    keys, expected = filled
    await store.get(keys[0])  # connect outside the count
    wire.gets_per_write.clear()
    got = await asyncio.gather(*(store.get(k) for k in keys))
    assert dict(zip(keys, got, strict=True)) == expected
    # The first caller found nothing in flight and sent at once; the 63 others
    # joined one batch, sent by one write.
    assert wire.gets_per_write == [1, WIDTH - 1]
    assert wire.disconnects == 0


async def test_lookups_one_at_a_time_are_sent_at_once(
    store: RedisKeyStore, wire: Wire, filled: tuple[list[str], dict[str, bytes | None]]
) -> None:
    keys, expected = filled
    for key in keys[:10]:
        assert await store.get(key) == expected[key]
    assert wire.gets_per_write == [1] * 10
    assert store._pipeline is not None and not store._pipeline._tasks  # no batch task


async def test_an_error_reply_in_a_batch_fails_only_its_caller(
    store: RedisKeyStore, wire: Wire, filled: tuple[list[str], dict[str, bytes | None]]
) -> None:
    keys, expected = filled
    hash_key = keys[0] + ":hash"
    await store.client.hset(hash_key, "f", "v")
    try:
        mixed = [*keys[:10], hash_key, *keys[10:20]]
        got = await asyncio.gather(*(store.get(k) for k in mixed), return_exceptions=True)
        for key, value in zip(mixed, got, strict=True):
            if key == hash_key:
                assert type(value) is WrongTypeError
                assert isinstance(value.__cause__, rex.ResponseError)
            else:
                assert value == expected[key]
        assert wire.gets_per_write[-1] == len(mixed) - 1  # one batch, the error inside it
        await _all_in_step(store, expected)
        assert wire.disconnects == 0
    finally:
        await store.client.delete(hash_key)


@pytest.mark.parametrize("sent", [False, True], ids=["before-the-send", "after-the-send"])
async def test_a_cancelled_caller_leaves_the_batch_and_the_connection_in_step(
    store: RedisKeyStore,
    wire: Wire,
    filled: tuple[list[str], dict[str, bytes | None]],
    sent: bool,
) -> None:
    keys, expected = filled
    # Two connections, both connected, outside the count: the batch then goes out within
    # a turn or two of the loop instead of after a connection handshake.
    await _all_in_step(store, expected)
    wire.gets_per_write.clear()
    tasks = [asyncio.create_task(store.get(k)) for k in keys[:12]]
    await asyncio.sleep(0)  # every caller has joined; the batch is not sent yet
    if sent:
        # Turn the loop one step at a time until the batch is on the wire (at most 10 s
        # on a loaded machine), so that the cancel below lands after the send.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        for _ in itertools.count():
            if len(wire.gets_per_write) == 2 or loop.time() > deadline:
                break
            await asyncio.sleep(0)
        assert len(wire.gets_per_write) == 2  # on the wire
    tasks[5].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[5], asyncio.CancelledError)
    for i, key in enumerate(keys[:12]):
        if i != 5:
            assert done[i] == expected[key]
    # Cancelled before the send: its GET never went; after it: sent, reply dropped.
    assert wire.gets_per_write == [1, 11 if sent else 10]
    await _all_in_step(store, expected)
    assert wire.disconnects == 0  # the connection was never given up


async def _round_with_a_drop(
    store: RedisKeyStore, wire: Wire, expected: dict[str, bytes | None]
) -> list[Any]:
    """A concurrent round (replies or exceptions, in key order) whose batch loses its
    connection after 4 replies: the direct caller's reply is the 1st read, the batch's
    1st..4th the next; the 6th read drops the connection."""
    await _all_in_step(store, expected)  # two connections, both connected, outside the count
    wire.gets_per_write.clear()
    wire.break_at_read = 6
    return await asyncio.gather(*(store.get(k) for k in expected), return_exceptions=True)


async def test_a_dropped_connection_resends_only_the_unanswered_gets(
    store: RedisKeyStore, wire: Wire, filled: tuple[list[str], dict[str, bytes | None]]
) -> None:
    keys, expected = filled
    got = await _round_with_a_drop(store, wire, expected)
    assert dict(zip(keys, got, strict=True)) == expected
    # The batch of 63 lost its connection after 4 replies: the retry (after a
    # reconnect) sent the 59 unanswered ones again, nothing twice.
    assert wire.gets_per_write == [1, WIDTH - 1, WIDTH - 1 - 4]
    await _all_in_step(store, expected)


async def test_without_retries_a_dropped_connection_fails_the_unanswered_callers(
    redis_url: str, wire: Wire, filled: tuple[list[str], dict[str, bytes | None]]
) -> None:
    keys, expected = filled
    store = _store(redis_url, wire, retries=0)
    try:
        got = await _round_with_a_drop(store, wire, expected)
        answered = [k for k, v in zip(keys, got, strict=True) if not isinstance(v, Exception)]
        failed = [v for v in got if isinstance(v, Exception)]
        assert len(answered) == 5 and len(failed) == WIDTH - 5
        assert all(got[keys.index(k)] == expected[k] for k in answered)
        assert all(type(e) is BackendUnavailableError for e in failed)
        assert all(isinstance(e.__cause__, rex.ConnectionError) for e in failed)
        await _all_in_step(store, expected)  # fresh connections serve the next round
    finally:
        await store.aclose()


async def test_aclose_waits_for_the_replies_of_batches_already_sent(
    redis_url: str, wire: Wire, filled: tuple[list[str], dict[str, bytes | None]]
) -> None:
    keys, expected = filled
    store = _store(redis_url, wire)
    await store.get(keys[0])
    tasks = [asyncio.create_task(store.get(k)) for k in keys]
    for _ in range(2):
        await asyncio.sleep(0)  # the batch has formed (and usually gone out)
    await store.aclose()
    got = await asyncio.gather(*tasks)
    assert dict(zip(keys, got, strict=True)) == expected


async def test_a_silent_server_times_out_every_caller_of_a_batch() -> None:
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accept, never answer

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = RedisKeyStore.from_url(
        f"redis://127.0.0.1:{port}/0", socket_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    try:
        got = await asyncio.wait_for(
            asyncio.gather(*(store.get(f"k{i}") for i in range(16)), return_exceptions=True),
            5.0,  # a bound for a hung test, not a measurement
        )
        assert all(type(e) is BackendTimeoutError for e in got), got
    finally:
        await store.aclose()
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_batch_whose_callers_all_gave_up_is_stopped() -> None:
    # No socket timeout: only the callers' own budgets end the wait. When the last of
    # them gives up, the batch stops (its connection closed), as a lone command would.
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = RedisKeyStore.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=None)
    pipeline = store._pipeline
    assert pipeline is not None
    try:
        calls = [asyncio.create_task(store.get(f"k{i}")) for i in range(8)]
        await asyncio.sleep(0.05)
        assert pipeline._tasks  # the batch of 7 waits on the silent server
        for call in calls:
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        for _ in range(100):  # a bound for a hung test: the batch stops within a turn or two
            if not pipeline._tasks:
                break
            await asyncio.sleep(0.01)
        assert not pipeline._tasks
    finally:
        await asyncio.wait_for(store.aclose(), 5.0)  # (waits for live batches only)
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_callers_giving_up_at_random_moments_never_get_another_callers_reply(
    store: RedisKeyStore, filled: tuple[list[str], dict[str, bytes | None]]
) -> None:
    # 64 tasks x 40 lookups, three in four under a budget of 0-4 ms (seeded), the rest
    # under 1 s: many give up before the send, after it, or mid-batch. Every answer that
    # does arrive must be its own key's value, and the connections must end in step.
    import random

    keys, expected = filled
    rng = random.Random(7)
    budgets = [1.0 if rng.random() < 0.25 else rng.uniform(0, 0.004) for _ in range(64 * 40)]
    answered = gave_up = 0

    async def worker(offset: int) -> None:
        nonlocal answered, gave_up
        for i in range(40):
            key = keys[(offset * 7 + i) % len(keys)]
            try:
                value = await asyncio.wait_for(store.get(key), budgets[offset * 40 + i])
            except TimeoutError:
                gave_up += 1
                continue
            assert value == expected[key], key
            answered += 1

    await asyncio.wait_for(asyncio.gather(*(worker(n) for n in range(64))), 30.0)
    assert answered and gave_up  # both paths were taken
    await _all_in_step(store, expected)
    await _all_in_step(store, expected)
