"""Checks and helpers shared by the Redis stores (key store and vector stores).

Private to :mod:`llmemo.stores.redis`. Importing it loads ``redis`` but not ``numpy``
(:func:`encode_vector` imports it on first use), so the key stores stay numpy-free.
"""

from __future__ import annotations

import hashlib
import math
import re
from binascii import crc_hqx
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import NoScriptError, ResponseError

from llmemo.config import validate_ttl
from llmemo.errors import ConfigurationError, SchemaMismatchError, WrongTypeError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from llmemo.stores.base import Vector, VectorMatch

__all__ = [
    "GLOB_SPECIAL",
    "MAX_TTL_MS",
    "NAME_RE",
    "SCHEMA_SEGMENT_RE",
    "TOKEN_RE",
    "LuaScript",
    "admin_runner",
    "check_client",
    "check_k",
    "check_max_distance",
    "check_token",
    "client_from_url",
    "command_runner",
    "encode_vector",
    "glob_escape",
    "node_name",
    "pair_runner",
    "probe_in_turn",
    "probed_payload",
    "run_script",
    "slot_tag",
    "ttl_to_ms",
    "unlink_matching",
    "validate_admin_timeout",
    "validate_name",
]

#: Store names: no glob characters (so ``clear()`` patterns stay literal) and no braces
#: (a ``{`` in the name would become the key's hash tag instead of the partition).
NAME_RE: Final = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")
SCHEMA_SEGMENT_RE: Final = re.compile(r"v[0-9]+")
#: Partition tokens and entry ids, as promised by the protocol (see stores/base.py).
TOKEN_RE: Final = re.compile(r"[0-9A-Za-z_\-]{1,256}")
#: Redis rejects PX values near LLONG_MAX; anything past ~285,000 years is a caller bug,
#: so it is reported as a configuration error instead of a server error.
MAX_TTL_MS: Final = 2**53
#: Redis glob metacharacters; a backslash makes the next character literal.
GLOB_SPECIAL: Final = frozenset("\\*?[]")


def validate_name(name: object) -> str:
    """Return a vector store's ``name``, checked (see :data:`NAME_RE`)."""
    if not isinstance(name, str) or NAME_RE.fullmatch(name) is None:
        raise ConfigurationError(f"name must be 1-128 characters of [A-Za-z0-9_.:-]; got {name!r}")
    if any(SCHEMA_SEGMENT_RE.fullmatch(segment) for segment in name.split(":")):
        # Keys are "<name>:v1:<kind>:...": a store named "a:v1:s" would live inside the
        # keys of store "a", and a clear() of one would remove the other's entries.
        raise ConfigurationError(
            f"name must not contain a ':'-separated segment like 'v1' (reserved for the key "
            f"layout); got {name!r}"
        )
    return name


def check_token(value: object, parameter: str) -> None:
    """Check a partition token or entry id (see :data:`TOKEN_RE`)."""
    if not isinstance(value, str) or TOKEN_RE.fullmatch(value) is None:
        raise ConfigurationError(
            f"{parameter} must be 1-256 characters of [0-9A-Za-z_-]; got {value!r}"
        )


def ttl_to_ms(ttl: float | None) -> int | None:
    """Validate a TTL in seconds; return whole milliseconds (>= 1) or ``None``."""
    seconds = validate_ttl(ttl)
    if seconds is None:
        return None
    # round(), not ceil(): 0.3 * 1000 is 300.00000000000006 and must stay 300 ms.
    ms = max(1, round(seconds * 1000))
    if ms > MAX_TTL_MS:
        raise ConfigurationError(f"ttl is too large for Redis: {ttl!r} seconds")
    return ms


