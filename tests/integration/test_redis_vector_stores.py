"""RedisSearchVectorStore and RedisVectorSetStore against a real Redis 8 server.

What the conformance suite does not cover: index life cycle and schema checks, RESP2 and
RESP3 clients, distances against numpy, the partition pre-filter with k=1, TTL expiry
(including Redis's lazy expiry), clear() leaving foreign keys alone, round trips per
operation, and capability errors.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import numpy as np
import pytest
from redis.asyncio import Connection, Redis
from redis.exceptions import ResponseError

from llmemo.config import REDISEARCH_VECTOR_TYPES
from llmemo.errors import CapabilityError, ConfigurationError, WrongTypeError
from llmemo.stores.base import VectorStore
from llmemo.stores.redis import search as search_module
from llmemo.stores.redis.search import RedisSearchVectorStore
from llmemo.stores.redis.vectorset import RedisVectorSetStore, _vset_error

from redis_server import RedisServer, free_port

DIM = 24
P1 = "0123456789abcdef"
P2 = "fedcba9876543210"
# Upper bound on waiting for Redis to expire a key; only stops a hung test.
EXPIRY_BOUND_S = 5.0


def vectors(count: int, seed: int = 3, dim: int = DIM) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)


def cosine_distances(matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
    m = matrix.astype(np.float64)
    q = query.astype(np.float64)
    return 1.0 - (m @ q) / (np.linalg.norm(m, axis=1) * np.linalg.norm(q))


def counting_connection() -> type[Connection]:
    """A Connection class that counts writes to the socket (one per round trip)."""

    class Counting(Connection):
        sends = 0

        async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            type(self).sends += 1
            await super().send_packed_command(command, check_health)

    return Counting


async def command_calls(client: Redis) -> dict[str, int]:
    """Server-side calls per command (``INFO commandstats``), minus INFO itself."""
    stats = await client.info("commandstats")
    return {
        name.removeprefix("cmdstat_").lower(): int(value["calls"])
        for name, value in stats.items()
        if name != "cmdstat_info"
    }


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {
        name: calls - before.get(name, 0)
        for name, calls in after.items()
        if calls != before.get(name, 0)
    }


async def wait_until_gone(client: Redis, key: str) -> None:
    """Poll until Redis reports ``key`` expired (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + EXPIRY_BOUND_S
    while await client.exists(key):
        assert loop.time() < deadline, f"{key} did not expire within {EXPIRY_BOUND_S} s"
        await asyncio.sleep(0.05)


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
async def client(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Redis]:
    conn = Redis.from_url(redis_url, protocol=request.param)
    try:
        yield conn
    finally:
        await conn.aclose()


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[Redis]:
    """A separate RESP3 client for looking at the server behind the stores' backs."""
    conn = Redis.from_url(redis_url, protocol=3)
    try:
        yield conn
    finally:
        await conn.aclose()


@pytest.fixture
async def offline() -> AsyncIterator[Redis]:
    """A client of a port nobody listens on: for checks that must happen before any I/O."""
    conn = Redis(host="127.0.0.1", port=free_port())
    try:
        yield conn
    finally:
        await conn.aclose()


SearchFactory = Callable[..., RedisSearchVectorStore]
VsetFactory = Callable[..., RedisVectorSetStore]


@pytest.fixture
async def make_search(
    client: Redis, admin: Redis, unique_prefix: str
) -> AsyncIterator[SearchFactory]:
    """Build RediSearch stores (default name: the test's prefix); cleaned up afterwards."""
    names: set[str] = set()

    def make(name: str | None = None, **kwargs: Any) -> RedisSearchVectorStore:
        store = RedisSearchVectorStore(client, name or unique_prefix, **kwargs)
        names.add(store.name)
        return store

    yield make
    for name in names:
        cleanup = RedisSearchVectorStore(admin, name)
        await cleanup.clear()
        await cleanup.drop_index()


@pytest.fixture
async def make_vset(client: Redis, admin: Redis, unique_prefix: str) -> AsyncIterator[VsetFactory]:
    """Build vector-set stores (default name: the test's prefix); cleaned up afterwards."""
    names: set[str] = set()

    def make(name: str | None = None, **kwargs: Any) -> RedisVectorSetStore:
        store = RedisVectorSetStore(client, name or unique_prefix, **kwargs)
        names.add(store.name)
        return store

    yield make
    for name in names:
        await RedisVectorSetStore(admin, name).clear()


async def index_info(client: Redis, name: str) -> dict[str, Any] | None:
    """FT.INFO as a dict of str keys (RESP3 map), or None if there is no such index."""
    try:
        reply = await client.execute_command("FT.INFO", name)
    except ResponseError as exc:
        if "unknown index" in str(exc).lower():
            return None
        raise
    assert isinstance(reply, dict)  # the admin client speaks RESP3 (redis-py's default)
    return {k.decode(): v for k, v in reply.items()}


def attributes(info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for attr in info["attributes"]:
        fields = {k.decode(): v for k, v in attr.items()}
        out[fields["attribute"].decode()] = fields
    return out


# -- a private server for what the session server cannot do ----------------------------


@pytest.fixture(scope="module")
def debug_server() -> Iterator[RedisServer]:
    """Our own server with DEBUG enabled (to switch active expiry off), modules loaded."""
    server = RedisServer(extra_args=["--enable-debug-command", "local"]).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def bare_server() -> Iterator[RedisServer]:
    """Our own Redis 8 without the query engine (vector sets are built in)."""
    server = RedisServer(modules=False).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def lazy_expiry_client(debug_server: RedisServer) -> AsyncIterator[Redis]:
    """A client of the debug server with active expiry off: expired keys linger."""
    conn = Redis.from_url(debug_server.url, protocol=3)
    await conn.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", 0)
    try:
        yield conn
    finally:
        await conn.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", 1)
        await conn.aclose()


# ======================================================================================
# RediSearch
# ======================================================================================


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"algorithm": "IVF"}, "algorithm"),
        ({"dtype": "INT8"}, "dtype"),
        ({"dimension": 0}, "dimension"),
        ({"m": -1}, "m"),
        ({"ef_construction": 1.5}, "ef_construction"),
        ({"algorithm": "FLAT", "ef_runtime": 10}, "ef_runtime"),
        ({"recreate_index_on_mismatch": "yes"}, "recreate_index_on_mismatch"),
    ],
)
async def test_search_store_validates_parameters(
    offline: Redis, kwargs: dict[str, Any], parameter: str
) -> None:
    with pytest.raises(ConfigurationError, match=parameter):
        RedisSearchVectorStore(offline, "valid-name", **kwargs)


