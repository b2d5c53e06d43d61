"""A :class:`~llmemo.stores.base.VectorStore` on the Redis query engine (RediSearch ``FT.*``).

Layout (``name`` is the store's name, also its index name):

* one HASH per entry at ``<name>:v1:s:{<partition>}:<entry_id>`` with three fields:
  ``vec`` (the vector as a little-endian float blob), ``partition`` (the partition token)
  and ``payload`` (the opaque bytes). The partition sits inside ``{}`` so a cluster keeps a
  partition's entries in one hash slot.
* one index ``FT.CREATE <name> ON HASH PREFIX 1 <name>:v1:s:`` whose schema is only the
  vector field (COSINE, HNSW or FLAT) and the partition as a case-sensitive TAG. Payloads
  are not indexed; no text fields.

A search is one ``FT.SEARCH`` with the partition as a TAG pre-filter inside the KNN query
(``(@partition:{$p})=>[KNN k @vec $blob AS dist]``, DIALECT 2), returning only the payload
and the distance. RediSearch's COSINE score already is the cosine distance ``1 - cos``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast

import numpy as np
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from llmemo.config import validate_optional_positive_int
from llmemo.errors import BackendError, CapabilityError, ConfigurationError
from llmemo.stores.base import Vector, VectorMatch
from llmemo.stores.redis._common import (
    check_client,
    check_k,
    check_max_distance,
    check_token,
    encode_vector,
    glob_escape,
    ttl_to_ms,
    unlink_matching,
    validate_name,
)
from llmemo.stores.redis._errors import DRIVER_ERRORS, map_redis_errors, translate

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["RedisSearchVectorStore"]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# -- RediSearch specifics ---------------------------------------------------------------

_DTYPES: Final[dict[str, np.dtype[Any]]] = {
    "FLOAT32": np.dtype("<f4"),
    "FLOAT64": np.dtype("<f8"),
    "FLOAT16": np.dtype("<f2"),
}
_ALGORITHMS: Final = ("HNSW", "FLAT")
_VEC: Final = "vec"
_PARTITION: Final = "partition"
_PAYLOAD: Final = "payload"
_DIST: Final = "dist"
_METRIC: Final = "COSINE"
_B_PAYLOAD: Final = _PAYLOAD.encode()
_B_DIST: Final = _DIST.encode()
_B_RESULTS: Final = b"results"
_B_ATTRS: Final = b"extra_attributes"
# A search that meets lazily expired documents asks again for more rows, at most this
# often (each retry at least doubles the rows asked for).
_MAX_SEARCH_ATTEMPTS: Final = 4


def _is_missing_index(exc: ResponseError) -> bool:
    # FT.INFO/FT.DROPINDEX say "Unknown index name", FT.SEARCH "<name>: no such index";
    # newer engines say "No such index <name>".
    message = str(exc).lower()
    return "unknown index" in message or "no such index" in message


def _search_error(exc: BaseException, operation: str) -> BackendError | ConfigurationError:
    message = str(exc).lower()
    if isinstance(exc, ResponseError):
        if "unknown command" in message and "ft." in message:
            error: BackendError | ConfigurationError = CapabilityError(
                f"Redis {operation} is not supported by this server: the query engine "
                "(RediSearch, FT.* commands) is not loaded. Use Redis 8 with the query "
                "engine, Redis Stack, or load the search module. Server said: "
                f"{exc}"
            )
            return error
        if "blob size" in message or "dimension" in message:
            return ConfigurationError(f"Redis {operation} rejected the vector: {exc}")
    return translate(exc, operation)


@dataclass(frozen=True, slots=True)
class _Schema:
    """The parts of an index definition this store depends on."""

    algorithm: str
    dtype: str
    dimension: int
    metric: str
    prefixes: tuple[str, ...]
    partition_tag: bool
    m: int | None = None
    ef_construction: int | None = None

    def describe(self) -> str:
        parts = [
            f"{self.algorithm} {self.dtype} DIM {self.dimension} {self.metric}",
            f"PREFIX {list(self.prefixes)}",
        ]
        if self.m is not None:
            parts.append(f"M {self.m}")
        if self.ef_construction is not None:
            parts.append(f"EF_CONSTRUCTION {self.ef_construction}")
        parts.append(
            "partition TAG CASESENSITIVE" if self.partition_tag else "no case-sensitive TAG"
        )
        return ", ".join(parts)


def _fields(entry: Any) -> dict[str, Any]:
    """Turn one FT.INFO map (RESP3 dict, or RESP2 flat list) into a ``str``-keyed dict.

    RESP2 lists are ``key, value`` pairs, except that attribute entries end with bare flag
    tokens (``CASESENSITIVE``, ``SORTABLE``, ...), which would shift a pairwise reading.
    So keys are looked up by name (their values never equal a key name here), and every
    token is also collected under ``"flags"``; RESP3 lists flags under ``flags``.
    """
    if isinstance(entry, dict):
        out = {_text(k): v for k, v in entry.items()}
        out["flags"] = {_text(f).upper() for f in out.get("flags") or ()}
        return out
    items = list(entry)
    out = {}
    flags: set[str] = set()
    for i in range(len(items) - 1, -1, -1):  # backwards: the first occurrence wins
        item = items[i]
        if isinstance(item, bytes | str):
            token = _text(item)
            flags.add(token.upper())
            if i + 1 < len(items):
                out[token] = items[i + 1]
    out["flags"] = flags
    return out


def _parse_info(reply: Any) -> _Schema | None:
    """Extract this store's view of an index from an ``FT.INFO`` reply (RESP2 or RESP3).

    Returns ``None`` when the index has no vector field named ``vec``.
    """
    info = _fields(reply)
    definition = _fields(info.get("index_definition") or [])
    prefixes = tuple(_text(p) for p in definition.get("prefixes") or ())
    vector: dict[str, Any] | None = None
    partition_tag = False
    for raw in info.get("attributes") or ():
        attr = _fields(raw)
        name = _text(attr.get("attribute", attr.get("identifier", "")))
        kind = _text(attr.get("type", "")).upper()
        if name == _VEC and kind == "VECTOR":
            vector = attr
        elif name == _PARTITION and kind == "TAG":
            partition_tag = "CASESENSITIVE" in attr["flags"]
    if vector is None:
        return None

    def number(key: str) -> int | None:
        value = vector.get(key) if vector is not None else None
        return None if value is None else int(_text(value))

    return _Schema(
        algorithm=_text(vector.get("algorithm", "")).upper(),
        dtype=_text(vector.get("data_type", "")).upper(),
        dimension=number("dim") or 0,
        metric=_text(vector.get("distance_metric", "")).upper(),
        prefixes=prefixes,
        partition_tag=partition_tag,
        m=number("M"),
        ef_construction=number("ef_construction"),
    )


class RedisSearchVectorStore:
    """Vectors with payloads in Redis hashes, searched with RediSearch KNN (COSINE).

    Round trips: :meth:`search` is one ``FT.SEARCH`` (payloads come back in it);
    :meth:`add` is one ``MULTI``/``HSET``/``PEXPIRE`` (or ``PERSIST``)/``EXEC`` pipeline,
    so an entry and its TTL appear together; :meth:`get` is one ``HGET``; :meth:`delete`
    one ``UNLINK``. The first :meth:`add` (or :meth:`setup`) also checks or creates the
    index (``FT.INFO``, ``FT.CREATE``), once per store; the first :meth:`search` checks
    it (``FT.INFO``) and, when there is no index yet, returns ``[]`` without creating one.

    Distances: cosine distance in ``[0, 2]``, straight from RediSearch's COSINE score.
    ``max_distance`` is applied to the KNN rows, which come back sorted nearest first; the
    rows kept are exactly those a range-bounded KNN would return, so nothing is hidden.
    HNSW is approximate (tune ``m``, ``ef_construction``, ``ef_runtime``); FLAT is exact.

    Expiry: an entry's key carries its TTL (server clock). Redis expires keys lazily, and
    ``FT.SEARCH`` can still list a document whose key has logically expired but was not
    reclaimed yet; its fields then come back empty. Such rows are skipped, and the search
    asks again for more rows when that left fewer than ``k`` (rare: only between the
    expiry and its reclamation).

    Errors: driver errors become :class:`~llmemo.errors.BackendUnavailableError`,
    :class:`~llmemo.errors.BackendTimeoutError` or :class:`~llmemo.errors.BackendError`
    ``from`` the redis-py exception; a server without the query engine raises
    :class:`~llmemo.errors.CapabilityError`; an index whose schema differs from this
    store's raises :class:`~llmemo.errors.ConfigurationError` (unless
    ``recreate_index_on_mismatch``).

    Loop affinity: a ``redis.asyncio`` client belongs to the event loop that first used it;
    use the store on that loop only. Any RESP2 or RESP3 client works
    (``decode_responses=False``).

    Args:
        client: A ready ``redis.asyncio.Redis`` (or ``RedisCluster``) with
            ``decode_responses=False``. The store does not close a client it was given.
        name: Index name and key-prefix root (1-128 characters of ``[A-Za-z0-9_.:-]``).
        algorithm: ``"HNSW"`` (approximate, default) or ``"FLAT"`` (exact, brute force).
        dimension: Vector dimension, or ``None`` to learn it from the first vector.
        dtype: Stored float type: ``"FLOAT32"`` (default), ``"FLOAT16"`` or ``"FLOAT64"``.
        m: HNSW links per node (``M``), or ``None`` for the server default.
        ef_construction: HNSW build-time candidate list size, or ``None``.
        ef_runtime: HNSW query-time candidate list size, sent with each query, or ``None``.
        recreate_index_on_mismatch: When an index named ``name`` exists with another
            schema, drop it and create this store's instead of raising (on the first
            add, setup or search). The documents are kept and re-indexed in the
            background; those whose vectors do not fit the new schema (another dimension
            or dtype) are left out of the index.

    Raises:
        ConfigurationError: A parameter is invalid (the message names it).
    """

    __slots__ = (
        "_algorithm",
        "_client",
        "_closed",
        "_dimension",
        "_dtype",
        "_dtype_name",
        "_ef_construction",
        "_ef_runtime",
        "_key_root",
        "_m",
        "_name",
        "_owns_client",
        "_ready",
        "_recreate",
        "_search_args",
    )

    def __init__(
        self,
        client: Redis | RedisCluster,
        name: str,
        *,
        algorithm: str = "HNSW",
        dimension: int | None = None,
        dtype: str = "FLOAT32",
        m: int | None = None,
        ef_construction: int | None = None,
        ef_runtime: int | None = None,
        recreate_index_on_mismatch: bool = False,
    ) -> None:
        check_client(client, type(self).__name__)
        self._name = validate_name(name)
        if not isinstance(algorithm, str) or algorithm.upper() not in _ALGORITHMS:
            raise ConfigurationError(f"algorithm must be 'HNSW' or 'FLAT'; got {algorithm!r}")
        self._algorithm = algorithm.upper()
        if not isinstance(dtype, str) or dtype.upper() not in _DTYPES:
            raise ConfigurationError(
                f"dtype must be one of {', '.join(map(repr, _DTYPES))}; got {dtype!r}"
            )
        self._dtype_name = dtype.upper()
        self._dtype = _DTYPES[self._dtype_name]
        self._dimension = validate_optional_positive_int(dimension, parameter="dimension")
        self._m = validate_optional_positive_int(m, parameter="m")
        self._ef_construction = validate_optional_positive_int(
            ef_construction, parameter="ef_construction"
        )
        self._ef_runtime = validate_optional_positive_int(ef_runtime, parameter="ef_runtime")
        if self._algorithm == "FLAT":
            for parameter, value in (
                ("m", m),
                ("ef_construction", ef_construction),
                ("ef_runtime", ef_runtime),
            ):
                if value is not None:
                    raise ConfigurationError(f"{parameter} applies to HNSW only, not FLAT")
        if not isinstance(recreate_index_on_mismatch, bool):
            raise ConfigurationError(
                f"recreate_index_on_mismatch must be a bool; got {recreate_index_on_mismatch!r}"
            )
        self._recreate = recreate_index_on_mismatch
        self._client = client
        self._key_root = f"{self._name}:v1:s:"
        self._ready = False
        self._search_args: dict[int, tuple[tuple[Any, ...], tuple[Any, ...]]] = {}
        self._owns_client = False
        self._closed = False

    @classmethod
    def from_url(cls, url: str, name: str, **kwargs: Any) -> Self:
        """Build a store with its own ``redis.asyncio.Redis`` from ``url``; no I/O yet.

        Keyword arguments that :class:`RedisSearchVectorStore` accepts go to the store; the
        rest to ``Redis.from_url``. :meth:`aclose` closes the client.
        """
        store_keys = {
            "algorithm",
            "dimension",
            "dtype",
            "m",
            "ef_construction",
            "ef_runtime",
            "recreate_index_on_mismatch",
        }
        store_kwargs = {k: v for k, v in kwargs.items() if k in store_keys}
        client_kwargs = {k: v for k, v in kwargs.items() if k not in store_keys}
        if client_kwargs.get("decode_responses"):
            raise ConfigurationError("decode_responses must be False: payloads are bytes")
        client = Redis.from_url(url, **client_kwargs)
        store = cls(client, name, **store_kwargs)
        store._owns_client = True
        return store

    # -- properties ---------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The index name (also the key-prefix root)."""
        return self._name

    @property
    def dimension(self) -> int | None:
        """The vector dimension, once declared, learned from a vector or read from the index."""
        return self._dimension

    @property
    def client(self) -> Redis | RedisCluster:
        """The redis-py client this store uses."""
        return self._client

    # -- index management ---------------------------------------------------------------

    def _wanted_schema(self, dimension: int) -> _Schema:
        return _Schema(
            algorithm=self._algorithm,
            dtype=self._dtype_name,
            dimension=dimension,
            metric=_METRIC,
            prefixes=(self._key_root,),
            partition_tag=True,
            m=self._m,
            ef_construction=self._ef_construction,
        )

    def _matches(self, existing: _Schema | None, wanted: _Schema) -> bool:
        if existing is None:
            return False
        same = (
            existing.algorithm == wanted.algorithm
            and existing.dtype == wanted.dtype
            and existing.dimension == wanted.dimension
            and existing.metric == wanted.metric
            and existing.prefixes == wanted.prefixes
            and existing.partition_tag
        )
        # M / EF_CONSTRUCTION only count when this store asks for specific values.
        if wanted.m is not None:
            same = same and existing.m == wanted.m
        if wanted.ef_construction is not None:
            same = same and existing.ef_construction == wanted.ef_construction
        return same

    def _create_args(self, dimension: int) -> list[Any]:
        vector_params: list[Any] = ["TYPE", self._dtype_name, "DIM", dimension]
        vector_params += ["DISTANCE_METRIC", _METRIC]
        if self._m is not None:
            vector_params += ["M", self._m]
        if self._ef_construction is not None:
            vector_params += ["EF_CONSTRUCTION", self._ef_construction]
        return [
            *("FT.CREATE", self._name, "ON", "HASH", "PREFIX", 1, self._key_root, "SCHEMA"),
            *(_VEC, "VECTOR", self._algorithm, len(vector_params), *vector_params),
            *(_PARTITION, "TAG", "CASESENSITIVE"),
        ]

    async def _info(self) -> tuple[bool, _Schema | None]:
        """Return ``(exists, schema)`` of the index named ``name`` (one ``FT.INFO``)."""
        try:
            reply = await self._client.execute_command("FT.INFO", self._name)
        except ResponseError as exc:
            if _is_missing_index(exc):
                return False, None
            raise _search_error(exc, "FT.INFO") from exc
        except DRIVER_ERRORS as exc:
            raise translate(exc, "FT.INFO") from exc
        return True, _parse_info(reply)

    async def _create(self, dimension: int) -> bool:
        """Create the index; return ``False`` if another writer created it first."""
        try:
            await self._client.execute_command(*self._create_args(dimension))
        except ResponseError as exc:
            if "already exists" in str(exc).lower():
                return False
            raise _search_error(exc, "FT.CREATE") from exc
        except DRIVER_ERRORS as exc:
            raise translate(exc, "FT.CREATE") from exc
        return True

    async def _prepare(self, dimension: int | None, *, create: bool) -> bool:
        """Check (and with ``create``, make) the index once; return whether it exists.

        Args:
            dimension: The dimension of the vector at hand, used when the store has none
                yet. On the search path (``create=False``) an existing index's dimension
                is adopted instead.
            create: Create a missing index (``add``/``setup``) or not (``search``).

        Raises:
            ConfigurationError: The index exists with another schema and
                ``recreate_index_on_mismatch`` is off.
        """
        # Two rounds at most: a concurrent creator may win the FT.CREATE race, then the
        # index it made is checked like any existing one.
        for _ in range(2):
            exists, existing = await self._info()
            if not exists:
                if not create:
                    return False
                dim = self._dimension or dimension
                if dim is None:
                    raise ConfigurationError(
                        "dimension is unknown: pass dimension= to the store or to setup()"
                    )
                if await self._create(dim):
                    self._dimension = dim
                    self._ready = True
                    return True
                continue
            dim = self._dimension
            if dim is None:
                dim = existing.dimension if (existing and not create) else dimension
            if dim is None:
                raise ConfigurationError(
                    "dimension is unknown: pass dimension= to the store or to setup()"
                )
            wanted = self._wanted_schema(dim)
            if not self._matches(existing, wanted):
                found = existing.describe() if existing else "no vector field 'vec'"
                if not self._recreate:
                    raise ConfigurationError(
                        f"RediSearch index {self._name!r} exists with another schema: "
                        f"found [{found}], this store needs [{wanted.describe()}]. Use a "
                        "different name, drop the index, or pass "
                        "recreate_index_on_mismatch=True to drop and recreate it "
                        "(documents are kept)"
                    )
                await self._drop(delete_documents=False)
                if not await self._create(dim):
                    continue
            self._dimension = dim
            self._ready = True
            return True
        raise BackendError(f"RediSearch index {self._name!r} kept changing while being set up")

    async def _drop(self, *, delete_documents: bool) -> bool:
        args: tuple[str, ...] = ("FT.DROPINDEX", self._name)
        if delete_documents:
            args += ("DD",)
        try:
            await self._client.execute_command(*args)
        except ResponseError as exc:
            if _is_missing_index(exc):
                return False
            raise _search_error(exc, "FT.DROPINDEX") from exc
        except DRIVER_ERRORS as exc:
            raise translate(exc, "FT.DROPINDEX") from exc
        return True

    async def setup(self, dimension: int | None = None) -> None:
        """Create the index now, or check an existing one (instead of on the first add).

        Args:
            dimension: The vector dimension, if the store was built without one.

        Raises:
            ConfigurationError: No dimension is known, it contradicts the store's, or the
                existing index has another schema (see ``recreate_index_on_mismatch``).
            CapabilityError: The server has no query engine.
        """
        dimension = validate_optional_positive_int(dimension, parameter="dimension")
        if dimension is not None and self._dimension not in (None, dimension):
            raise ConfigurationError(
                f"dimension {dimension} contradicts this store's dimension {self._dimension}"
            )
        self._ready = False
        await self._prepare(dimension, create=True)

    async def drop_index(self, *, delete_documents: bool = False) -> bool:
        """Drop the index (``FT.DROPINDEX``), keeping the entries unless told otherwise.

        The next :meth:`add` creates the index again. Return whether an index existed.
        """
        self._ready = False
        return await self._drop(delete_documents=delete_documents)

    # -- VectorStore --------------------------------------------------------------------

    def _key(self, partition: str, entry_id: str) -> str:
        return f"{self._key_root}{{{partition}}}:{entry_id}"

    async def add(
        self,
        partition: str,
        entry_id: str,
        vector: Vector,
        payload: bytes,
        *,
        ttl: float | None = None,
    ) -> None:
        """Insert or replace an entry: vector, payload and TTL in one MULTI/EXEC.

        Args:
            partition: Partition token (``[0-9A-Za-z_-]``).
            entry_id: Entry id (``[0-9A-Za-z_-]``).
            vector: Non-zero, finite; its dimension must match the store's.
            payload: Opaque bytes.
            ttl: Seconds (> 0, rounded to whole ms, at least 1 ms) or ``None`` (no expiry;
                replaces a previous TTL).

        Raises:
            ConfigurationError: Bad token, TTL or vector, or an index schema mismatch.
            CapabilityError: The server has no query engine.
            BackendError: The server failed (subclasses for unreachable / timed out).
        """
        check_token(partition, "partition")
        check_token(entry_id, "entry_id")
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise TypeError(f"payload must be bytes, got {type(payload).__name__}")
        ttl_ms = ttl_to_ms(ttl)
        array = encode_vector(vector, self._dtype, self._dimension)
        if not self._ready:
            await self._prepare(array.size, create=True)
            if array.size != self._dimension:
                # The index was there first and has another dimension.
                encode_vector(array, self._dtype, self._dimension)
        key = self._key(partition, entry_id)
        with map_redis_errors("add"):
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hset(
                    key,
                    mapping={_VEC: array.tobytes(), _PARTITION: partition, _PAYLOAD: payload},
                )
                if ttl_ms is None:
                    pipe.persist(key)
                else:
                    pipe.pexpire(key, ttl_ms)
                await pipe.execute()

    async def get(self, partition: str, entry_id: str) -> bytes | None:
        """Return the payload of one live entry (one ``HGET``), or ``None``."""
        check_token(partition, "partition")
        check_token(entry_id, "entry_id")
        with map_redis_errors("HGET"):
            value = await self._client.hget(self._key(partition, entry_id), _PAYLOAD)
        # This client never decodes (checked in __init__): replies are bytes.
        return cast("bytes | None", value)

    def _args_for(self, k: int) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """The FT.SEARCH arguments around ``partition`` and the vector blob, per ``k``."""
        cached = self._search_args.get(k)
        if cached is None:
            ef = f" EF_RUNTIME {self._ef_runtime}" if self._ef_runtime is not None else ""
            query = f"(@{_PARTITION}:{{$p}})=>[KNN {k} @{_VEC} $blob{ef} AS {_DIST}]"
            head = ("FT.SEARCH", self._name, query, "PARAMS", 4, "p")
            tail = ("RETURN", 2, _PAYLOAD, _DIST, "SORTBY", _DIST, "LIMIT", 0, k, "DIALECT", 2)
            cached = (head, tail)
            if len(self._search_args) < 64:  # a few distinct k in practice; stay bounded
                self._search_args[k] = cached
        return cached

    async def search(
        self,
        partition: str,
        vector: Vector,
        *,
        k: int = 1,
        max_distance: float = 2.0,
    ) -> list[VectorMatch]:
        """Return up to ``k`` nearest live entries of ``partition``, nearest first.

        One ``FT.SEARCH``: KNN with the partition as a TAG pre-filter, payloads in the
        reply. Before an index exists the result is ``[]`` (no index is created).

        Raises:
            ConfigurationError: Bad ``k``, ``max_distance``, token or vector (including a
                dimension other than the index's).
            CapabilityError: The server has no query engine.
            BackendError: The server failed.
        """
        check_token(partition, "partition")
        k = check_k(k)
        max_distance = check_max_distance(max_distance)
        array = encode_vector(vector, self._dtype, self._dimension)
        if not self._ready:
            if not await self._prepare(array.size, create=False):
                return []
            encode_vector(array, self._dtype, self._dimension)
        blob = array.tobytes()
        id_start = len(self._key_root) + len(partition) + 3  # root + "{" + p + "}:"
        want = k
        for _ in range(_MAX_SEARCH_ATTEMPTS):
            head, tail = self._args_for(want)
            try:
                reply = await self._client.execute_command(*head, partition, "blob", blob, *tail)
            except ResponseError as exc:
                if _is_missing_index(exc):
                    # Dropped behind our back: the next add creates it again.
                    self._ready = False
                    return []
                raise _search_error(exc, "FT.SEARCH") from exc
            except DRIVER_ERRORS as exc:
                raise translate(exc, "FT.SEARCH") from exc
            matches, rows, skipped, beyond = _parse_search(reply, id_start, max_distance)
            if not skipped or beyond or len(matches) >= k or rows < want:
                return matches[:k]
            # Expired-but-unreclaimed documents took places in the top `want`: ask for
            # enough more rows to cover them.
            want = max(want * 2, k + skipped)
        return matches[:k]

    async def delete(self, partition: str, entry_id: str) -> bool:
        """Remove one entry (one ``UNLINK``); return whether it existed."""
        check_token(partition, "partition")
        check_token(entry_id, "entry_id")
        with map_redis_errors("UNLINK"):
            removed: int = await self._client.unlink(self._key(partition, entry_id))
        return removed > 0

    async def clear(self) -> int:
        """Remove every entry of this store (``SCAN`` + ``UNLINK`` of ``<name>:v1:s:*``).

        The index stays (empty) and nothing outside this store's key prefix is touched.
        Not atomic: entries added while it runs may survive.

        Returns:
            How many entries (keys) were removed.
        """
        pattern = glob_escape(self._key_root) + "*"
        with map_redis_errors("clear"):
            return await unlink_matching(self._client, pattern, 500)

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
            f"{type(self).__name__}(name={self._name!r}, algorithm={self._algorithm!r}, "
            f"dtype={self._dtype_name!r}, dimension={self._dimension!r})"
        )