def check_k(k: object) -> int:
    """Return ``k`` (results wanted), checked to be an integer >= 1."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ConfigurationError(f"k must be an integer >= 1; got {k!r}")
    return k


def check_max_distance(max_distance: object) -> float:
    """Return ``max_distance`` as a ``float``, checked to be a number (not NaN)."""
    if (
        not isinstance(max_distance, int | float)
        or isinstance(max_distance, bool)
        or math.isnan(max_distance)
    ):
        raise ConfigurationError(f"max_distance must be a number; got {max_distance!r}")
    return float(max_distance)


def glob_escape(text: str) -> str:
    """Escape ``text`` so that a Redis MATCH pattern matches it literally."""
    return "".join("\\" + ch if ch in GLOB_SPECIAL else ch for ch in text)


def encode_vector(vector: Vector, dtype: np.dtype[Any], dimension: int | None) -> npt.NDArray[Any]:
    """Return ``vector`` as a 1-D little-endian array of ``dtype``, checked.

    Raises:
        ConfigurationError: not 1-D, zero, or NaN/infinity (after the conversion, so a
            value too large for FLOAT16 counts as infinity).
        SchemaMismatchError: another dimension than ``dimension``.
    """
    import numpy as np

    array = np.asarray(vector, dtype=dtype)
    if array.ndim != 1 or array.size == 0:
        raise ConfigurationError("vector must be a non-empty 1-D sequence of numbers")
    if dimension is not None and array.size != dimension:
        # The store's dimension is its index's or vector set's (declared, or learned from
        # the server or the first vector): a vector of another size, e.g. after a change
        # of embedding model, does not fit what is stored there.
        raise SchemaMismatchError(
            f"vector has dimension {array.size}; this store holds {dimension}-dimensional vectors"
        )
    # One dot product checks both "non-zero" and "finite" (NaN and inf make it fail).
    square = float(np.dot(array, array))
    if not 0.0 < square < math.inf:
        if not np.all(np.isfinite(array)):
            raise ConfigurationError("vector contains NaN or infinity")
        if square == 0.0:
            raise ConfigurationError("vector is the zero vector (no cosine distance)")
        # Finite but the squared norm overflowed: harmless, the server normalises.
    return array


def validate_admin_timeout(value: object) -> float | None:
    """Check a store's ``admin_timeout`` (seconds > 0, or ``None``).

    Raises:
        ConfigurationError: naming the parameter.
    """
    if value is None:
        return None
    from llmemo.config import validate_positive_seconds

    return validate_positive_seconds(value, "admin_timeout")


def admin_runner(client: Redis | RedisCluster, timeout: float | None) -> CommandRunner:
    """A coroutine function sending one administrative command (``SCAN``, ``UNLINK``,
    ``FT.CREATE``, ...) whose reply may take up to ``timeout`` seconds, whatever the
    client's ``socket_timeout`` (which is the much shorter budget of cache calls).

    On a standalone pooled client the reply is read with ``timeout`` on a connection of
    the client's pool (as :func:`command_runner`, with the reply callbacks applied);
    with ``timeout=None``, or on a cluster or single-connection client, commands go
    through ``client.execute_command`` under the client's own socket timeout.
    """
    pool = _pooled(client)
    if pool is None or timeout is None:
        return client.execute_command
    callbacks = client.response_callbacks
    seconds = float(timeout)

    async def run(*args: Any) -> Any:
        async def send_and_read(connection: Any) -> Any:
            await connection.send_packed_command(connection.pack_command(*args))
            return await connection.read_response(timeout=seconds)

        response = await _on_connection(pool, send_and_read)
        callback = callbacks.get(args[0])
        return response if callback is None else callback(response)

    return run


async def unlink_matching(
    client: Redis | RedisCluster,
    pattern: str,
    batch_size: int,
    *,
    count: int = 1000,
    timeout: float | None = None,
    progress: Callable[[int], object] | None = None,
) -> int:
    """SCAN for ``pattern`` and UNLINK in batches; return how many keys were removed.

    ``count`` is the ``COUNT`` hint of each ``SCAN``, ``batch_size`` the keys per
    ``UNLINK``; each command's reply may take ``timeout`` seconds (see
    :func:`admin_runner`). ``progress`` is called with the running count after each
    ``UNLINK``. Driver errors propagate (the caller maps them).
    """
    removed = 0
    batch: list[bytes] = []
    run = admin_runner(client, timeout)
    lean = not isinstance(client, RedisCluster) and run is not client.execute_command

    async def unlink() -> None:
        nonlocal removed
        # The clients' own unlink() splits a batch per hash slot on a cluster.
        removed += int(await (run("UNLINK", *batch) if lean else client.unlink(*batch)))
        batch.clear()
        if progress is not None:
            progress(removed)

    if not lean:
        # The cluster client's scan_iter walks every primary (UNLINK is split per slot
        # there); both yield raw key bytes (decode_responses=False).
        async for key in client.scan_iter(match=pattern, count=count):
            batch.append(key)
            if len(batch) >= batch_size:
                await unlink()
    else:
        cursor: Any = 0
        while True:
            cursor, found = await run("SCAN", cursor, "MATCH", pattern, "COUNT", count)
            for key in found:
                batch.append(key)
                if len(batch) >= batch_size:
                    await unlink()
            if int(cursor) == 0:
                break
    if batch:
        await unlink()
    return removed


def _packed(connection: Any, commands: tuple[tuple[Any, ...], ...]) -> Any:
    """``commands`` in the Redis protocol, for ``connection.send_packed_command``.

    Arguments of type ``bytes``, ``str`` and ``int`` (all the hot paths send) are packed
    here in one pass; that is redis-py's encoding for a UTF-8 ``strict`` encoder, in a
    fraction of the time (its packer checks each argument's type in turn: ~16 us for a
    20-argument ``FT.SEARCH``). Anything else (another encoding, a float, a command name
    with a space) is left to redis-py's ``pack_commands``.
    """
    encoder = connection.encoder
    if encoder.encoding == "utf-8" and encoder.encoding_errors == "strict":
        out: list[bytes] = []
        for args in commands:
            if type(args[0]) is not str or " " in args[0]:
                break  # redis-py splits "CLIENT SETNAME"-style names
            out.append(b"*%d\r\n" % len(args))
            for arg in args:
                kind = type(arg)
                if kind is str:
                    data = arg.encode()
                elif kind is bytes:
                    data = arg
                elif kind is int:
                    data = b"%d" % arg
                else:
                    break
                out.append(b"$%d\r\n%b\r\n" % (len(data), data))
            else:
                continue
            break
        else:
            return b"".join(out)
    return connection.pack_commands(commands)


#: redis-py's own send, as imported: a connection class that replaces it keeps its hook.
_REDIS_PY_SEND: Final = AbstractConnection.send_packed_command


async def _send(connection: Any, packed: Any) -> None:
    """Send ``packed`` on ``connection`` as ``connection.send_packed_command`` does, without
    its per-send task when a write needs no waiting.

    redis-py wraps every send in ``asyncio.wait_for(..., socket_timeout)`` (5 s by default
    since redis-py 8), which on Python < 3.12 starts a task and costs an extra turn of
    the event loop per command. A command handed to a connected socket is usually
    written in full at once; only when some of it is left in the transport's buffer (a
    large command, a slow server) or the connection is closing is there anything to wait
    for, and then redis-py's own drain runs, under its timeout and error mapping.
    Connections that are not connected yet, run health checks, lack the stream writer
    this relies on, or whose class replaces ``send_packed_command`` (tracing, counting:
    such hooks are never bypassed) go through ``send_packed_command`` as before.
    """
    writer = getattr(connection, "_writer", None)
    if (
        writer is None
        or type(connection).send_packed_command is not _REDIS_PY_SEND
        or not connection.is_connected
        or connection.health_check_interval
    ):
        await connection.send_packed_command(packed)
        return
    try:
        if isinstance(packed, bytes):
            writer.write(packed)
        else:
            writer.writelines(packed)
    except BaseException:
        # As redis-py does: a connection whose write failed is not put back in use.
        await connection.disconnect(nowait=True)
        raise
    transport = writer.transport
    if transport.get_write_buffer_size() or transport.is_closing():
        await connection.send_packed_command(b"", check_health=False)


CommandRunner = Callable[..., Awaitable[Any]]
_T = TypeVar("_T")


def _pooled(client: Redis | RedisCluster) -> Any:
    """The connection pool the lean runners below may take connections from: a standalone
    ``redis.asyncio.Redis``'s, unless it is a single-connection client; else ``None``."""
    if not isinstance(client, Redis) or client.single_connection_client:
        return None
    return client.connection_pool