@pytest.mark.parametrize("dtype", REDISEARCH_VECTOR_TYPES)
async def test_search_store_takes_every_vector_type_in_any_case(offline: Redis, dtype: str) -> None:
    # The drop-in checks dtype against the same list before it builds a store.
    for given in (dtype, dtype.lower()):
        store = RedisSearchVectorStore(offline, "valid-name", dtype=given)
        assert store._dtype_name == dtype
        assert store._dtype.kind == "f"


@pytest.mark.parametrize(
    "name", ["", "has space", "glob*", "brace{x}", "q?", "x" * 129, "a:v1:s", "v2", "a:v1"]
)
async def test_store_names_are_checked(offline: Redis, name: str) -> None:
    with pytest.raises(ConfigurationError, match="name"):
        RedisSearchVectorStore(offline, name)
    with pytest.raises(ConfigurationError, match="name"):
        RedisVectorSetStore(offline, name)


@pytest.mark.parametrize("name", ["llmcache", "llmcache:semantic", "a.b-c_d", "v1x:xv1"])
async def test_good_store_names(offline: Redis, name: str) -> None:
    assert RedisSearchVectorStore(offline, name).name == name
    assert RedisVectorSetStore(offline, name).name == name


async def test_decoding_clients_are_refused() -> None:
    decoding = Redis(host="127.0.0.1", port=free_port(), decode_responses=True)
    try:
        with pytest.raises(ConfigurationError, match="decode_responses"):
            RedisSearchVectorStore(decoding, "x")
        with pytest.raises(ConfigurationError, match="decode_responses"):
            RedisVectorSetStore(decoding, "x")
    finally:
        await decoding.aclose()


@pytest.mark.parametrize("bad", [[0.0] * DIM, [float("nan")] + [1.0] * (DIM - 1)])
async def test_zero_and_nan_vectors_are_refused(offline: Redis, bad: list[float]) -> None:
    # Refused before any I/O (the client's port is dead).
    stores: list[VectorStore] = [
        RedisSearchVectorStore(offline, "name", dimension=DIM),
        RedisVectorSetStore(offline, "name"),
    ]
    for store in stores:
        with pytest.raises(ConfigurationError, match="vector"):
            await store.add(P1, "e", bad, b"v")
        with pytest.raises(ConfigurationError, match="vector"):
            await store.search(P1, bad)


@pytest.mark.parametrize("bad", ["", "a b", "x{y}", "a:b", "*"])
async def test_tokens_are_checked(offline: Redis, bad: str) -> None:
    stores: list[VectorStore] = [
        RedisSearchVectorStore(offline, "name"),
        RedisVectorSetStore(offline, "name"),
    ]
    for store in stores:
        with pytest.raises(ConfigurationError, match="partition"):
            await store.search(bad, vectors(1)[0])
        with pytest.raises(ConfigurationError, match="entry_id"):
            await store.add(P1, bad, vectors(1)[0], b"v")
        with pytest.raises(ConfigurationError, match="entry_id"):
            await store.get(P1, bad)


@pytest.mark.parametrize("ttl", [0, -1, float("inf"), float("nan"), True, "1"])
async def test_bad_ttl_and_k_are_refused(offline: Redis, ttl: Any) -> None:
    stores: list[VectorStore] = [
        RedisSearchVectorStore(offline, "name"),
        RedisVectorSetStore(offline, "name"),
    ]
    for store in stores:
        with pytest.raises(ConfigurationError, match="ttl"):
            await store.add(P1, "e", vectors(1)[0], b"v", ttl=ttl)
        with pytest.raises(ConfigurationError, match="k must"):
            await store.search(P1, vectors(1)[0], k=0)


@pytest.mark.redis
@pytest.mark.redisearch
async def test_index_is_created_lazily_on_first_add(
    make_search: SearchFactory, admin: Redis, unique_prefix: str
) -> None:
    store = make_search()
    assert await index_info(admin, f"{unique_prefix}:v1:ix") is None
    # A search before any add neither fails nor creates the index.
    assert await store.search(P1, vectors(1)[0], k=3) == []
    assert await index_info(admin, f"{unique_prefix}:v1:ix") is None

    await store.add(P1, "e1", vectors(1)[0], b"payload")
    info = await index_info(admin, f"{unique_prefix}:v1:ix")
    assert info is not None
    definition = {k.decode(): v for k, v in info["index_definition"].items()}
    assert definition["prefixes"] == [f"{unique_prefix}:v1:s:".encode()]
    attrs = attributes(info)
    # Only the vector and the partition TAG are indexed: no text fields, no payload.
    assert set(attrs) == {"vec", "partition"}
    vec = attrs["vec"]
    assert (vec["type"], vec["algorithm"], vec["data_type"], vec["distance_metric"]) == (
        b"VECTOR",
        b"HNSW",
        b"FLOAT16",  # the default for a new index
        b"COSINE",
    )
    assert int(vec["dim"]) == DIM
    assert attrs["partition"]["type"] == b"TAG"
    assert b"CASESENSITIVE" in attrs["partition"]["flags"]
    assert store.dimension == DIM

    # One HASH per entry, partition inside a hash tag.
    key = f"{unique_prefix}:v1:s:{{{P1}}}:e1"
    assert await admin.type(key) == b"hash"
    assert set(await admin.hkeys(key)) == {b"vec", b"partition", b"payload"}