def _parse_search(
    reply: Any, id_start: int, max_distance: float
) -> tuple[list[VectorMatch], int, int, bool]:
    """Parse an ``FT.SEARCH`` reply (RESP2 list or RESP3 map).

    Returns:
        ``(matches within max_distance, rows in the reply, rows skipped as expired,
        whether a row beyond max_distance was met)``.
    """
    matches: list[VectorMatch] = []
    skipped = 0
    if isinstance(reply, dict):
        results = reply.get(_B_RESULTS) or ()
        rows = len(results)
        pairs: Any = ((row.get(b"id", b""), row.get(_B_ATTRS)) for row in results)
    else:
        rows = (len(reply) - 1) // 2
        pairs = zip(reply[1::2], reply[2::2], strict=False)
    for doc_id, fields in pairs:
        if not fields:
            # An expired key not reclaimed yet: the document is still indexed, but its
            # fields can no longer be loaded.
            skipped += 1
            continue
        if isinstance(fields, dict):
            payload = fields.get(_B_PAYLOAD)
            dist = fields.get(_B_DIST)
        else:
            payload = dist = None
            for i in range(0, len(fields) - 1, 2):
                if fields[i] == _B_PAYLOAD:
                    payload = fields[i + 1]
                elif fields[i] == _B_DIST:
                    dist = fields[i + 1]
        if payload is None or dist is None:
            skipped += 1
            continue
        distance = float(dist)
        if distance > max_distance:
            # Rows come sorted by distance: the rest is farther still.
            return matches, rows, skipped, True
        distance = 0.0 if distance < 0.0 else (2.0 if distance > 2.0 else distance)
        matches.append(VectorMatch(doc_id[id_start:].decode(), distance, payload))
    return matches, rows, skipped, False
