"""RedisKeyStore and the Redis error mapper, against a real Redis server."""

from __future__ import annotations

import asyncio
import math
import secrets
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
import redis.asyncio as aredis
from redis import exceptions as rex

from llmemo.errors import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    CapabilityError,
    ConfigurationError,
    WrongTypeError,
)
from llmemo.stores.base import KeyStore
from llmemo.stores.redis._errors import map_redis_errors, translate
from llmemo.stores.redis.keystore import RedisKeyStore

from redis_server import free_port

# Upper bound for anything that should fail fast (a refused connection, a 0.2 s socket
# timeout); it only stops a hung test, it does not measure speed.
FAIL_FAST_BOUND_S = 5.0


class RecordingRedis(aredis.Redis):
    """A real client that also records every command it sends (client-side hook)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[tuple[Any, ...]] = []

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent.append(args)
        return await super().execute_command(*args, **options)


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[RecordingRedis]:
    conn = cast(RecordingRedis, RecordingRedis.from_url(redis_url))
    try:
        yield conn
    finally:
        await conn.aclose()


@pytest.fixture
async def store(client: RecordingRedis, unique_prefix: str) -> AsyncIterator[RedisKeyStore]:
    st = RedisKeyStore(client)
    try:
        yield st
    finally:
        await st.clear(unique_prefix)
        await st.aclose()


async def _command_calls(client: aredis.Redis, *names: str) -> dict[str, int]:
    stats = await client.info("commandstats")
    return {name: int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in names}


@pytest.fixture
def dead_port() -> int:
    """A loopback port nobody listens on (refused at once)."""
    return free_port()


# -- basic contract ------------------------------------------------------------------------


@pytest.mark.redis
async def test_satisfies_keystore_protocol(store: RedisKeyStore) -> None:
    assert isinstance(store, KeyStore)


@pytest.mark.redis
async def test_set_get_delete_roundtrip(store: RedisKeyStore, unique_prefix: str) -> None:
    key = f"{unique_prefix}:k"
    payload = bytes(range(256))  # not UTF-8: must come back byte for byte
    assert await store.get(key) is None
    await store.set(key, payload)
    assert await store.get(key) == payload
    assert await store.delete(key) is True
    assert await store.delete(key) is False
    assert await store.get(key) is None


@pytest.mark.redis
async def test_set_with_ttl_is_one_set_px_command(
    store: RedisKeyStore, client: RecordingRedis, unique_prefix: str
) -> None:
    key = f"{unique_prefix}:ttl"
    before = await _command_calls(client, "set", "expire", "pexpire", "setex", "psetex")
    client.sent.clear()

    await store.set(key, b"v", ttl=1.5)

    # Client side: exactly one command, SET ... PX 1500.
    assert client.sent == [("SET", key, b"v", "PX", 1500)]
    # Server side: one SET, no separate expiry command.
    after = await _command_calls(client, "set", "expire", "pexpire", "setex", "psetex")
    assert after["set"] - before["set"] == 1
    for name in ("expire", "pexpire", "setex", "psetex"):
        assert after[name] == before[name], name
    pttl = await client.pttl(key)
    assert 0 < pttl <= 1500


@pytest.mark.redis
async def test_set_without_ttl_replaces_previous_ttl(
    store: RedisKeyStore, client: RecordingRedis, unique_prefix: str
) -> None:
    key = f"{unique_prefix}:persist"
    await store.set(key, b"1", ttl=60)
    assert await client.pttl(key) > 0
    client.sent.clear()
    await store.set(key, b"2")
    assert client.sent == [("SET", key, b"2")]
    assert await client.pttl(key) == -1  # no expiry any more
    assert await store.get(key) == b"2"


@pytest.mark.redis
async def test_ttl_expires_on_the_server(store: RedisKeyStore, unique_prefix: str) -> None:
    key = f"{unique_prefix}:short"
    await store.set(key, b"soon gone", ttl=0.2)
    assert await store.get(key) == b"soon gone"
    # Poll instead of one fixed sleep: passes as soon as Redis expires the key, and the
    # bound keeps a broken TTL from hanging the test.
    for _ in range(40):
        await asyncio.sleep(0.05)
        if await store.get(key) is None:
            break
    assert await store.get(key) is None
    assert await store.get_many([key]) == [None]


@pytest.mark.redis
@pytest.mark.parametrize(
    ("ttl", "expected_px"),
    [(0.0001, 1), (0.0005, 1), (0.3, 300), (1, 1000), (2.5, 2500), (86400, 86_400_000)],
)
async def test_ttl_rounds_to_whole_milliseconds(
    store: RedisKeyStore,
    client: RecordingRedis,
    unique_prefix: str,
    ttl: float,
    expected_px: int,
) -> None:
    key = f"{unique_prefix}:px"
    client.sent.clear()
    await store.set(key, b"v", ttl=ttl)
    assert client.sent == [("SET", key, b"v", "PX", expected_px)]


@pytest.mark.parametrize("ttl", [0, 0.0, -1, -0.5, math.nan, math.inf, -math.inf, True, "1", 1e300])
async def test_invalid_ttl_is_configuration_error_without_io(dead_port: int, ttl: Any) -> None:
    # A dead port: validation must happen before any command is sent.
    st = RedisKeyStore.from_url(f"redis://127.0.0.1:{dead_port}/0")
    try:
        with pytest.raises(ConfigurationError, match="ttl"):
            await st.set("k", b"v", ttl=ttl)
    finally:
        await st.aclose()


async def test_non_bytes_value_is_rejected(dead_port: int) -> None:
    st = RedisKeyStore.from_url(f"redis://127.0.0.1:{dead_port}/0")
    try:
        with pytest.raises(TypeError, match="bytes"):
            await st.set("k", "text", ttl=None)  # type: ignore[arg-type]
    finally:
        await st.aclose()


@pytest.mark.redis
async def test_get_many_preserves_order_in_one_mget(
    store: RedisKeyStore, client: RecordingRedis, unique_prefix: str
) -> None:
    keys = [f"{unique_prefix}:m{i}" for i in range(20)]
    stored = {key: f"v{i}".encode() for i, key in enumerate(keys) if i % 3}  # gaps
    for key, value in stored.items():
        await store.set(key, value)
    wanted = [*reversed(keys), f"{unique_prefix}:absent", keys[5], keys[5]]
    expected = [stored.get(key) for key in wanted]
    assert None in expected

    client.sent.clear()
    assert await store.get_many(wanted) == expected
    assert [cmd[0] for cmd in client.sent] == ["MGET"]

    client.sent.clear()
    assert await store.get_many([]) == []
    assert client.sent == []


@pytest.mark.redis
async def test_set_replaces_value(store: RedisKeyStore, unique_prefix: str) -> None:
    key = f"{unique_prefix}:r"
    await store.set(key, b"a", ttl=10)
    await store.set(key, b"b", ttl=10)
    assert await store.get(key) == b"b"


# -- clear ---------------------------------------------------------------------------------


async def _write_foreign(client: aredis.Redis, keys: list[str]) -> None:
    for key in keys:
        await client.set(key, b"foreign", px=60_000)  # expires even if the test crashes


@pytest.mark.redis
async def test_clear_removes_only_its_prefix(
    store: RedisKeyStore, client: RecordingRedis, unique_prefix: str
) -> None:
    other = f"t-{secrets.token_hex(8)}"
    foreign = [
        f"{other}:a",
        f"{other}:{unique_prefix}:b",  # contains our prefix, but not at the start
        f"nopfx{secrets.token_hex(6)}",  # a key with no prefix at all
        unique_prefix[:-1],  # a strict prefix of our prefix
    ]
    await _write_foreign(client, foreign)
    ours = [f"{unique_prefix}:x{i}" for i in range(25)] + [unique_prefix]
    for key in ours:
        await store.set(key, b"ours", ttl=60)
    try:
        removed = await RedisKeyStore(client, scan_count=7, delete_batch=4).clear(unique_prefix)
        assert removed == len(ours)
        assert await store.get_many(ours) == [None] * len(ours)
        assert await client.exists(*foreign) == len(foreign)
        assert await store.clear(unique_prefix) == 0
    finally:
        await client.unlink(*foreign)


@pytest.mark.redis
async def test_clear_prefix_with_glob_characters_matches_literally(
    store: RedisKeyStore, client: RecordingRedis, unique_prefix: str
) -> None:
    prefix = f"{unique_prefix}:a*b?c[xy]d\\e^]"
    ours = [f"{prefix}1", f"{prefix}:2", prefix]
    # Each decoy matches the prefix when *, ?, [xy] or \ are read as glob syntax.
    decoys = [
        f"{unique_prefix}:aZZbQcxde^]1",
        f"{unique_prefix}:a*b?cxd\\e^]1",
        f"{unique_prefix}:a*bXc[xy]d\\e^]1",
        f"{unique_prefix}:a*b?c[xy]de^]1",
    ]
    for key in ours:
        await store.set(key, b"ours")
    await _write_foreign(client, decoys)

    assert await store.clear(prefix) == len(ours)
    assert await client.exists(*ours) == 0
    assert await client.exists(*decoys) == len(decoys)
    # A glob character at the end of the prefix is literal too: only the three decoys that
    # really start with "a*" go, not "aZZ...".
    assert await store.clear(f"{unique_prefix}:a*") == 3
    assert await client.exists(*decoys) == 1


async def test_clear_rejects_empty_prefix(dead_port: int) -> None:
    st = RedisKeyStore.from_url(f"redis://127.0.0.1:{dead_port}/0")
    try:
        with pytest.raises(ConfigurationError, match="prefix"):
            await st.clear("")
    finally:
        await st.aclose()


# -- wrong types, capabilities -------------------------------------------------------------


@pytest.mark.redis
async def test_wrong_type_key_raises_backend_error(
    store: RedisKeyStore, client: RecordingRedis, unique_prefix: str
) -> None:
    key = f"{unique_prefix}:hash"
    await client.hset(key, "f", "v")
    with pytest.raises(BackendError, match="GET") as info:
        await store.get(key)
    assert type(info.value) is WrongTypeError  # a BackendError the caches treat as bad data
    assert isinstance(info.value.__cause__, rex.ResponseError)
    assert "WRONGTYPE" in str(info.value.__cause__)
    # MGET reports a non-string key as missing.
    assert await store.get_many([key]) == [None]
    # SET replaces whatever type the key had; delete works on any type.
    await store.set(key, b"now a string")
    assert await store.get(key) == b"now a string"


@pytest.mark.redis
async def test_unknown_command_maps_to_capability_error(client: RecordingRedis) -> None:
    with pytest.raises(CapabilityError) as info:
        async with map_redis_errors("NOSUCH.CMD"):
            await client.execute_command("NOSUCH.CMD", "x")
    assert isinstance(info.value.__cause__, rex.ResponseError)


# -- connection handling -------------------------------------------------------------------


async def test_from_url_does_no_io_and_dead_port_is_unavailable(dead_port: int) -> None:
    st = RedisKeyStore.from_url(f"redis://127.0.0.1:{dead_port}/0", socket_connect_timeout=2)
    try:
        with pytest.raises(BackendUnavailableError) as info:
            await asyncio.wait_for(st.get("k"), FAIL_FAST_BOUND_S)
        assert isinstance(info.value.__cause__, rex.ConnectionError)
        assert isinstance(info.value, ConnectionError)  # also the builtin
        with pytest.raises(BackendUnavailableError):
            await asyncio.wait_for(st.set("k", b"v", ttl=1), FAIL_FAST_BOUND_S)
        with pytest.raises(BackendUnavailableError):
            await asyncio.wait_for(st.clear("t-x"), FAIL_FAST_BOUND_S)
    finally:
        await st.aclose()


@pytest.mark.parametrize(
    "url",
    [
        "redis://user:secret@127.0.0.1:{port}/3",
        "rediss://127.0.0.1:{port}/0",
        "unix:///nonexistent/llmemo-test.sock?db=0",
    ],
)
async def test_from_url_schemes_build_without_io(dead_port: int, url: str) -> None:
    st = RedisKeyStore.from_url(url.format(port=dead_port), socket_connect_timeout=2)
    try:
        with pytest.raises(BackendUnavailableError):
            await asyncio.wait_for(st.get("k"), FAIL_FAST_BOUND_S)
    finally:
        await st.aclose()


@pytest.fixture
async def black_hole() -> AsyncIterator[int]:
    """A loopback server that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_unanswered_command_is_backend_timeout(black_hole: int) -> None:
    st = RedisKeyStore.from_url(f"redis://127.0.0.1:{black_hole}/0", socket_timeout=0.2)
    try:
        with pytest.raises(BackendTimeoutError) as info:
            await asyncio.wait_for(st.get("k"), FAIL_FAST_BOUND_S)
        assert isinstance(info.value.__cause__, rex.TimeoutError)
        assert isinstance(info.value, TimeoutError)
    finally:
        await st.aclose()