@pytest.mark.redis
@pytest.mark.redisearch
async def test_a_float32_index_of_an_earlier_llmemo_is_adopted_by_default(
    make_search: SearchFactory, admin: Redis, unique_prefix: str
) -> None:
    # An index created before FLOAT16 became the default (FLOAT32) keeps serving a store
    # built with the defaults: no schema mismatch, vectors sent and stored as FLOAT32.
    data = vectors(3)
    old = make_search(dtype="FLOAT32")
    await old.add(P1, "e0", data[0], b"old")
    for first in ("search", "add"):
        store = make_search()
        if first == "search":
            assert [m.payload for m in await store.search(P1, data[0])] == [b"old"]
        await store.add(P1, "e1", data[1], b"new")
        assert [m.entry_id for m in await store.search(P1, data[1])] == ["e1"]
        payload, matches = await store.get_or_search(P1, "absent", data[0])
        assert payload is None and [m.payload for m in matches] == [b"old"]
        stored = await admin.hget(f"{unique_prefix}:v1:s:{{{P1}}}:e1", "vec")
        assert len(stored) == 4 * DIM
    info = await index_info(admin, f"{unique_prefix}:v1:ix")
    assert info is not None and attributes(info)["vec"]["data_type"] == b"FLOAT32"
    # A type asked for explicitly is still checked against the index.
    with pytest.raises(ConfigurationError, match="FLOAT16"):
        await make_search(dtype="FLOAT16").add(P1, "e2", data[2], b"v")


@pytest.mark.redis
@pytest.mark.redisearch
async def test_setup_creates_the_index_up_front(
    make_search: SearchFactory, admin: Redis, unique_prefix: str
) -> None:
    with pytest.raises(ConfigurationError, match="dimension"):
        await make_search().setup()
    store = make_search(algorithm="FLAT", dtype="FLOAT16")
    await store.setup(dimension=8)
    info = await index_info(admin, f"{unique_prefix}:v1:ix")
    assert info is not None
    vec = attributes(info)["vec"]
    assert (vec["algorithm"], vec["data_type"], int(vec["dim"])) == (b"FLAT", b"FLOAT16", 8)
    # A vector of another size is checked against the index, whose schema is named.
    with pytest.raises(ConfigurationError, match=r"DIM 8 .*needs \[.*DIM 9"):
        await store.add(P1, "e", vectors(1, dim=9)[0], b"v")


@pytest.mark.redis
@pytest.mark.redisearch
@pytest.mark.parametrize(
    ("kwargs", "dim", "found", "needed"),
    [
        ({"algorithm": "FLAT"}, DIM, "HNSW", "FLAT"),
        ({}, DIM + 8, f"DIM {DIM}", f"DIM {DIM + 8}"),
        ({"dtype": "FLOAT32"}, DIM, "FLOAT16", "FLOAT32"),
        ({"m": 8}, DIM, "M 16", "M 8"),
    ],
    ids=["algorithm", "dimension", "dtype", "m"],
)
async def test_schema_mismatch_names_both_schemas(
    make_search: SearchFactory,
    unique_prefix: str,
    kwargs: dict[str, Any],
    dim: int,
    found: str,
    needed: str,
) -> None:
    await make_search().add(P1, "e", vectors(1)[0], b"v")
    other = make_search(**kwargs)
    with pytest.raises(ConfigurationError) as caught:
        await other.add(P1, "e2", vectors(1, dim=dim)[0], b"v")
    message = str(caught.value)
    found_part, needed_part = message.split("this store needs")
    assert found in found_part
    assert needed in needed_part
    assert unique_prefix in message
    assert "recreate_index_on_mismatch=True" in message
    # Searching through the mismatched store fails too. A store without a declared
    # dimension adopts the index's on a search, so then it is the query that is wrong.
    with pytest.raises(ConfigurationError, match="another schema" if kwargs else "dimension"):
        await other.search(P1, vectors(1, dim=dim)[0])