async def _on_connection(pool: Any, exchange: Callable[[Any], Awaitable[_T]]) -> _T:
    """Run ``exchange(connection)`` on a connection taken from ``pool`` and given back,
    under the connection's own ``retry`` policy (reconnecting before a retry, as redis-py
    does). A connection interrupted mid-reply (error, timeout, cancellation) is
    disconnected by redis-py before it returns to the pool, so no reply is ever read by
    the wrong caller."""
    connection = await pool.get_connection()
    try:

        async def reconnect(_error: Exception) -> None:
            await connection.disconnect()

        result: _T = await connection.retry.call_with_retry(lambda: exchange(connection), reconnect)
        return result
    finally:
        await pool.release(connection)


def command_runner(client: Redis | RedisCluster) -> CommandRunner:
    """A coroutine function sending one command on ``client`` and returning its reply,
    as ``client.execute_command(*args)`` does, for the stores' hot paths.

    On a standalone ``redis.asyncio.Redis`` with a connection pool (not
    ``single_connection_client``) it takes a connection from the client's pool, sends,
    reads and releases it (see :func:`_on_connection`) and applies the client's response
    callbacks: the same protocol, connection, retry and error behaviour, minus redis-py's
    per-command observability hooks and retry bookkeeping (about 10 us per command, ~10 %
    of a loopback GET). Anything else (a cluster client, a single-connection client) gets
    ``client.execute_command``.
    """
    pool = _pooled(client)
    if pool is None:
        return client.execute_command
    callbacks = client.response_callbacks

    async def run(*args: Any) -> Any:
        async def send_and_read(connection: Any) -> Any:
            await _send(connection, _packed(connection, (args,)))
            return await connection.read_response()

        response = await _on_connection(pool, send_and_read)
        callback = callbacks.get(args[0])
        return response if callback is None else callback(response)

    return run