@pytest.mark.redis
async def test_decoding_client_is_rejected(redis_url: str) -> None:
    decoding = aredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        with pytest.raises(ConfigurationError, match="decode_responses"):
            RedisKeyStore(decoding)
    finally:
        await decoding.aclose()
    with pytest.raises(ConfigurationError, match="decode_responses"):
        RedisKeyStore.from_url(redis_url, decode_responses=True)


def test_non_async_client_is_rejected() -> None:
    import redis

    sync_client = redis.Redis()  # no I/O until used
    try:
        with pytest.raises(ConfigurationError, match=r"redis\.asyncio"):
            RedisKeyStore(sync_client)  # type: ignore[arg-type]
    finally:
        sync_client.close()


@pytest.mark.redis
async def test_aclose_closes_only_an_owned_client(redis_url: str, unique_prefix: str) -> None:
    owned = RedisKeyStore.from_url(redis_url)
    await owned.set(f"{unique_prefix}:o", b"1", ttl=30)
    await owned.aclose()
    await owned.aclose()  # idempotent

    given = aredis.Redis.from_url(redis_url)
    try:
        st = RedisKeyStore(given)
        await st.aclose()
        await st.aclose()
        # The caller's client is still usable after the store is closed.
        assert await given.get(f"{unique_prefix}:o") == b"1"
        await given.unlink(f"{unique_prefix}:o")
    finally:
        await given.aclose()