@pytest.mark.redis
@pytest.mark.redisearch
async def test_a_refused_index_is_not_checked_on_every_call(
    make_search: SearchFactory, admin: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cache whose store does not fit the index fails open: lookups keep coming, each a
    # miss. Each check of the index is an FT.INFO (milliseconds of server time on a large
    # index), so a refusal stands for a while without asking the server again.
    data = vectors(4)
    await make_search().add(P1, "e", data[0], b"v")
    other = make_search(dtype="FLOAT32")

    async def index_checks(calls: int) -> int:
        before = await command_calls(admin)
        for _ in range(calls):
            with pytest.raises(ConfigurationError, match="another schema"):
                await other.search(P1, data[1])
            with pytest.raises(ConfigurationError, match="another schema"):
                await other.add(P1, "e2", data[1], b"v")
        return delta(before, await command_calls(admin)).get("ft.info", 0)

    assert await index_checks(5) == 1
    # Once the refusal is due for a recheck (here: at once), each call checks again.
    other = make_search(dtype="FLOAT32")
    monkeypatch.setattr(search_module, "_REFUSED_INDEX_RECHECK_S", 0.0)
    assert await index_checks(3) == 6
    # An index fixed behind the store's back is then picked up.
    await admin.execute_command("FT.DROPINDEX", other.index_name)
    await other.add(P1, "e2", data[1], b"v2")
    assert [m.entry_id for m in await other.search(P1, data[1])] == ["e2"]
    # setup() and drop_index() check at once, whatever the interval.
    monkeypatch.setattr(search_module, "_REFUSED_INDEX_RECHECK_S", 3600.0)
    flat = make_search(algorithm="FLAT")
    with pytest.raises(ConfigurationError, match="another schema"):
        await flat.search(P1, data[1])
    await flat.drop_index()
    await flat.add(P1, "e3", data[2], b"v3")
    assert [m.entry_id for m in await flat.search(P1, data[2])] == ["e3"]
    hnsw = make_search()
    with pytest.raises(ConfigurationError, match="another schema"):
        await hnsw.search(P1, data[3])
    await admin.execute_command("FT.DROPINDEX", hnsw.index_name)
    await hnsw.setup(dimension=DIM)
    await hnsw.add(P1, "e4", data[3], b"v4")
    assert [m.entry_id for m in await hnsw.search(P1, data[3])] == ["e4"]


@pytest.mark.redis
@pytest.mark.redisearch
async def test_recreate_on_mismatch_drops_only_the_index(
    make_search: SearchFactory, admin: Redis, unique_prefix: str
) -> None:
    data = vectors(5)
    first = make_search()
    for index, vector in enumerate(data):
        await first.add(P1, f"e{index}", vector, f"p{index}".encode())

    flat = make_search(algorithm="FLAT", recreate_index_on_mismatch=True)
    await flat.setup(dimension=DIM)
    info = await index_info(admin, f"{unique_prefix}:v1:ix")
    assert info is not None
    assert attributes(info)["vec"]["algorithm"] == b"FLAT"
    # The documents survived the drop and are indexed again (in the background).
    assert await flat.get(P1, "e3") == b"p3"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + EXPIRY_BOUND_S
    while True:
        matches = await flat.search(P1, data[3], k=5)
        if len(matches) == 5:
            break
        assert loop.time() < deadline, "documents were not re-indexed"
        await asyncio.sleep(0.05)
    assert matches[0].entry_id == "e3"


@pytest.mark.redis
@pytest.mark.redisearch
@pytest.mark.parametrize(
    ("kwargs", "tolerance"),
    [
        ({"algorithm": "HNSW", "dtype": "FLOAT32"}, 1e-5),
        ({"algorithm": "FLAT", "dtype": "FLOAT32"}, 1e-5),
        ({"algorithm": "HNSW", "dtype": "FLOAT64"}, 1e-5),
        ({"algorithm": "FLAT", "dtype": "FLOAT16"}, 5e-3),
        ({}, 5e-3),  # the default: HNSW, FLOAT16
        ({"m": 8, "ef_construction": 50, "ef_runtime": 40, "dtype": "FLOAT32"}, 1e-5),
    ],
    ids=["hnsw", "flat", "hnsw-float64", "flat-float16", "default", "hnsw-tuned"],
)
async def test_search_distances_equal_numpy_cosine_distance(
    make_search: SearchFactory, kwargs: dict[str, Any], tolerance: float
) -> None:
    store = make_search(**kwargs)
    data = vectors(30)
    for index, vector in enumerate(data):
        await store.add(P1, f"e{index}", vector, f"payload-{index}".encode())
    query = vectors(1, seed=99)[0]
    expected = cosine_distances(data, query)
    order = np.argsort(expected)
    matches = await store.search(P1, query, k=30)
    assert [m.entry_id for m in matches] == [f"e{i}" for i in order]
    for match in matches:
        index = int(match.entry_id[1:])
        assert match.distance == pytest.approx(expected[index], abs=tolerance)
        assert match.payload == f"payload-{index}".encode()
    # The raw COSINE score is already 1 - cos (no conversion in the store).
    assert 0.0 <= matches[0].distance < matches[-1].distance <= 2.0


@pytest.mark.redis
@pytest.mark.redisearch
async def test_search_max_distance_bound(make_search: SearchFactory) -> None:
    store = make_search()
    data = vectors(20)
    for index, vector in enumerate(data):
        await store.add(P1, f"e{index}", vector, b"v")
    query = vectors(1, seed=5)[0]
    distances = np.sort(cosine_distances(data, query))
    bound = float((distances[6] + distances[7]) / 2)
    assert len(await store.search(P1, query, k=20, max_distance=bound)) == 7
    assert len(await store.search(P1, query, k=3, max_distance=bound)) == 3
    assert await store.search(P1, query, k=3, max_distance=float(distances[0]) / 2) == []


@pytest.mark.redis
@pytest.mark.redisearch
async def test_search_partition_prefilter_with_k1(make_search: SearchFactory) -> None:
    store = make_search()
    query = vectors(1)[0]
    # Many vectors right next to the query in other partitions (one differs only in case),
    # and a single far one in ours: k=1 must still find ours.
    for index in range(30):
        await store.add(P2, f"near{index}", query + 0.001 * index, b"other")
    await store.add(P1.upper(), "near-upper", query, b"upper")
    await store.add(P1, "far", -query + vectors(1, seed=8)[0] * 0.1, b"ours")
    matches = await store.search(P1, query, k=1)
    assert [(m.entry_id, m.payload) for m in matches] == [("far", b"ours")]
    assert matches[0].distance > 1.5
    assert [m.entry_id for m in await store.search(P1.upper(), query, k=5)] == ["near-upper"]


@pytest.mark.redis
@pytest.mark.redisearch
async def test_search_ttl_expiry(make_search: SearchFactory, admin: Redis) -> None:
    store = make_search()
    short, persistent = vectors(2)
    await store.add(P1, "short", short, b"s", ttl=0.2)
    await store.add(P1, "persistent", persistent, b"p")
    key = f"{store.name}:v1:s:{{{P1}}}:short"
    assert 0 < await admin.pttl(key) <= 200
    assert await admin.pttl(f"{store.name}:v1:s:{{{P1}}}:persistent") == -1
    await wait_until_gone(admin, key)
    assert await store.get(P1, "short") is None
    matches = await store.search(P1, short, k=5)
    assert [m.entry_id for m in matches] == ["persistent"]
    # Replacing with ttl=None makes an entry persistent again.
    await store.add(P1, "short", short, b"s2", ttl=30)
    await store.add(P1, "short", short, b"s3")
    assert await admin.pttl(key) == -1


@pytest.mark.redis
@pytest.mark.redisearch
async def test_search_skips_expired_documents_not_yet_reclaimed(
    debug_server: RedisServer, lazy_expiry_client: Redis, unique_prefix: str
) -> None:
    """Measured on RediSearch 2.10: FT.SEARCH still lists a logically expired document.

    With active expiry off, the expired key stays in the keyspace and in the index;
    FT.SEARCH returns its row with no fields. The store must skip it and still find the
    nearest live entry with k=1.
    """
    if not debug_server.capabilities.search:
        pytest.skip("the private server could not load RediSearch")
    client = lazy_expiry_client
    store = RedisSearchVectorStore(client, unique_prefix, dtype="FLOAT32")  # raw query below
    try:
        query = vectors(1)[0]
        await store.add(P1, "expired", query, b"gone", ttl=0.05)
        await store.add(P1, "live", -query, b"here")
        await asyncio.sleep(0.2)
        raw = await client.execute_command(
            "FT.SEARCH",
            store.index_name,
            "(@partition:{$p})=>[KNN 1 @vec $blob AS dist]",
            "PARAMS", 4, "p", P1, "blob", query.tobytes(),
            "RETURN", 2, "payload", "dist", "SORTBY", "dist", "LIMIT", 0, 1, "DIALECT", 2,
        )  # fmt: skip
        [row] = raw[b"results"]
        assert row[b"id"].endswith(b":expired")
        assert not row[b"extra_attributes"]

        matches = await store.search(P1, query, k=1)
        assert [(m.entry_id, m.payload) for m in matches] == [("live", b"here")]
        assert await store.get(P1, "expired") is None
    finally:
        await store.clear()
        await store.drop_index()


@pytest.mark.redis
@pytest.mark.redisearch
async def test_search_clear_leaves_foreign_keys(
    make_search: SearchFactory, admin: Redis, unique_prefix: str
) -> None:
    store = make_search()
    neighbour = make_search(f"{unique_prefix}-2")  # a name that extends ours
    data = vectors(4)
    for index, vector in enumerate(data):
        await store.add(P1 if index % 2 else P2, f"e{index}", vector, b"v")
    await neighbour.add(P1, "n", data[0], b"n")
    foreign = {
        f"{unique_prefix}:v1:x:{{{P1}}}:abc": b"exact-cache entry",
        f"{unique_prefix}:v1:vp:{{{P1}}}:e0": b"a vector-set payload",
        f"{unique_prefix}:v1:s": b"no trailing colon",
        f"{unique_prefix}x:v1:s:{{{P1}}}:e0": b"another prefix",
        f"unprefixed-{unique_prefix}": b"no prefix at all",
    }
    for key, value in foreign.items():
        await admin.set(key, value)
    try:
        assert await store.clear() == 4
        for key, value in foreign.items():
            assert await admin.get(key) == value
        assert await neighbour.get(P1, "n") == b"n"
        # The index is still there and the store works after a clear.
        assert await index_info(admin, f"{unique_prefix}:v1:ix") is not None
        assert await store.search(P1, data[1], k=5) == []
        await store.add(P1, "again", data[1], b"again")
        assert [m.entry_id for m in await store.search(P1, data[1])] == ["again"]
    finally:
        await admin.delete(*foreign)


@pytest.mark.redis
@pytest.mark.redisearch
async def test_search_hit_and_write_are_one_round_trip_each(
    redis_url: str, admin: Redis, unique_prefix: str
) -> None:
    for protocol in (2, 3):
        counting = counting_connection()
        client = Redis.from_url(redis_url, protocol=protocol, connection_class=counting)
        store = RedisSearchVectorStore(client, unique_prefix)
        try:
            data = vectors(3)
            await store.setup(dimension=DIM)
            await client.ping()  # the connection (and its handshake) exists from here on

            counting.sends = 0
            before = await command_calls(admin)
            await store.add(P1, "e0", data[0], b"v0", ttl=60)
            after = await command_calls(admin)
            assert counting.sends == 1
            assert delta(before, after) == {"multi": 1, "hset": 1, "pexpire": 1, "exec": 1}

            # The first search of a partition also counts it and the index (to choose
            # the query plan), pipelined in the same round trip; later ones do not.
            for searches in (3, 1):
                counting.sends = 0
                before = await command_calls(admin)
                [match] = await store.search(P1, data[0], k=1)
                after = await command_calls(admin)
                assert match.payload == b"v0"
                assert counting.sends == 1
                assert delta(before, after) == {"ft.search": searches}

            counting.sends = 0
            assert await store.get(P1, "e0") == b"v0"
            assert await store.delete(P1, "e0") is True
            assert counting.sends == 2
        finally:
            await store.clear()
            await store.drop_index()
            await client.aclose()


@pytest.mark.redis
@pytest.mark.redisearch
async def test_first_search_checks_the_index_once(
    redis_url: str, admin: Redis, unique_prefix: str
) -> None:
    writer = RedisSearchVectorStore(admin, unique_prefix)
    await writer.add(P1, "e", vectors(1)[0], b"v")
    counting = counting_connection()
    client = Redis.from_url(redis_url, connection_class=counting)
    reader = RedisSearchVectorStore(client, unique_prefix)
    try:
        await client.ping()
        counting.sends = 0
        for _ in range(5):
            assert len(await reader.search(P1, vectors(1)[0])) == 1
        assert counting.sends == 6  # one FT.INFO, then one FT.SEARCH per search
        assert reader.dimension == DIM  # adopted from the index
        with pytest.raises(ConfigurationError, match="dimension"):
            await reader.search(P1, vectors(1, dim=DIM + 1)[0])
    finally:
        await writer.clear()
        await writer.drop_index()
        await client.aclose()


@pytest.mark.redis
@pytest.mark.redisearch
async def test_concurrent_first_adds_create_one_index(
    make_search: SearchFactory, admin: Redis, unique_prefix: str
) -> None:
    store = make_search()
    data = vectors(16)
    await asyncio.gather(*(store.add(P1, f"e{i}", vector, b"v") for i, vector in enumerate(data)))
    assert await index_info(admin, f"{unique_prefix}:v1:ix") is not None
    assert len(await store.search(P1, data[0], k=16)) == 16


@pytest.mark.redis
@pytest.mark.redisearch
@pytest.mark.vectorset
async def test_from_url_stores_own_their_client(redis_url: str, unique_prefix: str) -> None:
    search = RedisSearchVectorStore.from_url(redis_url, unique_prefix, algorithm="FLAT")
    vset = RedisVectorSetStore.from_url(redis_url, unique_prefix, quantization="NOQUANT")
    stores: list[RedisSearchVectorStore | RedisVectorSetStore] = [search, vset]
    try:
        for store in stores:
            await store.add(P1, "e", vectors(1)[0], b"v")
            assert [m.payload for m in await store.search(P1, vectors(1)[0])] == [b"v"]
            assert await store.clear() == 1
        await search.drop_index()
    finally:
        for store in stores:
            await store.aclose()
            await store.aclose()
    with pytest.raises(ConfigurationError, match="decode_responses"):
        RedisVectorSetStore.from_url(redis_url, unique_prefix, decode_responses=True)


async def test_search_without_query_engine_is_a_capability_error(
    bare_server: RedisServer,
) -> None:
    client = Redis.from_url(bare_server.url)
    store = RedisSearchVectorStore(client, "nomodule")
    try:
        with pytest.raises(CapabilityError, match="FT") as caught:
            await store.add(P1, "e", vectors(1)[0], b"v")
        assert isinstance(caught.value.__cause__, ResponseError)
        with pytest.raises(CapabilityError, match="query engine"):
            await store.search(P1, vectors(1)[0])
    finally:
        await client.aclose()


# ======================================================================================
# Vector sets
# ======================================================================================


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"quantization": "Q4"}, "quantization"),
        ({"dimension": -3}, "dimension"),
        ({"m": 0}, "m"),
        ({"ef_construction": "x"}, "ef_construction"),
        ({"ef_runtime": 0}, "ef_runtime"),
    ],
)
async def test_vset_store_validates_parameters(
    offline: Redis, kwargs: dict[str, Any], parameter: str
) -> None:
    with pytest.raises(ConfigurationError, match=parameter):
        RedisVectorSetStore(offline, "valid-name", **kwargs)


