"""A :class:`~llmemo.stores.base.VectorStore` on Redis 8 vector sets (``VADD``/``VSIM``).

No module needed: vector sets are built into Redis 8. Layout (``name`` is the store's
name):

* one vector set per partition at ``<name>:v1:vs:{<partition>}``; elements are entry ids,
  vectors quantized ``Q8`` by default (``NOQUANT`` / ``BIN`` on request);
* one string per entry at ``<name>:v1:vp:{<partition>}:<entry_id>`` holding the payload,
  written with ``SET … PX`` so the entry's TTL is the payload key's TTL.

The partition sits inside ``{}`` in both keys, so a partition's set and payloads share a
cluster hash slot and the server-side scripts below touch one slot only.

Why scripts: a vector-set element cannot expire and ``VSIM`` cannot fetch another key, so
a lookup is a Lua script (``EVALSHA``, one round trip) that runs ``VSIM`` and ``GET``\\ s
the payload of each candidate; a candidate whose payload key is gone has expired, so the
script removes it from the set (``VREM``) and moves on. Writes are a script too, because
the set's own TTL depends on its current one (see :class:`RedisVectorSetStore`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Final, cast

import numpy as np
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, ResponseError

from llmemo.config import validate_optional_positive_int
from llmemo.errors import (
    BackendError,
    CapabilityError,
    ConfigurationError,
    SchemaMismatchError,
    WrongTypeError,
)
from llmemo.stores.base import Vector, VectorMatch
from llmemo.stores.redis._common import (
    LuaScript,
    admin_runner,
    check_client,
    check_k,
    check_max_distance,
    check_token,
    client_from_url,
    command_runner,
    encode_vector,
    glob_escape,
    node_name,
    pair_runner,
    probe_in_turn,
    probed_payload,
    run_script,
    ttl_to_ms,
    validate_admin_timeout,
    validate_name,
)
from llmemo.stores.redis._errors import (
    DRIVER_ERRORS,
    REPLY_SHAPE_ERRORS,
    malformed_reply,
    map_redis_errors,
    translate,
)

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["RedisVectorSetStore"]

_QUANTIZATIONS: Final = ("Q8", "NOQUANT", "BIN")
# VADD FP32 takes little-endian IEEE float32, whatever the host's byte order.
_FP32: Final[np.dtype[Any]] = np.dtype("<f4")
#: Most stale elements one search removes before it answers with what it found; the next
#: search goes on with the cleanup. Bounds the time a script holds the server.
_MAX_REMOVALS_PER_SEARCH: Final = 1000
# EPSILON is a lower bound on similarity computed by the server in float; a hair of slack
# keeps a candidate exactly at max_distance, which is then checked exactly in Python.
_EPSILON_SLACK: Final = 1e-6


# KEYS: vector set, payload key. ARGV: FP32 blob, entry id, payload, TTL in ms ("" for
# none), then the VADD options (quantization, M, EF).
_ADD: Final = LuaScript(
    """
local existed = redis.call('EXISTS', KEYS[1])
redis.call('VADD', KEYS[1], 'FP32', ARGV[1], ARGV[2], unpack(ARGV, 5))
local ttl = tonumber(ARGV[4])
if ttl then
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ttl)
  -- The set lives as long as its longest-lived element: extend its TTL, never shorten it,
  -- and never put one on a set that already holds a persistent element.
  local left = redis.call('PTTL', KEYS[1])
  if existed == 0 or (left >= 0 and left < ttl) then
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
else
  redis.call('SET', KEYS[2], ARGV[3])
  redis.call('PERSIST', KEYS[1])
end
return 1
"""
)

# KEYS: vector set. ARGV: FP32 blob, k, payload key prefix, EPSILON ("" for none), EF (""
# for default), most removals. Returns a flat array: id, score, payload, id, score, ...
_SEARCH: Final = LuaScript(
    """