# -- the error mapper without a server -----------------------------------------------------


@pytest.mark.parametrize(
    ("driver_error", "expected"),
    [
        (rex.TimeoutError("t"), BackendTimeoutError),
        (asyncio.TimeoutError(), BackendTimeoutError),
        (TimeoutError("socket"), BackendTimeoutError),
        (rex.ConnectionError("refused"), BackendUnavailableError),
        (rex.BusyLoadingError("LOADING"), BackendUnavailableError),
        (rex.AuthenticationError("bad password"), BackendUnavailableError),
        (ConnectionRefusedError(111, "refused"), BackendUnavailableError),
        (OSError("tls"), BackendUnavailableError),
        (rex.RedisClusterException("no reachable node"), BackendUnavailableError),
        (rex.SlotNotCoveredError("slot"), BackendUnavailableError),
        (rex.ClusterDownError("CLUSTERDOWN"), BackendUnavailableError),
        (rex.MasterDownError("MASTERDOWN"), BackendUnavailableError),
        (rex.TryAgainError("TRYAGAIN"), BackendUnavailableError),
        (rex.ReadOnlyError("READONLY"), BackendUnavailableError),
        (rex.ResponseError("unknown command 'FT.SEARCH', with args"), CapabilityError),
        (rex.ResponseError("ERR unknown subcommand 'X'"), CapabilityError),
        (rex.ModuleError("Error loading the extension"), CapabilityError),
        (rex.ResponseError("WRONGTYPE Operation against a key"), WrongTypeError),
        (rex.OutOfMemoryError("OOM"), BackendError),
        (rex.NoPermissionError("NOPERM"), BackendError),
        (rex.DataError("bad arg"), BackendError),
        (rex.CrossSlotTransactionError("cross slot"), BackendError),
    ],
)
def test_translate_table(driver_error: Exception, expected: type[BackendError]) -> None:
    mapped = translate(driver_error, "OP")
    assert type(mapped) is expected
    assert "OP" in str(mapped)
    with pytest.raises(expected) as info, map_redis_errors("OP"):
        raise driver_error
    assert info.value.__cause__ is driver_error