@pytest.mark.redis
@pytest.mark.vectorset
async def test_vset_layout_and_similarity_conversion(
    make_vset: VsetFactory, admin: Redis, unique_prefix: str
) -> None:
    store = make_vset(quantization="NOQUANT")
    data = vectors(12)
    for index, vector in enumerate(data):
        await store.add(P1, f"e{index}", vector, f"p{index}".encode(), ttl=60)
    set_key = f"{unique_prefix}:v1:vs:{{{P1}}}"
    assert await admin.type(set_key) == b"vectorset"
    assert await admin.execute_command("VCARD", set_key) == 12
    assert await admin.get(f"{unique_prefix}:v1:vp:{{{P1}}}:e4") == b"p4"

    query = vectors(1, seed=42)[0]
    raw = await admin.execute_command(
        "VSIM", set_key, "FP32", query.tobytes(), "WITHSCORES", "COUNT", 12
    )
    scores = {k.decode(): float(v) for k, v in raw.items()}  # RESP3: element -> score
    expected = cosine_distances(data, query)
    for name, score in scores.items():
        # VSIM's score is (1 + cos) / 2, so cosine distance = 2 * (1 - score).
        assert 2.0 * (1.0 - score) == pytest.approx(expected[int(name[1:])], abs=1e-5)
    matches = await store.search(P1, query, k=12)
    assert [m.entry_id for m in matches] == [f"e{i}" for i in np.argsort(expected)]
    for match in matches:
        assert match.distance == pytest.approx(2.0 * (1.0 - scores[match.entry_id]), abs=1e-9)