PairRunner = Callable[..., Awaitable[tuple[Any, ...]]]


def pair_runner(client: Redis | RedisCluster) -> PairRunner | None:
    """A coroutine function sending two (or more) commands in one round trip (pipelined
    on one connection, not a transaction) and returning their raw replies in order, or
    ``None`` where that is not available (a cluster client, whose keys may live on other
    nodes; a single-connection client).

    An error reply (``ResponseError``, e.g. ``WRONGTYPE`` or ``NOSCRIPT``) is returned in
    its place, not raised, so that the other replies are still read and the connection
    stays in step; connection errors and timeouts raise, under the connection's ``retry``
    policy like :func:`command_runner`. Reply callbacks are not applied: use it for
    commands whose raw reply the caller parses.
    """
    pool = _pooled(client)
    if pool is None:
        return None

    async def run(*commands: tuple[Any, ...]) -> tuple[Any, ...]:
        async def send_and_read(connection: Any) -> tuple[Any, ...]:
            await _send(connection, _packed(connection, commands))
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(await connection.read_response())
                except ResponseError as exc:
                    replies.append(exc)
            return tuple(replies)

        return await _on_connection(pool, send_and_read)

    return run


async def probe_in_turn(
    store: Any, partition: str, entry_id: str, vector: Vector, k: int, max_distance: float
) -> tuple[bytes | WrongTypeError | None, list[VectorMatch]]:
    """``get_or_search`` in two round trips (``store.get``, then ``store.search`` when the
    entry is absent), for clients that cannot pipeline the two (a cluster)."""
    payload: bytes | WrongTypeError | None
    try:
        payload = await store.get(partition, entry_id)
    except WrongTypeError as exc:
        payload = exc
    if isinstance(payload, bytes):
        return payload, []
    return payload, await store.search(partition, vector, k=k, max_distance=max_distance)


def probed_payload(
    probe: Any, translate_error: Callable[[ResponseError], Exception]
) -> bytes | WrongTypeError | None:
    """The exact probe's reply in a pipelined ``get_or_search``: the payload, ``None``
    (absent), or the ``WrongTypeError`` of a key of another type; any other error reply
    raises (translated by ``translate_error``)."""
    if probe is None or isinstance(probe, bytes):
        return probe
    error = translate_error(probe)
    if isinstance(error, WrongTypeError):
        return error
    raise error from probe