@pytest.mark.parametrize(
    "passthrough",
    [
        asyncio.CancelledError(),
        TypeError("bug"),
        KeyError("k"),
        BackendUnavailableError("already mapped"),
        ConfigurationError("bad ttl"),
    ],
)
async def test_mapper_passes_other_exceptions_through(passthrough: BaseException) -> None:
    with pytest.raises(type(passthrough)) as info:
        async with map_redis_errors("OP"):
            raise passthrough
    assert info.value is passthrough
    with pytest.raises(type(passthrough)) as info:
        with map_redis_errors("OP"):
            raise passthrough
    assert info.value is passthrough


# -- Redis Cluster -------------------------------------------------------------------------


@pytest.fixture
async def cluster_store(redis_cluster_url: str, unique_prefix: str) -> AsyncIterator[RedisKeyStore]:
    st = RedisKeyStore.from_url(redis_cluster_url, cluster=True)
    try:
        yield st
    finally:
        await st.clear(unique_prefix)
        await st.aclose()


@pytest.mark.redis
@pytest.mark.cluster
async def test_cluster_get_many_across_slots_keeps_order(
    cluster_store: RedisKeyStore, unique_prefix: str
) -> None:
    keys = [f"{unique_prefix}:c{i}" for i in range(40)]  # no hash tag: spread over slots
    stored = {key: f"v{i}".encode() for i, key in enumerate(keys) if i % 4}
    for key, value in stored.items():
        await cluster_store.set(key, value, ttl=60)
    wanted = [*reversed(keys), f"{unique_prefix}:absent"]
    assert await cluster_store.get_many(wanted) == [stored.get(key) for key in wanted]
    assert await cluster_store.get(keys[1]) == b"v1"
    assert await cluster_store.delete(keys[1]) is True
    assert await cluster_store.delete(keys[1]) is False