@pytest.mark.redis
@pytest.mark.vectorset
@pytest.mark.parametrize(
    ("kwargs", "tolerance"),
    [
        ({"quantization": "NOQUANT"}, 1e-5),
        ({"quantization": "Q8"}, 0.02),
        ({"m": 8, "ef_construction": 50, "ef_runtime": 40}, 0.02),
    ],
    ids=["noquant", "q8", "q8-tuned"],
)
async def test_vset_distances_equal_numpy_cosine_distance(
    make_vset: VsetFactory, kwargs: dict[str, Any], tolerance: float
) -> None:
    store = make_vset(**kwargs)
    data = vectors(30)
    for index, vector in enumerate(data):
        await store.add(P1, f"e{index}", vector, f"payload-{index}".encode())
    query = vectors(1, seed=99)[0]
    expected = cosine_distances(data, query)
    matches = await store.search(P1, query, k=30)
    assert len(matches) == 30
    assert [m.distance for m in matches] == sorted(m.distance for m in matches)
    for match in matches:
        index = int(match.entry_id[1:])
        assert match.distance == pytest.approx(expected[index], abs=tolerance)
        assert match.payload == f"payload-{index}".encode()
    assert matches[0].entry_id == f"e{int(np.argmin(expected))}"


@pytest.mark.redis
@pytest.mark.vectorset
async def test_vset_binary_quantization_works(make_vset: VsetFactory) -> None:
    # BIN keeps one bit per dimension: distances are coarse (measured: up to ~0.7 off at
    # 24 dimensions, ~0.18 at 384), but an identical vector is still at distance 0.
    store = make_vset(quantization="BIN")
    data = vectors(10)
    for index, vector in enumerate(data):
        await store.add(P1, f"e{index}", vector, f"p{index}".encode())
    matches = await store.search(P1, data[4], k=10)
    assert len(matches) == 10
    assert (matches[0].entry_id, matches[0].payload) == ("e4", b"p4")
    assert matches[0].distance == pytest.approx(0.0, abs=1e-6)
    assert all(0.0 <= m.distance <= 2.0 for m in matches)


@pytest.mark.redis
@pytest.mark.vectorset
async def test_vset_max_distance_bound(make_vset: VsetFactory) -> None:
    store = make_vset(quantization="NOQUANT")
    data = vectors(20)
    for index, vector in enumerate(data):
        await store.add(P1, f"e{index}", vector, b"v")
    query = vectors(1, seed=5)[0]
    distances = np.sort(cosine_distances(data, query))
    bound = float((distances[6] + distances[7]) / 2)
    assert len(await store.search(P1, query, k=20, max_distance=bound)) == 7
    assert len(await store.search(P1, query, k=3, max_distance=bound)) == 3
    assert await store.search(P1, query, k=3, max_distance=float(distances[0]) / 2) == []
    # Exactly at the bound (as the store reports it) is still inside.
    [nearest] = await store.search(P1, query, k=1)
    assert await store.search(P1, query, k=1, max_distance=nearest.distance) == [nearest]


@pytest.mark.redis
@pytest.mark.vectorset
async def test_vset_partition_prefilter_with_k1(make_vset: VsetFactory) -> None:
    store = make_vset()
    query = vectors(1)[0]
    for index in range(30):
        await store.add(P2, f"near{index}", query + 0.001 * index, b"other")
    await store.add(P1.upper(), "near-upper", query, b"upper")
    await store.add(P1, "far", -query + vectors(1, seed=8)[0] * 0.1, b"ours")
    matches = await store.search(P1, query, k=1)
    assert [(m.entry_id, m.payload) for m in matches] == [("far", b"ours")]
    assert matches[0].distance > 1.5
    assert [m.entry_id for m in await store.search(P1.upper(), query, k=5)] == ["near-upper"]


@pytest.mark.redis
@pytest.mark.vectorset
async def test_vset_ttl_expiry_removes_dead_elements(
    make_vset: VsetFactory, admin: Redis, unique_prefix: str
) -> None:
    store = make_vset()
    data = vectors(12)
    # Ten short-lived entries right around the query, one live entry far away.
    query = data[0]
    for index in range(10):
        await store.add(P1, f"short{index}", query + 0.01 * data[index + 1], b"s", ttl=0.2)
    await store.add(P1, "live", -query, b"live")
    set_key = f"{unique_prefix}:v1:vs:{{{P1}}}"
    await wait_until_gone(admin, f"{unique_prefix}:v1:vp:{{{P1}}}:short9")
    assert await admin.execute_command("VCARD", set_key) == 11  # elements cannot expire
    matches = await store.search(P1, query, k=1)
    assert [m.entry_id for m in matches] == ["live"]
    # The search removed every dead element it met on the way.
    assert await admin.execute_command("VCARD", set_key) == 1
    assert await store.get(P1, "short0") is None