local k = tonumber(ARGV[2])
local budget = tonumber(ARGV[6])
local args = {'VSIM', KEYS[1], 'FP32', ARGV[1], 'WITHSCORES', 'COUNT', k}
if ARGV[4] ~= '' then
  args[#args + 1] = 'EPSILON'
  args[#args + 1] = ARGV[4]
end
if ARGV[5] ~= '' then
  args[#args + 1] = 'EF'
  args[#args + 1] = ARGV[5]
end
local removed = 0
while true do
  local count = args[7]
  local found = redis.call(unpack(args))
  local out = {}
  local stale = 0
  for i = 1, #found, 2 do
    local payload = redis.pcall('GET', ARGV[3] .. found[i])
    if type(payload) == 'table' and payload.err then
      -- Another Redis type sits where the payload should be: not an entry of ours.
      -- Skip it (and leave it alone); the other candidates may still serve.
    elseif payload then
      out[#out + 1] = found[i]
      out[#out + 1] = found[i + 1]
      out[#out + 1] = payload
      if #out == 3 * k then
        return out
      end
    else
      -- The payload key expired (or was deleted): the element is dead, drop it.
      redis.call('VREM', KEYS[1], found[i])
      stale = stale + 1
    end
  end
  removed = removed + stale
  if stale == 0 or #found < 2 * count or removed >= budget then
    return out
  end
  -- Dead elements took places among the nearest: ask again for more candidates.
  args[7] = count * 2
end
"""
)


def _vset_error(exc: BaseException, operation: str) -> BackendError:
    if isinstance(exc, ResponseError):
        message = str(exc).lower()
        if "unknown command" in message or "unknown redis command" in message:
            error: BackendError = CapabilityError(
                f"Redis {operation} needs vector sets (VADD/VSIM, Redis 8 or later), which "
                f"this server does not have. Server said: {exc}"
            )
            return error
        # A vector set on the server that does not fit this store's vectors (another
        # embedding model wrote it): a backend fault the caches fail open on.
        if "dimension mismatch" in message:
            return SchemaMismatchError(
                f"the vector's dimension differs from the stored vector set's: {exc}"
            )
        if "quantization mismatch" in message:
            return SchemaMismatchError(
                f"quantization differs from the one the stored vector set was created with: {exc}"
            )
    return translate(exc, operation)


class RedisVectorSetStore:
    """Vectors with payloads in Redis 8 vector sets, one set per partition.

    Round trips: :meth:`search` is one ``EVALSHA`` (``VSIM`` plus a ``GET`` per candidate,
    server-side); :meth:`add` is one ``EVALSHA`` (``VADD`` + ``SET … PX`` + the set's TTL,
    atomically); :meth:`get` one ``GET``; :meth:`delete` one ``MULTI``/``VREM``/``UNLINK``/
    ``EXEC``. The first use of a script on a server costs one extra ``EVAL``.

    Distances: ``VSIM`` reports a similarity ``score`` in ``[0, 1]`` (1 = same direction);
    the store returns the cosine distance ``2 * (1 - score)``. With ``Q8`` (default) or
    ``BIN`` quantization the scores, hence distances, are approximations; ``NOQUANT``
    gives float32-exact ones. ``max_distance`` is passed to ``VSIM`` as ``EPSILON`` and
    checked again exactly. HNSW search is approximate.

    Expiry: an entry lives as long as its payload key (``SET … PX``, server clock), so an
    expired entry is never returned. Vector-set elements cannot expire: a search that meets
    an element whose payload is gone removes it (``VREM``) and fetches further candidates
    (at most 1000 removals per search). The set's own key gets the TTL of its longest-lived
    element (extended on each write, never shortened; persistent as soon as it holds a
    persistent element), so a partition nobody writes any more disappears with its last
    entry even if nobody searches it.

    Errors: as :class:`~llmemo.stores.redis.search.RedisSearchVectorStore`; a server
    without vector sets raises :class:`~llmemo.errors.CapabilityError`; a vector whose
    dimension differs from the store's (or from an existing set's), or a set of another
    quantization, raises :class:`~llmemo.errors.SchemaMismatchError` (a backend fault the
    caches fail open on; also a ``ConfigurationError``).

    Cluster: both scripts touch keys of one partition only, all in the set key's hash slot
    (``{<partition>}``). The search script builds the payload keys of its candidates
    itself (they cannot be known in advance), so they are not declared in ``KEYS``; Redis
    Cluster runs such same-slot scripts, but a proxy that routes scripts by declared keys
    only would need them declared. The search script writes (``VREM`` of dead elements),
    so it cannot run on a read-only replica once it meets an expired element.

    Loop affinity: a ``redis.asyncio`` client belongs to the event loop that first used it;
    use the store on that loop only. RESP2 and RESP3 clients both work
    (``decode_responses=False``).

    Args:
        client: A ready ``redis.asyncio.Redis`` (or ``RedisCluster``) with
            ``decode_responses=False``. The store does not close a client it was given.
        name: Key-prefix root (1-128 characters of ``[A-Za-z0-9_.:-]``).
        dimension: Vector dimension, or ``None`` to learn it from the first vector.
        quantization: ``"Q8"`` (default), ``"NOQUANT"`` (float32) or ``"BIN"``; fixed per
            vector set when it is created.
        m: HNSW links per node (``VADD … M``), or ``None`` for the server default.
        ef_construction: ``VADD … EF`` (build exploration factor), or ``None``.
        ef_runtime: ``VSIM … EF`` (search exploration factor), or ``None``.
        admin_timeout: Seconds each command of :meth:`clear` may take, instead of the
            client's ``socket_timeout``; ``None``: the socket timeout.

    Raises:
        ConfigurationError: A parameter is invalid (the message names it).
    """

    __slots__ = (
        "_add_options",
        "_admin_timeout",
        "_client",
        "_closed",
        "_command",
        "_dimension",
        "_ef_runtime",
        "_name",
        "_owns_client",
        "_pair",
        "_payload_root",
        "_quantization",
        "_set_root",
    )

    def __init__(
        self,
        client: Redis | RedisCluster,
        name: str,
        *,
        dimension: int | None = None,
        quantization: str = "Q8",
        m: int | None = None,
        ef_construction: int | None = None,
        ef_runtime: int | None = None,
        admin_timeout: float | None = None,
    ) -> None:
        check_client(client, type(self).__name__)
        self._name = validate_name(name)
        self._admin_timeout = validate_admin_timeout(admin_timeout)
        if not isinstance(quantization, str) or quantization.upper() not in _QUANTIZATIONS:
            raise ConfigurationError(
                f"quantization must be 'Q8', 'NOQUANT' or 'BIN'; got {quantization!r}"
            )
        self._quantization = quantization.upper()
        self._dimension = validate_optional_positive_int(dimension, parameter="dimension")
        m = validate_optional_positive_int(m, parameter="m")
        ef_construction = validate_optional_positive_int(
            ef_construction, parameter="ef_construction"
        )
        ef = validate_optional_positive_int(ef_runtime, parameter="ef_runtime")
        options: list[str] = [self._quantization]
        if m is not None:
            options += ["M", str(m)]
        if ef_construction is not None:
            options += ["EF", str(ef_construction)]
        self._add_options = tuple(options)
        self._ef_runtime = "" if ef is None else str(ef)
        self._client = client
        self._command = command_runner(client)
        self._pair = pair_runner(client)
        self._set_root = f"{self._name}:v1:vs:"
        self._payload_root = f"{self._name}:v1:vp:"
        self._owns_client = False
        self._closed = False

    @classmethod
    def from_url(cls, url: str, name: str, *, cluster: bool = False, **kwargs: Any) -> Self:
        """Build a store with its own ``redis.asyncio.Redis`` from ``url``; no I/O yet.

        Keyword arguments that :class:`RedisVectorSetStore` accepts go to the store; the
        rest to ``Redis.from_url`` (``RedisCluster.from_url`` with ``cluster=True``, the
        URL naming one node). :meth:`aclose` closes the client.
        """
        store_keys = {
            "dimension",
            "quantization",
            "m",
            "ef_construction",
            "ef_runtime",
            "admin_timeout",
        }
        store_kwargs = {k: v for k, v in kwargs.items() if k in store_keys}
        client_kwargs = {k: v for k, v in kwargs.items() if k not in store_keys}
        client = client_from_url(url, cluster=cluster, **client_kwargs)
        store = cls(client, name, **store_kwargs)
        store._owns_client = True
        return store

    @property
    def name(self) -> str:
        """The key-prefix root."""
        return self._name

    @property
    def dimension(self) -> int | None:
        """The vector dimension, once declared or learned from a vector."""
        return self._dimension

    @property
    def client(self) -> Redis | RedisCluster:
        """The redis-py client this store uses."""
        return self._client

    def node_of_partition(self, partition: str) -> str | None:
        """The cluster node owning ``partition``'s vector set (``None`` when standalone):
        caches keep one circuit breaker per node."""
        return node_name(self._client, self._set_key(partition))

    def _set_key(self, partition: str) -> str:
        return f"{self._set_root}{{{partition}}}"

    def _payload_key(self, partition: str, entry_id: str) -> str:
        return f"{self._payload_root}{{{partition}}}:{entry_id}"

    async def _run(self, script: LuaScript, keys: tuple[str, ...], args: tuple[Any, ...]) -> Any:
        """Run ``script`` in one round trip (two the first time a server sees it)."""
        return await run_script(self._client, script, keys, args, self._command)

    async def add(
        self,
        partition: str,
        entry_id: str,
        vector: Vector,
        payload: bytes,
        *,
        ttl: float | None = None,
    ) -> None:
        """Insert or replace an entry: ``VADD`` + ``SET … PX`` in one atomic script.

        Args:
            partition: Partition token (``[0-9A-Za-z_-]``).
            entry_id: Entry id (``[0-9A-Za-z_-]``).
            vector: Non-zero, finite; its dimension must match the store's.
            payload: Opaque bytes.
            ttl: Seconds (> 0, rounded to whole ms, at least 1 ms) or ``None`` (no expiry;
                replaces a previous TTL).

        Raises:
            ConfigurationError: Bad token, TTL or vector.
            SchemaMismatchError: A vector set of this partition exists with another
                dimension or quantization, or the vector is not of the store's dimension.
            CapabilityError: The server has no vector sets.
            BackendError: The server failed (subclasses for unreachable / timed out).
        """
        check_token(partition, "partition")
        check_token(entry_id, "entry_id")
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise TypeError(f"payload must be bytes, got {type(payload).__name__}")
        ttl_ms = ttl_to_ms(ttl)
        array = encode_vector(vector, _FP32, self._dimension)
        keys = (self._set_key(partition), self._payload_key(partition, entry_id))
        args = (array.tobytes(), entry_id, payload, "" if ttl_ms is None else ttl_ms)
        try:
            await self._run(_ADD, keys, args + self._add_options)
        except DRIVER_ERRORS as exc:
            raise _vset_error(exc, "VADD") from exc
        if self._dimension is None:
            self._dimension = int(array.size)

    async def get(self, partition: str, entry_id: str) -> bytes | None:
        """Return the payload of one live entry (one ``GET``), or ``None``."""
        check_token(partition, "partition")
        check_token(entry_id, "entry_id")
        with map_redis_errors("GET"):
            value = await self._command("GET", self._payload_key(partition, entry_id))
        # This client never decodes (checked in __init__): replies are bytes.
        return cast("bytes | None", value)

    async def search(
        self,
        partition: str,
        vector: Vector,
        *,
        k: int = 1,
        max_distance: float = 2.0,
    ) -> list[VectorMatch]:
        """Return up to ``k`` nearest live entries of ``partition``, nearest first.

        One ``EVALSHA``: ``VSIM`` on the partition's set (``EPSILON`` from
        ``max_distance``), payloads fetched server-side, dead elements removed. A partition
        with no set returns ``[]``.

        Raises:
            ConfigurationError: Bad ``k``, ``max_distance``, token or vector (including a
                dimension other than the set's).
            CapabilityError: The server has no vector sets.
            BackendError: The server failed.
        """
        args = self._search_args(partition, vector, k, max_distance)
        if args is None:
            return []
        try:
            reply = await self._run(_SEARCH, (self._set_key(partition),), args)
        except DRIVER_ERRORS as exc:
            raise _vset_error(exc, "VSIM") from exc
        return _matches(reply, max_distance)

    def _search_args(
        self, partition: str, vector: Vector, k: int, max_distance: float
    ) -> tuple[Any, ...] | None:
        """The search script's ARGV, checked; ``None`` when nothing can be within reach."""
        check_token(partition, "partition")
        k = check_k(k)
        max_distance = check_max_distance(max_distance)
        array = encode_vector(vector, _FP32, self._dimension)
        if max_distance < 0.0:
            return None
        # score >= 1 - max_distance / 2  <=>  distance <= max_distance.
        epsilon = "" if max_distance >= 2.0 else repr(max_distance / 2.0 + _EPSILON_SLACK)
        return (
            array.tobytes(),
            k,
            f"{self._payload_root}{{{partition}}}:",
            epsilon,
            self._ef_runtime,
            _MAX_REMOVALS_PER_SEARCH,
        )

    async def get_or_search(
        self,
        partition: str,
        entry_id: str,
        vector: Vector,
        *,
        k: int = 1,
        max_distance: float = 2.0,
    ) -> tuple[bytes | WrongTypeError | None, list[VectorMatch]]:
        """The payload of ``entry_id`` and, when it is absent, :meth:`search`'s result:
        ``GET`` and the search script pipelined in one round trip on a standalone server
        (the search's work is wasted when the entry exists); a cluster asks in turn. A
        key of another Redis type where the entry would be comes back as a
        :class:`~llmemo.errors.WrongTypeError` in the payload's place (the matches are
        still valid).

        Raises:
            As :meth:`get` and :meth:`search`.
        """
        check_token(entry_id, "entry_id")
        args = None if self._pair is None else self._search_args(partition, vector, k, max_distance)
        if self._pair is None or args is None:
            # A cluster client, or nothing within reach: search() checks and says so.
            return await probe_in_turn(self, partition, entry_id, vector, k, max_distance)
        keys = (self._set_key(partition),)
        try:
            probe, reply = await self._pair(
                ("GET", self._payload_key(partition, entry_id)), _SEARCH.evalsha_command(keys, args)
            )
            if isinstance(reply, NoScriptError):  # the server has not seen it yet: send it
                reply = await self._command(*_SEARCH.eval_command(keys, args))
        except DRIVER_ERRORS as exc:
            raise _vset_error(exc, "GET + VSIM") from exc
        probed = probed_payload(probe, lambda error: _vset_error(error, "GET"))
        if isinstance(probed, bytes):
            return probed, []
        if isinstance(reply, ResponseError):
            raise _vset_error(reply, "VSIM") from reply
        return probed, _matches(reply, max_distance)  # checked by _search_args

    async def delete(self, partition: str, entry_id: str) -> bool:
        """Remove one entry (``VREM`` + ``UNLINK`` in one MULTI/EXEC).

        Returns:
            Whether a live entry was there (its payload key existed).
        """
        check_token(partition, "partition")
        check_token(entry_id, "entry_id")
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.execute_command("VREM", self._set_key(partition), entry_id)
                # execute_command, not pipe.unlink(): on a cluster pipeline that is a
                # coroutine (it would split keys across slots), not a queued command.
                pipe.execute_command("UNLINK", self._payload_key(partition, entry_id))
                _, removed = await pipe.execute()
        except DRIVER_ERRORS as exc:
            raise _vset_error(exc, "VREM") from exc
        return int(removed) > 0

    async def prepare(self, dimension: int | None = None) -> None:
        """Connect now (one ``PING``; on a cluster, fetch the slot map), so that the first
        cache call does not spend its budget on it. Vector sets need no index: VADD
        makes each partition's set. Optional; idempotent.

        Raises:
            BackendError: the server is unreachable or failed.
        """
        with map_redis_errors("PING"):
            if isinstance(self._client, RedisCluster):
                await self._client.initialize()
            else:
                await self._command("PING")

    async def clear(self, *, progress: Callable[[int], object] | None = None) -> int:
        """Remove every entry of this store: ``SCAN`` + ``UNLINK`` of ``<name>:v1:v[sp]:*``.

        Nothing outside this store's key prefix is touched. Not atomic: entries added while
        it runs may survive. Each command may take ``admin_timeout``.

        Args:
            progress: Called with the running count of removed entries after each batch.

        Returns:
            How many live entries (payload keys) were removed.
        """
        pattern = glob_escape(f"{self._name}:v1:v") + "[ps]:*"
        payload_root = self._payload_root.encode()
        removed = 0
        payloads: list[bytes] = []
        sets: list[bytes] = []
        run = admin_runner(self._client, self._admin_timeout)
        lean = (
            not isinstance(self._client, RedisCluster) and run is not self._client.execute_command
        )

        async def unlink(keys: list[bytes]) -> int:
            # The client's own unlink() splits a batch per hash slot on a cluster.
            return int(await (run("UNLINK", *keys) if lean else self._client.unlink(*keys)))

        with map_redis_errors("clear"):
            async for key in self._scan(pattern, run):
                (payloads if key.startswith(payload_root) else sets).append(key)
                if len(payloads) >= 500:
                    removed += await unlink(payloads)
                    payloads.clear()
                    if progress is not None:
                        progress(removed)
                if len(sets) >= 500:
                    await unlink(sets)
                    sets.clear()
            if payloads:
                removed += await unlink(payloads)
            if sets:
                await unlink(sets)
        if progress is not None:
            progress(removed)
        return removed

    async def _scan(self, pattern: str, run: Any) -> AsyncIterator[bytes]:
        """Keys matching ``pattern``: ``SCAN`` through ``run`` on a standalone client (the
        admin timeout applies), the client's ``scan_iter`` on a cluster (every primary)."""
        if isinstance(self._client, RedisCluster) or run is self._client.execute_command:
            async for key in self._client.scan_iter(match=pattern, count=1000):
                yield key
            return
        cursor: Any = 0
        while True:
            cursor, found = await run("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
            for key in found:
                yield key
            if int(cursor) == 0:
                return

    async def aclose(self) -> None:
        """Close the client if this store created it (:meth:`from_url`); idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            with map_redis_errors("close"):
                await self._client.aclose()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self._name!r}, quantization={self._quantization!r}, "
            f"dimension={self._dimension!r})"
        )


def _matches(reply: Any, max_distance: float) -> list[VectorMatch]:
    """The search script's flat reply (id, score, payload, ...) as matches within reach.

    An element whose name is not UTF-8 is not one this store wrote (its entry ids are
    ASCII tokens): it comes back with an empty payload, which callers cannot decode (a
    cache counts it as an undecodable entry and tries its other candidates).

    Raises:
        SerializationError: the reply is not one the script returns: a row of another
            shape, a score that is not a number or is NaN, a payload that is not bytes.
    """
    try:
        matches: list[VectorMatch] = []
        for i in range(0, len(reply) - 2, 3):
            distance = 2.0 * (1.0 - float(reply[i + 1]))
            if not distance <= max_distance:
                if distance > max_distance:
                    break  # sorted by score: the rest is farther still
                raise ValueError("the score is NaN")
            payload = reply[i + 2]
            if type(payload) is not bytes:
                raise TypeError(f"the payload is {type(payload).__name__}, not bytes")
            distance = 0.0 if distance < 0.0 else (2.0 if distance > 2.0 else distance)
            element = reply[i]
            try:
                matches.append(VectorMatch(element.decode(), distance, payload))
            except UnicodeDecodeError:
                name = element.decode("utf-8", "backslashreplace")
                matches.append(VectorMatch(name, distance, b""))
        return matches
    except REPLY_SHAPE_ERRORS as exc:
        raise malformed_reply(exc, "VSIM script") from exc