@pytest.mark.redis
@pytest.mark.cluster
async def test_cluster_clear_scans_every_primary(
    cluster_store: RedisKeyStore, redis_cluster_url: str, unique_prefix: str
) -> None:
    from redis.asyncio.cluster import RedisCluster

    ours = [f"{unique_prefix}:k{i}" for i in range(60)]
    for key in ours:
        await cluster_store.set(key, b"x", ttl=60)
    other = f"t-{secrets.token_hex(8)}"
    foreign = [f"{other}:k{i}" for i in range(10)]
    client = RedisCluster.from_url(redis_cluster_url)
    try:
        for key in foreign:
            await client.set(key, b"foreign", px=60_000)
        # The keys really are spread over more than one primary.
        nodes = [client.get_node_from_key(key) for key in ours]
        primaries = {node.name for node in nodes if node is not None}
        assert len(primaries) > 1
        assert await cluster_store.clear(unique_prefix) == len(ours)
        assert await cluster_store.get_many(ours) == [None] * len(ours)
        assert await client.exists(*foreign) == len(foreign)
        await client.unlink(*foreign)
    finally:
        await client.aclose()


# -- the lean runners' sends ------------------------------------------------------------------


@pytest.mark.redis
async def test_a_connection_class_hooking_sends_sees_every_lean_command(
    redis_url: str, unique_prefix: str
) -> None:
    # A send hook (tracing, counting) on the connection class is never bypassed.
    from redis.asyncio.connection import Connection

    from llmemo.stores.redis._common import command_runner, pair_runner

    sent: list[bytes] = []

    class Traced(Connection):
        async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            sent.append(command if isinstance(command, bytes) else b"".join(command))
            await super().send_packed_command(command, check_health)

    pool = aredis.ConnectionPool.from_url(redis_url, connection_class=Traced)
    client = aredis.Redis(connection_pool=pool)
    try:
        run, pair = command_runner(client), pair_runner(client)
        assert pair is not None
        key = f"{unique_prefix}:traced"
        await run("SET", key, b"v")  # the first send also connects (HELLO, SETINFO)
        sent.clear()
        assert await run("GET", key) == b"v"
        assert await pair(("GET", key), ("STRLEN", key)) == (b"v", 1)
        assert len(sent) == 2
        assert sent[0].startswith(b"*2\r\n$3\r\nGET\r\n")
        assert b"STRLEN" in sent[1]
        await run("DEL", key)
    finally:
        await client.aclose()
        await pool.aclose()