@pytest.mark.redis
@pytest.mark.vectorset
async def test_vset_set_ttl_follows_the_longest_lived_element(
    make_vset: VsetFactory, admin: Redis, unique_prefix: str
) -> None:
    store = make_vset()
    data = vectors(5)
    set_key = f"{unique_prefix}:v1:vs:{{{P1}}}"
    payload_key = f"{unique_prefix}:v1:vp:{{{P1}}}:a"
    await store.add(P1, "a", data[0], b"a", ttl=100)
    assert 99_000 < await admin.pttl(set_key) <= 100_000
    assert 99_000 < await admin.pttl(payload_key) <= 100_000
    await store.add(P1, "b", data[1], b"b", ttl=1000)
    assert 999_000 < await admin.pttl(set_key) <= 1_000_000
    await store.add(P1, "c", data[2], b"c", ttl=10)  # shorter: the set keeps its TTL
    assert 999_000 < await admin.pttl(set_key) <= 1_000_000
    await store.add(P1, "d", data[3], b"d")  # persistent element: persistent set
    assert await admin.pttl(set_key) == -1
    await store.add(P1, "e", data[4], b"e", ttl=10)
    assert await admin.pttl(set_key) == -1
    # Replacing an entry with ttl=None makes its payload persistent.
    await store.add(P1, "a", data[0], b"a2")
    assert await admin.pttl(payload_key) == -1


@pytest.mark.redis
@pytest.mark.vectorset
async def test_vset_search_on_lazily_expired_payloads(
    lazy_expiry_client: Redis, unique_prefix: str
) -> None:
    client = lazy_expiry_client
    store = RedisVectorSetStore(client, unique_prefix)
    try:
        query = vectors(1)[0]
        await store.add(P1, "expired", query, b"gone", ttl=0.05)
        await store.add(P1, "live", -query, b"here")
        keys_before = await client.dbsize()
        await asyncio.sleep(0.2)
        # The payload key lingers (active expiry is off: DBSIZE does not drop) but reads
        # as missing.
        assert await client.dbsize() == keys_before
        matches = await store.search(P1, query, k=1)
        assert [(m.entry_id, m.payload) for m in matches] == [("live", b"here")]
        assert await store.get(P1, "expired") is None
    finally:
        await store.clear()


@pytest.mark.redis
@pytest.mark.vectorset
async def test_vset_dimension_and_quantization_mismatch(make_vset: VsetFactory) -> None:
    await make_vset().add(P1, "e", vectors(1)[0], b"v")
    # A fresh store (no dimension learned yet) meets the existing set's dimension.
    with pytest.raises(ConfigurationError, match="dimension"):
        await make_vset().add(P1, "x", vectors(1, dim=DIM + 2)[0], b"v")
    with pytest.raises(ConfigurationError, match="dimension"):
        await make_vset().search(P1, vectors(1, dim=DIM + 2)[0])
    with pytest.raises(ConfigurationError, match="quantization"):
        await make_vset(quantization="NOQUANT").add(P1, "x", vectors(1)[0], b"v")
    # Another partition is another set; the learned dimension still applies.
    store = make_vset()
    await store.add(P2, "e", vectors(1)[0], b"v")
    with pytest.raises(ConfigurationError, match="dimension"):
        await store.add("other", "e", vectors(1, dim=DIM + 2)[0], b"v")


@pytest.mark.redis
@pytest.mark.vectorset
async def test_vset_clear_leaves_foreign_keys(
    make_vset: VsetFactory, make_search: SearchFactory, admin: Redis, unique_prefix: str
) -> None:
    store = make_vset()
    neighbour = make_vset(f"{unique_prefix}-2")
    data = vectors(4)
    for index, vector in enumerate(data):
        await store.add(P1 if index % 2 else P2, f"e{index}", vector, b"v")
    await neighbour.add(P1, "n", data[0], b"n")
    foreign = {
        f"{unique_prefix}:v1:x:{{{P1}}}:abc": b"exact-cache entry",
        f"{unique_prefix}:v1:s:{{{P1}}}:e0": b"looks like a RediSearch entry",
        f"{unique_prefix}:v1:vx:{{{P1}}}:e0": b"another kind",
        f"{unique_prefix}x:v1:vp:{{{P1}}}:e0": b"another prefix",
        f"unprefixed-{unique_prefix}": b"no prefix at all",
    }
    for key, value in foreign.items():
        await admin.set(key, value)
    try:
        assert await store.clear() == 4
        for key, value in foreign.items():
            assert await admin.get(key) == value
        assert await neighbour.get(P1, "n") == b"n"
        assert await admin.keys(f"{unique_prefix}:v1:v[sp]:*") == []
    finally:
        await admin.delete(*foreign)


@pytest.mark.redis
@pytest.mark.vectorset
async def test_vset_hit_and_write_are_one_round_trip_each(
    redis_url: str, admin: Redis, unique_prefix: str
) -> None:
    for protocol in (2, 3):
        counting = counting_connection()
        client = Redis.from_url(redis_url, protocol=protocol, connection_class=counting)
        store = RedisVectorSetStore(client, unique_prefix)
        try:
            data = vectors(3)
            # Warm-up: the first use of each script on a server may need EVAL.
            await store.add(P1, "warm", data[1], b"w")
            await store.search(P1, data[1])

            counting.sends = 0
            before = await command_calls(admin)
            await store.add(P1, "e0", data[0], b"v0", ttl=60)
            after = await command_calls(admin)
            assert counting.sends == 1
            assert delta(before, after).get("evalsha") == 1
            assert "eval" not in delta(before, after)

            counting.sends = 0
            before = await command_calls(admin)
            [match] = await store.search(P1, data[0], k=1)
            after = await command_calls(admin)
            assert match.payload == b"v0"
            assert counting.sends == 1
            # EVALSHA is the one command on the wire; VSIM and GET run inside it.
            assert delta(before, after) == {"evalsha": 1, "vsim": 1, "get": 1}

            counting.sends = 0
            assert await store.get(P1, "e0") == b"v0"
            assert await store.delete(P1, "e0") is True
            assert counting.sends == 2
        finally:
            await store.clear()
            await client.aclose()