class LuaScript:
    """A Lua script run by SHA (``EVALSHA``), sent in full (``EVAL``) on ``NOSCRIPT``."""

    __slots__ = ("sha", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    def evalsha_command(self, keys: tuple[str, ...], args: tuple[Any, ...]) -> tuple[Any, ...]:
        """The ``EVALSHA`` command running this script on ``keys`` and ``args``."""
        return ("EVALSHA", self.sha, len(keys), *keys, *args)

    def eval_command(self, keys: tuple[str, ...], args: tuple[Any, ...]) -> tuple[Any, ...]:
        """The ``EVAL`` command sending this script's text (for a server without it)."""
        return ("EVAL", self.text, len(keys), *keys, *args)


async def run_script(
    client: Redis | RedisCluster,
    script: LuaScript,
    keys: tuple[str, ...],
    args: tuple[Any, ...],
    run: CommandRunner | None = None,
) -> Any:
    """Run ``script`` in one round trip (two the first time a server sees it).

    On a cluster the script goes to the primary owning ``keys[0]``'s slot (redis-py
    routes ``EVALSHA`` by its first key, following ``MOVED``/``ASK``). Driver errors
    propagate (the caller maps them). ``run`` sends the command (default:
    ``client.execute_command``; see :func:`command_runner`).
    """
    execute = client.execute_command if run is None else run
    try:
        return await execute(*script.evalsha_command(keys, args))
    except NoScriptError:
        # Not cached on this server yet (new server, restart, failover, SCRIPT FLUSH):
        # EVAL sends the text and caches it for the next EVALSHA.
        return await execute(*script.eval_command(keys, args))


#: Hash slots of Redis Cluster.
CLUSTER_SLOTS: Final = 16384
_TAG_LENGTH: Final = 16


def slot_tag(slot: int) -> str:
    """A 16-letter hash tag (``a``/``c``) whose key slot is ``slot``; deterministic.

    ``f"...{{{slot_tag(s)}}}"`` is a key (or RediSearch index name) that lives in slot
    ``s``. Redis's CRC16 (XMODEM: no init, no final xor) is linear over GF(2) for messages
    of one length, and ``a``/``c`` differ in one bit, so the tag is the solution of a
    16 x 16 linear system (tens of microseconds), not a search.
    """
    if not isinstance(slot, int) or not 0 <= slot < CLUSTER_SLOTS:
        raise ValueError(f"slot must be in [0, {CLUSTER_SLOTS}); got {slot!r}")
    n = _TAG_LENGTH
    # An xor basis of the CRCs of "flip letter i from a to c", kept with distinct leading
    # bits (descending), each with the set of letters it flips.
    basis: list[tuple[int, int]] = []
    for i in range(n):
        flip = bytearray(n)
        flip[i] = ord("a") ^ ord("c")
        vector, letters = crc_hqx(bytes(flip), 0), 1 << i
        for bv, bl in basis:
            if vector ^ bv < vector:
                vector, letters = vector ^ bv, letters ^ bl
        if vector:
            basis.append((vector, letters))
            basis.sort(reverse=True)
    target, letters = slot ^ crc_hqx(b"a" * n, 0), 0
    for bv, bl in basis:
        if target ^ bv < target:
            target, letters = target ^ bv, letters ^ bl
    # The 16 flips span all of GF(2)^16 (checked by the tests for every slot).
    assert target == 0
    return "".join("c" if letters >> i & 1 else "a" for i in range(n))


def client_from_url(url: str, *, cluster: bool, **client_kwargs: Any) -> Redis | RedisCluster:
    """A new ``redis.asyncio`` client (standalone, or cluster from one startup node) for a
    store's ``from_url``; no I/O.

    Raises:
        ConfigurationError: ``decode_responses=True`` was passed (stores move bytes), or
            the URL's query has a parameter Redis connections do not take (such as
            ``single_connection_client``), which would fail every call; the message
            names it.
    """
    if client_kwargs.get("decode_responses"):
        raise ConfigurationError("decode_responses must be False: stores move opaque bytes")
    _check_url_query(url)
    if cluster:
        return RedisCluster.from_url(url, **client_kwargs)
    return Redis.from_url(url, **client_kwargs)


# URL query parameters redis-py's pools consume themselves (not connection arguments).
_POOL_QUERY_PARAMETERS: Final = frozenset({"db", "max_connections", "timeout"})


def _check_url_query(url: str) -> None:
    """Refuse query parameters of ``url`` that the asyncio connection of its scheme does
    not accept (redis-py hands them to every connection, which then raises ``TypeError``
    on each call)."""
    import inspect
    from urllib.parse import parse_qs, urlsplit

    from redis.asyncio import connection as aio

    try:
        parts = urlsplit(url)
    except ValueError:
        return  # redis-py reports a malformed URL itself
    names = set(parse_qs(parts.query, keep_blank_values=True))
    if not names:
        return
    kind = {"unix": aio.UnixDomainSocketConnection, "rediss": aio.SSLConnection}
    connection_class = kind.get(parts.scheme, aio.Connection)
    accepted: set[str] = set()
    for klass in connection_class.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            accepted.update(inspect.signature(init).parameters)
    unknown = sorted(names - accepted - _POOL_QUERY_PARAMETERS)
    if unknown:
        raise ConfigurationError(
            f"url has query parameter(s) {', '.join(unknown)} that Redis connections do not "
            "accept (single_connection_client is a client option: pass it to the client)"
        )


def node_name(client: object, key: str) -> str | None:
    """The name of the cluster node owning ``key`` per the client's current slot map, or
    ``None`` for a standalone client or while the map is unknown. No I/O."""
    get_node = getattr(client, "get_node_from_key", None)
    if get_node is None:
        return None
    try:
        node = get_node(key)
    except Exception:  # no slot map yet (before the first command), or not covered
        return None
    name = getattr(node, "name", None)
    return name if isinstance(name, str) else None


def check_client(client: object, owner: str) -> None:
    """Check that ``client`` is a ``redis.asyncio`` client that does not decode replies."""
    if not isinstance(client, Redis | RedisCluster):
        raise ConfigurationError(
            "client must be a redis.asyncio.Redis or redis.asyncio.cluster.RedisCluster, "
            f"got {type(client).__name__}"
        )
    if client.get_encoder().decode_responses:
        raise ConfigurationError(
            f"client must be created with decode_responses=False: {owner} moves opaque bytes"
        )