@pytest.mark.redis
@pytest.mark.parametrize("health_check_interval", [0, 1])
async def test_lean_sends_of_large_commands_wait_for_the_socket(
    redis_url: str, unique_prefix: str, health_check_interval: int
) -> None:
    # 8 MB cannot be written to a loopback socket at once: the rest is drained (under
    # redis-py's socket timeout) before the reply is read. Health-checked connections
    # take redis-py's own send.
    from llmemo.stores.redis._common import command_runner

    client = aredis.Redis.from_url(redis_url, health_check_interval=health_check_interval)
    try:
        run = command_runner(client)
        key = f"{unique_prefix}:large"
        value = secrets.token_bytes(8 * 1024 * 1024)
        for _ in range(2):
            assert await run("SET", key, value) is True
            assert await run("GET", key) == value
        assert await run("DEL", key) == 1
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_a_connection_whose_lean_write_fails_is_disconnected(
    redis_url: str, unique_prefix: str
) -> None:
    from redis.asyncio.connection import Connection

    from llmemo.stores.redis._common import command_runner

    class FailingWriter:
        def __init__(self, writer: Any) -> None:
            self._writer = writer
            self.transport = writer.transport

        def write(self, data: bytes) -> None:
            raise RuntimeError("write failed")

        def __getattr__(self, name: str) -> Any:
            return getattr(self._writer, name)

    connections: list[Any] = []

    class Breakable(Connection):  # send_packed_command not overridden: the lean path runs
        async def connect(self) -> None:
            await super().connect()
            connections.append(self)

    pool = aredis.ConnectionPool.from_url(redis_url, connection_class=Breakable)
    client = aredis.Redis(connection_pool=pool)
    try:
        run = command_runner(client)
        key = f"{unique_prefix}:breakable"
        assert await run("SET", key, b"v") is True
        (connection,) = connections
        connection._writer = FailingWriter(connection._writer)
        with pytest.raises(RuntimeError, match="write failed"):
            await run("GET", key)
        assert not connection.is_connected  # never handed out again half-written
        assert await run("GET", key) == b"v"  # a fresh connection serves the next command
        assert await run("DEL", key) == 1
    finally:
        await client.aclose()
        await pool.aclose()