@pytest.mark.redis
@pytest.mark.vectorset
async def test_vset_scripts_survive_a_script_flush(
    lazy_expiry_client: Redis, unique_prefix: str
) -> None:
    # On the private server: SCRIPT FLUSH empties the server-wide script cache.
    client = lazy_expiry_client
    store = RedisVectorSetStore(client, unique_prefix)
    try:
        await store.add(P1, "e", vectors(1)[0], b"v")
        await client.script_flush()
        await store.add(P1, "f", vectors(1, seed=4)[0], b"w")
        await client.script_flush()
        assert [m.entry_id for m in await store.search(P1, vectors(1)[0])] == ["e"]
    finally:
        await store.clear()


@pytest.mark.parametrize(
    "message",
    [
        "unknown command 'VADD', with args beginning with: 'k'",
        "Unknown Redis command called from script script: abc, on @user_script:3.",
    ],
)
def test_missing_vector_sets_are_a_capability_error(message: str) -> None:
    # Vector sets are built into every Redis 8 and cannot be switched off, so the
    # translation is checked on the server's own error texts.
    error = _vset_error(ResponseError(message), "VSIM")
    assert isinstance(error, CapabilityError)
    assert "Redis 8" in str(error)


# ======================================================================================
# Both
# ======================================================================================


@pytest.mark.redis
@pytest.mark.redisearch
@pytest.mark.vectorset
async def test_both_stores_are_vector_stores_and_share_a_prefix_safely(
    make_search: SearchFactory, make_vset: VsetFactory
) -> None:
    search, vset = make_search(), make_vset()
    stores: list[VectorStore] = [search, vset]
    assert all(isinstance(store, VectorStore) for store in stores)
    data = vectors(2)
    await search.add(P1, "s", data[0], b"search")
    await vset.add(P1, "v", data[1], b"vset")
    assert await vset.clear() == 1
    assert await search.get(P1, "s") == b"search"
    assert await search.clear() == 1


# -- get_or_search: the exact probe and the vector query in one round trip ---------------

BOTH_BACKENDS = pytest.mark.parametrize(
    "backend",
    [
        pytest.param("redisearch", marks=[pytest.mark.redis, pytest.mark.redisearch]),
        pytest.param("vectorset", marks=[pytest.mark.redis, pytest.mark.vectorset]),
    ],
)


@BOTH_BACKENDS
async def test_get_or_search_returns_the_entry_else_the_search(
    backend: str,
    make_search: SearchFactory,
    make_vset: VsetFactory,
    admin: Redis,
    redis_url: str,
) -> None:
    store: Any = make_search() if backend == "redisearch" else make_vset()
    data = vectors(4)
    for i in range(3):
        await store.add(P1, f"e{i}", data[i], f"v{i}".encode(), ttl=60)
    assert await store.search(P1, data[3], k=2)  # the index is known from here on

    # Present: its payload (whatever the search found).
    payload, _ = await store.get_or_search(P1, "e1", data[3], k=2)
    assert payload == b"v1"
    # Absent: the same matches as search().
    payload, matches = await store.get_or_search(P1, "absent", data[3], k=2, max_distance=2.0)
    assert payload is None
    assert matches == await store.search(P1, data[3], k=2, max_distance=2.0)
    assert len(matches) == 2
    # Another partition sees none of it.
    assert await store.get_or_search(P2, "e1", data[1], k=2) == (None, [])

    # One round trip on a fresh client, commands counted server-side.
    counting = counting_connection()
    client = Redis.from_url(redis_url, connection_class=counting)
    other: Any = (
        RedisSearchVectorStore(client, store.name)
        if backend == "redisearch"
        else RedisVectorSetStore(client, store.name)
    )
    try:
        await other.search(P1, data[3], k=1)  # learns the index; loads the script
        counting.sends = 0
        before = await command_calls(admin)
        payload, matches = await other.get_or_search(P1, "absent", data[0], k=1)
        after = await command_calls(admin)
        assert payload is None and matches[0].entry_id == "e0"
        assert counting.sends == 1
        expected = (
            {"hget": 1, "ft.search": 1}
            if backend == "redisearch"
            else {"get": 2, "evalsha": 1, "vsim": 1}  # the probe's GET, the script's
        )
        assert {k: v for k, v in delta(before, after).items() if k in expected} == expected
    finally:
        await client.aclose()


@BOTH_BACKENDS
async def test_get_or_search_reports_a_foreign_key_and_a_fresh_script_loads(
    backend: str, make_search: SearchFactory, make_vset: VsetFactory, admin: Redis
) -> None:
    store: Any = make_search() if backend == "redisearch" else make_vset()
    data = vectors(2)
    await store.add(P1, "e0", data[0], b"v0", ttl=60)
    assert await store.search(P1, data[0], k=1)
    key = (
        store._key(P1, "intruder")
        if backend == "redisearch"
        else store._payload_key(P1, "intruder")
    )
    await admin.rpush(key, "not an entry")  # another Redis type where an entry could be
    try:
        payload, matches = await store.get_or_search(P1, "intruder", data[0], k=1)
        assert isinstance(payload, WrongTypeError)  # in the payload's place; matches valid
        assert [m.payload for m in matches] == [b"v0"]
        if backend == "vectorset":
            await admin.script_flush()  # NOSCRIPT on the pipelined EVALSHA: sent in full
            before = await admin.info("commandstats")
            payload, matches = await store.get_or_search(P1, "absent", data[0], k=1)
            assert payload is None and [m.payload for m in matches] == [b"v0"]
            after = await admin.info("commandstats")

            def tried(name: str) -> int:  # executed (failed ones too) or refused before
                stats = [s.get(f"cmdstat_{name}", {}) for s in (before, after)]
                return sum(
                    int(stats[1].get(f, 0)) - int(stats[0].get(f, 0))
                    for f in ("calls", "rejected_calls")
                )

            assert (tried("evalsha"), tried("eval")) == (1, 1)  # no second EVALSHA
    finally:
        await admin.delete(key)
