"""A :class:`~llmemo.stores.base.VectorStore` on the Redis query engine (RediSearch ``FT.*``).

Layout (``name`` is the store's name, the root of its keys and of its index name):

* one HASH per entry at ``<name>:v1:s:{<partition>}:<entry_id>`` with three fields:
  ``vec`` (the vector as a little-endian float blob), ``partition`` (the partition token)
  and ``payload`` (the opaque bytes). The partition sits inside ``{}`` so a cluster keeps a
  partition's entries in one hash slot.
* one index ``FT.CREATE <name>:v1:ix ON HASH PREFIX 1 <name>:v1:s:`` whose schema is only
  the vector field (COSINE, HNSW or FLAT) and the partition as a case-sensitive TAG.
  Payloads are not indexed; no text fields. The index name carries llmemo's reserved
  ``v1`` segment (no store name may contain one), so it never equals the index of another
  tool using the same name (langchain-redis and redisvl call theirs ``llmcache``, over the
  key prefix ``llmcache``), nor of another llmemo store.

A search is one ``FT.SEARCH`` with the partition as a TAG pre-filter inside the KNN query
(``(@partition:{$p})=>[KNN k @vec $blob AS dist]``, DIALECT 2), returning only the payload
and the distance. RediSearch's COSINE score already is the cosine distance ``1 - cos``.
On an HNSW index the query asks for ``HYBRID_POLICY BATCHES`` when the partition is known
to be large (see :mod:`llmemo.stores.redis._plan`: counts taken with a search now and
then, in the same round trip), and leaves the plan to the server otherwise.

Redis Cluster (a ``RedisCluster`` client): RediSearch without a coordinator (2.10) keeps an
index on the shard owning its *name's* hash slot; the index sees only that shard's keys, and
``FT.SEARCH`` can load fields only of documents in the name's own slot (others come back
empty). So the store keeps one index per primary, named ``<name>:v1:ix:{<tag>}`` where
``<tag>`` hashes to a slot that primary owns, with the same prefix and schema as above;
index commands (``FT._LIST``/``INFO``/``CREATE``/``DROPINDEX``) are sent to that primary
explicitly (redis-py would send them to a random node). A search is one ``EVALSHA`` of a
read-only script declared on the partition's slot (so the client routes it to the owning
primary, and a moved slot answers ``MOVED``): the script runs the same KNN query with the
TAG pre-filter, returning the distances, and reads each hit's payload with ``HGET`` (all of
a partition's entries share its slot). Still one round trip per search.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast

import numpy as np
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from llmemo.config import (
    REDISEARCH_ALGORITHMS,
    REDISEARCH_VECTOR_TYPES,
    validate_choice,
    validate_optional_positive_int,
)
from llmemo.errors import (
    BackendError,
    CapabilityError,
    ConfigurationError,
    SchemaMismatchError,
    SerializationError,
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
    slot_tag,
    ttl_to_ms,
    unlink_matching,
    validate_admin_timeout,
    validate_name,
)
from llmemo.stores.redis._errors import (
    DRIVER_ERRORS,
    REPLY_SHAPE_ERRORS,
    malformed_reply,
    map_redis_errors,
    reply_parser,
    translate,
)
from llmemo.stores.redis._plan import HybridPlanner

if TYPE_CHECKING:
    from redis.asyncio.cluster import ClusterNode
    from typing_extensions import Self

__all__ = ["RedisSearchVectorStore"]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# -- RediSearch specifics ---------------------------------------------------------------

# Counting a partition's (or the index's) documents: no rows, only the total.
_COUNT_TAIL: Final = ("LIMIT", 0, 0, "DIALECT", 2)

#: The vector type of an index the store creates when no ``dtype`` is given: half the
#: memory of FLOAT32 with the same hits (``python -m benchmarks dtype``).
DEFAULT_DTYPE: Final = "FLOAT16"
# The numpy type of each of config.REDISEARCH_VECTOR_TYPES (little-endian, as stored).
_DTYPES: Final[dict[str, np.dtype[Any]]] = {
    "FLOAT32": np.dtype("<f4"),
    "FLOAT64": np.dtype("<f8"),
    "FLOAT16": np.dtype("<f2"),
}
_VEC: Final = "vec"
_PARTITION: Final = "partition"
_PAYLOAD: Final = "payload"
_DIST: Final = "dist"
_COUNT_PARTITION: Final = f"@{_PARTITION}:{{$p}}"
_METRIC: Final = "COSINE"
_B_PAYLOAD: Final = _PAYLOAD.encode()
_B_DIST: Final = _DIST.encode()
_B_RESULTS: Final = b"results"
_B_ATTRS: Final = b"extra_attributes"
# A search that meets lazily expired documents asks again for more rows, at most this
# often (each retry at least doubles the rows asked for).
_MAX_SEARCH_ATTEMPTS: Final = 4

# An index found with another schema is not checked again for this long (seconds): each
# check is an FT.INFO, which costs the server milliseconds on a large index, and a
# misconfigured cache would otherwise send one with every lookup (fail open turns the
# error into a miss, so lookups keep coming).
_REFUSED_INDEX_RECHECK_S: Final = 5.0
# An index found fit is checked again (one FT.INFO before a write) after this long
# (seconds): after a restart, or when someone else recreated it with another schema, the
# store's writes would still succeed as HSETs but never be indexed, i.e. never be found.
_INDEX_RECHECK_S: Final = 5.0

# Cluster search. KEYS: a key in the partition's slot (never written; it routes the script
# and makes a moved slot answer MOVED). ARGV: index, query, partition, blob, LIMIT count,
# and two flags ("1"/"0"): count the partition's documents, count the index's.
# Returns a flat array: the partition's count and the index's (false when not asked for
# or when counting failed), then id, distance, payload (false when the entry expired), ...
# allow-cross-slot-keys: the index name lives in another slot of the same primary.
_CLUSTER_SEARCH: Final = LuaScript(
    """#!lua flags=no-writes,allow-cross-slot-keys
local function count(...)
  local ok, reply = pcall(redis.call, 'FT.SEARCH', ARGV[1], ...)
  if ok and type(reply) == 'table' then
    return reply[1]
  end
  return false
end
local out = {false, false}
if ARGV[6] == '1' then
  out[1] = count('@partition:{$p}', 'PARAMS', 2, 'p', ARGV[3], 'LIMIT', 0, 0, 'DIALECT', 2)
end
if ARGV[7] == '1' then
  out[2] = count('*', 'LIMIT', 0, 0, 'DIALECT', 2)
end
local found = redis.call('FT.SEARCH', ARGV[1], ARGV[2], 'PARAMS', 4, 'p', ARGV[3],
  'blob', ARGV[4], 'RETURN', 1, 'dist', 'SORTBY', 'dist', 'LIMIT', 0, ARGV[5], 'DIALECT', 2)
for i = 2, #found, 2 do
  local fields = found[i + 1]
  local dist = false
  for j = 1, #fields - 1, 2 do
    if fields[j] == 'dist' then
      dist = fields[j + 1]
    end
  end
  out[#out + 1] = found[i]
  out[#out + 1] = dist
  out[#out + 1] = redis.call('HGET', found[i], 'payload')
end
return out
"""
)


def _is_missing_index(exc: ResponseError) -> bool:
    # FT.INFO/FT.DROPINDEX say "Unknown index name", FT.SEARCH "<name>: no such index";
    # newer engines say "No such index <name>".
    message = str(exc).lower()
    return "unknown index" in message or "no such index" in message


def _is_stale_index(exc: ResponseError) -> bool:
    """The cluster search script could not use the index it was given: missing there, or
    its name's slot is not on that primary (the partition's slot moved to another one)."""
    return _is_missing_index(exc) or "non local key" in str(exc).lower()


def _search_error(exc: BaseException, operation: str) -> BackendError:
    message = str(exc).lower()
    if isinstance(exc, ResponseError):
        if "unknown command" in message and "ft." in message:
            error: BackendError = CapabilityError(
                f"Redis {operation} is not supported by this server: the query engine "
                "(RediSearch, FT.* commands) is not loaded. Use Redis 8 with the query "
                "engine, Redis Stack, or load the search module. Server said: "
                f"{exc}"
            )
            return error
        if "blob size" in message or "dimension" in message:
            # The index on the server has another dimension or type than this store's
            # vectors (changed behind its back): a backend fault, not a caller error.
            return SchemaMismatchError(
                f"Redis {operation} rejected the vector: the index has another dimension "
                f"or type than this store's vectors: {exc}"
            )
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


@reply_parser("FT.INFO")
def _parse_info(reply: Any) -> _Schema | None:
    """Extract this store's view of an index from an ``FT.INFO`` reply (RESP2 or RESP3).

    Returns ``None`` when the index has no vector field named ``vec``.

    Raises:
        SerializationError: the reply is not readable as an index description.
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
    An index found with another schema is refused for 5 seconds without another
    ``FT.INFO`` (then checked anew, so a fixed index is picked up); :meth:`setup` and
    :meth:`drop_index` check at once.

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
    store's (found by any call, including :meth:`setup`) raises
    :class:`~llmemo.errors.SchemaMismatchError` (a ``BackendError``, so caches fail open
    on it; also a ``ConfigurationError``), unless ``recreate_index_on_mismatch``. An index
    found fit is checked again (``FT.INFO``) before the first write after 5 seconds, so
    an index recreated with another schema (e.g. after a restart) is noticed and the
    writes it could not index raise instead of passing for stored.

    Cluster: with a ``redis.asyncio.cluster.RedisCluster`` the store keeps one index per
    primary and searches with a script routed by the partition's slot (see the module
    docstring; needs Redis 7+ script flags). It finds or creates a primary's index the
    first time it needs it (``FT._LIST``, ``FT.INFO``, ``FT.CREATE`` on that primary).
    Writes stay single-slot (the entry is one key). Entries that move with a migrated slot
    are indexed on arrival by the new owner's index; a search that reaches a primary
    through ``MOVED`` with the old primary's index name fails there, and the store asks
    again with the new owner's index, creating it if that primary has none (its initial
    scan picks up the entries already there, in the background). A failover keeps the
    index (a replica has it). An index whose name's slot has moved away from its primary
    can no longer be addressed (even to drop it) and is replaced by a new one there; drop
    the old one by hand if that ever happens (names are anchored at a primary's highest
    slot, which resharding tools move last).

    Loop affinity: a ``redis.asyncio`` client belongs to the event loop that first used it;
    use the store on that loop only. Any RESP2 or RESP3 client works
    (``decode_responses=False``).

    Args:
        client: A ready ``redis.asyncio.Redis`` (or ``RedisCluster``) with
            ``decode_responses=False``. The store does not close a client it was given.
        name: Key-prefix root (1-128 characters of ``[A-Za-z0-9_.:-]``, no ``:``-segment
            like ``v1``); the index is ``<name>:v1:ix`` (see :attr:`index_name`).
        algorithm: ``"HNSW"`` (approximate, default) or ``"FLAT"`` (exact, brute force).
        dimension: Vector dimension, or ``None`` to learn it from the first vector.
        dtype: Stored float type: ``"FLOAT16"``, ``"FLOAT32"`` or ``"FLOAT64"``; ``None``
            (default): the type of the index when one exists (an index made by an earlier
            llmemo is FLOAT32 and stays so), else ``"FLOAT16"`` (half FLOAT32's memory,
            the same hits on the suite's near-duplicate queries). Vectors are sent in the
            index's type.
        m: HNSW links per node (``M``), or ``None`` for the server default.
        ef_construction: HNSW build-time candidate list size, or ``None``.
        ef_runtime: HNSW query-time candidate list size, sent with each query, or ``None``.
        admin_timeout: Seconds each index command (``FT.INFO``, ``FT.CREATE``,
            ``FT.DROPINDEX``) and each command of :meth:`clear` may take, instead of the
            client's ``socket_timeout``; ``None``: the socket timeout.
        recreate_index_on_mismatch: When this store's index exists with another
            schema, drop it and create this store's instead of raising (on the first
            add, setup or search). The documents are kept and re-indexed in the
            background; those whose vectors do not fit the new schema (another dimension
            or dtype) are left out of the index.

    Raises:
        ConfigurationError: A parameter is invalid (the message names it).
    """

    __slots__ = (
        "_admin",
        "_admin_timeout",
        "_algorithm",
        "_client",
        "_closed",
        "_cluster",
        "_command",
        "_declared_dimension",
        "_dimension",
        "_dtype",
        "_dtype_auto",
        "_dtype_name",
        "_ef_construction",
        "_ef_runtime",
        "_index_name",
        "_index_root",
        "_indexes",
        "_key_root",
        "_locks",
        "_m",
        "_name",
        "_owns_client",
        "_pair",
        "_planner",
        "_prepare_lock",
        "_ready",
        "_recheck_at",
        "_recreate",
        "_refused",
        "_search_args",
    )

    def __init__(
        self,
        client: Redis | RedisCluster,
        name: str,
        *,
        algorithm: str = "HNSW",
        dimension: int | None = None,
        dtype: str | None = None,
        m: int | None = None,
        ef_construction: int | None = None,
        ef_runtime: int | None = None,
        recreate_index_on_mismatch: bool = False,
        admin_timeout: float | None = None,
    ) -> None:
        check_client(client, type(self).__name__)
        self._name = validate_name(name)
        self._admin_timeout = validate_admin_timeout(admin_timeout)
        self._algorithm = validate_choice(algorithm, REDISEARCH_ALGORITHMS, parameter="algorithm")
        # None: FLOAT16 for an index this store creates, the type of one it finds (so an
        # index made by an older llmemo with FLOAT32 keeps serving after an upgrade).
        self._dtype_auto = dtype is None
        self._dtype_name = (
            DEFAULT_DTYPE
            if dtype is None
            else validate_choice(dtype, REDISEARCH_VECTOR_TYPES, parameter="dtype")
        )
        self._dtype = _DTYPES[self._dtype_name]
        self._dimension = validate_optional_positive_int(dimension, parameter="dimension")
        # Declared by the caller, or learned from an existing index (then a vector of
        # another size is checked against the index, not refused out of hand).
        self._declared_dimension = self._dimension is not None
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
        self._command = command_runner(client)
        # Index commands and clear() may take admin_timeout, not the cache's budget.
        self._admin = admin_runner(client, self._admin_timeout)
        self._pair = pair_runner(client)
        # Which hybrid plan each partition's KNN asks for (HNSW only: a FLAT index scans
        # either way), from counts taken now and then with a search (see _plan).
        self._planner = HybridPlanner() if self._algorithm == "HNSW" else None
        self._key_root = f"{self._name}:v1:s:"
        self._cluster: RedisCluster | None = client if isinstance(client, RedisCluster) else None
        # Cluster: one index per primary, "<name>:v1:ix:{<tag>}"; primary name -> index
        # name, for the indexes checked (or created) by this store.
        self._index_root = f"{self._name}:v1:ix:"
        self._index_name = f"{self._name}:v1:ix"
        self._indexes: dict[str, str] = {}
        # One index check per primary at a time: a burst of first writes to a primary
        # waits for one FT._LIST/FT.INFO/FT.CREATE instead of each sending its own.
        self._locks: dict[str, asyncio.Lock] = {}
        # Index name -> (the mismatch error's message, monotonic time to check again).
        self._refused: dict[str, tuple[str, float]] = {}
        self._ready = False
        self._recheck_at = 0.0  # monotonic time of the next check of a fit index
        # One index check at a time on a standalone server: a burst of first writes
        # waits for one FT.INFO/FT.CREATE instead of each sending its own.
        self._prepare_lock = asyncio.Lock()
        self._search_args: dict[tuple[int, bool], tuple[tuple[Any, ...], tuple[Any, ...]]] = {}
        self._owns_client = False
        self._closed = False

    @classmethod
    def from_url(cls, url: str, name: str, *, cluster: bool = False, **kwargs: Any) -> Self:
        """Build a store with its own ``redis.asyncio.Redis`` from ``url``; no I/O yet.

        Keyword arguments that :class:`RedisSearchVectorStore` accepts go to the store; the
        rest to ``Redis.from_url`` (``RedisCluster.from_url`` with ``cluster=True``, the
        URL naming one node). :meth:`aclose` closes the client.
        """
        store_keys = {
            "algorithm",
            "dimension",
            "dtype",
            "m",
            "ef_construction",
            "ef_runtime",
            "recreate_index_on_mismatch",
            "admin_timeout",
        }
        store_kwargs = {k: v for k, v in kwargs.items() if k in store_keys}
        client_kwargs = {k: v for k, v in kwargs.items() if k not in store_keys}
        client = client_from_url(url, cluster=cluster, **client_kwargs)
        store = cls(client, name, **store_kwargs)
        store._owns_client = True
        return store

    # -- properties ---------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The store's name: the root of its keys and of its index name."""
        return self._name

    @property
    def index_name(self) -> str:
        """The RediSearch index of this store on a standalone server: ``<name>:v1:ix``
        (on a cluster, one ``<name>:v1:ix:{<tag>}`` per primary)."""
        return self._index_name

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

    def _refuses_for_any_vector(self, existing: _Schema | None) -> bool:
        """Whether this store rejects the index ``existing`` whatever vector it is handed.

        Not so when the store has no dimension yet and the index differs only in its
        dimension: the search path adopts the index's dimension, so only the add of a
        vector of another size was refused.
        """
        if self._dimension is not None or existing is None:
            return True
        return not self._matches(existing, self._wanted_schema(existing.dimension))

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

    def _create_args(self, index: str, dimension: int) -> list[Any]:
        vector_params: list[Any] = ["TYPE", self._dtype_name, "DIM", dimension]
        vector_params += ["DISTANCE_METRIC", _METRIC]
        if self._m is not None:
            vector_params += ["M", self._m]
        if self._ef_construction is not None:
            vector_params += ["EF_CONSTRUCTION", self._ef_construction]
        return [
            *("FT.CREATE", index, "ON", "HASH", "PREFIX", 1, self._key_root, "SCHEMA"),
            *(_VEC, "VECTOR", self._algorithm, len(vector_params), *vector_params),
            *(_PARTITION, "TAG", "CASESENSITIVE"),
        ]

    async def _ft(self, node: ClusterNode | None, *args: Any) -> Any:
        """Send one ``FT.*`` command: to ``node`` on a cluster, else to the server."""
        if node is None:
            return await self._command(*args)
        return await self._client.execute_command(*args, target_nodes=node)

    async def _ft_admin(self, node: ClusterNode | None, *args: Any) -> Any:
        """Send one index-management ``FT.*`` command (its reply may take
        ``admin_timeout``): to ``node`` on a cluster, else to the server."""
        if node is None:
            return await self._admin(*args)
        return await self._client.execute_command(*args, target_nodes=node)

    async def _info(self, index: str, node: ClusterNode | None) -> tuple[bool, _Schema | None]:
        """Return ``(exists, schema)`` of the index named ``index`` (one ``FT.INFO``)."""
        try:
            reply = await self._ft_admin(node, "FT.INFO", index)
        except ResponseError as exc:
            if _is_missing_index(exc):
                return False, None
            raise _search_error(exc, "FT.INFO") from exc
        except DRIVER_ERRORS as exc:
            raise translate(exc, "FT.INFO") from exc
        try:
            return True, _parse_info(reply)
        except SerializationError:
            return True, None  # unreadable: not an index of this store's schema

    async def _create(self, index: str, node: ClusterNode | None, dimension: int) -> bool:
        """Create the index; return ``False`` if another writer created it first."""
        try:
            await self._ft_admin(node, *self._create_args(index, dimension))
        except ResponseError as exc:
            if "already exists" in str(exc).lower():
                return False
            raise _search_error(exc, "FT.CREATE") from exc
        except DRIVER_ERRORS as exc:
            raise translate(exc, "FT.CREATE") from exc
        return True

    async def _prepare(
        self,
        dimension: int | None,
        *,
        create: bool,
        index: str | None = None,
        node: ClusterNode | None = None,
    ) -> bool:
        """Check (and with ``create``, make) an index; return whether it exists.

        Args:
            dimension: The dimension of the vector at hand, used when the store has none
                yet. On the search path (``create=False``) an existing index's dimension
                is adopted instead.
            create: Create a missing index (``add``/``setup``) or not (``search``).
            index: The index name (``name`` on a standalone server).
            node: The primary holding it (cluster), or ``None``.

        Raises:
            SchemaMismatchError: The index exists with another schema and
                ``recreate_index_on_mismatch`` is off.
        """
        index = self._index_name if index is None else index
        refused = self._refused.get(index)
        if refused is not None:
            message, recheck_at = refused
            if time.monotonic() < recheck_at:
                raise SchemaMismatchError(message)
            del self._refused[index]
        # Two rounds at most: a concurrent creator may win the FT.CREATE race, then the
        # index it made is checked like any existing one.
        for _ in range(2):
            exists, existing = await self._info(index, node)
            if not exists:
                if not create:
                    return False
                dim = self._dimension or dimension
                if dim is None:
                    raise ConfigurationError(
                        "dimension is unknown: pass dimension= to the store or to setup()"
                    )
                if await self._create(index, node, dim):
                    self._dimension = dim
                    self._dtype_auto = False
                    return True
                continue
            if self._dtype_auto and existing is not None and existing.dtype in _DTYPES:
                self._dtype_name = existing.dtype  # adopted, then fixed like a given one
                self._dtype = _DTYPES[existing.dtype]
                self._dtype_auto = False
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
                    message = (
                        f"RediSearch index {index!r} exists with another schema: "
                        f"found [{found}], this store needs [{wanted.describe()}]. Use a "
                        "different name, drop the index, or pass "
                        "recreate_index_on_mismatch=True to drop and recreate it "
                        "(documents are kept)"
                    )
                    if self._refuses_for_any_vector(existing):
                        recheck_at = time.monotonic() + _REFUSED_INDEX_RECHECK_S
                        self._refused[index] = (message, recheck_at)
                    raise SchemaMismatchError(message)
                await self._drop(index, node, delete_documents=False)
                if not await self._create(index, node, dim):
                    continue
                self._dtype_auto = False
            self._dimension = dim
            return True
        raise BackendError(f"RediSearch index {index!r} kept changing while being set up")

    async def _drop(self, index: str, node: ClusterNode | None, *, delete_documents: bool) -> bool:
        args: tuple[str, ...] = ("FT.DROPINDEX", index)
        if delete_documents:
            args += ("DD",)
        try:
            await self._ft_admin(node, *args)
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
            ConfigurationError: No dimension is known, or it contradicts the store's.
            SchemaMismatchError: The existing index has another schema (see
                ``recreate_index_on_mismatch``); also a ``ConfigurationError``.
            CapabilityError: The server has no query engine.
        """
        dimension = validate_optional_positive_int(dimension, parameter="dimension")
        if dimension is not None and self._dimension not in (None, dimension):
            raise ConfigurationError(
                f"dimension {dimension} contradicts this store's dimension {self._dimension}"
            )
        self._ready = False
        self._refused.clear()
        if self._cluster is None:
            self._ready = await self._prepare(dimension, create=True)
            self._recheck_at = time.monotonic() + _INDEX_RECHECK_S
            return
        self._indexes.clear()
        for node in await self._primaries():
            await self._node_index(node, dimension, create=True)

    async def prepare(self, dimension: int | None = None) -> None:
        """Do the first use's work now: connect and check the index (``FT.INFO``), and
        with ``dimension`` create it if missing (``FT.CREATE``). Concurrent callers share
        one check; once the index is known this returns at once. On a cluster it fetches
        the slot map only (each primary's index is found on first use there). Caches call
        it before their first calls' budgets start.

        Raises:
            As :meth:`setup`.
        """
        if self._ready:
            return
        if self._cluster is not None:
            await self._primaries()
            return
        async with self._prepare_lock:
            if not self._ready:
                self._ready = await self._prepare(dimension, create=dimension is not None)
                self._recheck_at = time.monotonic() + _INDEX_RECHECK_S

    async def _check_for(self, dimension: int) -> None:
        """Check the standalone index against vectors of ``dimension`` when the store's
        dimension was learned from the index and differs (one ``FT.INFO``, and with
        ``recreate_index_on_mismatch`` a drop and create).

        Raises:
            SchemaMismatchError: the index has another dimension (the store keeps the
                one it learned).
        """
        if self._declared_dimension:
            return
        async with self._prepare_lock:
            if self._dimension == dimension:
                return  # a concurrent writer recreated it meanwhile
            learned, self._dimension = self._dimension, None
            try:
                self._ready = await self._prepare(dimension, create=True)
                self._recheck_at = time.monotonic() + _INDEX_RECHECK_S
            except SchemaMismatchError as exc:
                raise SchemaMismatchError(
                    f"vector has dimension {dimension}, the index {learned}: {exc}"
                ) from None
            finally:
                if self._dimension is None:
                    self._dimension = learned

    async def drop_index(self, *, delete_documents: bool = False) -> bool:
        """Drop the index (``FT.DROPINDEX``), keeping the entries unless told otherwise.

        The next :meth:`add` creates the index again. Return whether an index existed. On
        a cluster, drops this store's index on every primary (those it can address).
        """
        self._ready = False
        self._refused.clear()
        if self._planner is not None:
            self._planner.forget()
        if self._cluster is None:
            return await self._drop(self._index_name, None, delete_documents=delete_documents)
        self._indexes.clear()
        dropped = False
        for node in await self._primaries():
            for index in await self._list_indexes(node):
                dropped |= await self._drop(index, node, delete_documents=delete_documents)
        return dropped

    # -- cluster: one index per primary ------------------------------------------------

    async def _primaries(self) -> list[ClusterNode]:
        cluster = cast("RedisCluster", self._cluster)
        with map_redis_errors("cluster topology"):
            await cluster.initialize()
            return list(cluster.get_primaries())

    async def _owner(self, partition: str) -> ClusterNode:
        """The primary owning ``partition``'s hash slot, per the client's slot map."""
        cluster = cast("RedisCluster", self._cluster)
        with map_redis_errors("cluster routing"):
            # A no-op once connected; after a connection error it refreshes the topology
            # (the client marks itself for that), so a failed-over shard is found again.
            await cluster.initialize()
            node = cluster.get_node_from_key(self._slot_key(partition))
        if node is None:  # pragma: no cover - only with replica=True
            raise BackendError(f"no primary owns the slot of partition {partition!r}")
        return node

    def node_of_partition(self, partition: str) -> str | None:
        """The cluster node owning ``partition`` (per the slot map; ``None`` when
        standalone): caches keep one circuit breaker per node."""
        return (
            None if self._cluster is None else node_name(self._cluster, self._slot_key(partition))
        )

    def _slot_key(self, partition: str) -> str:
        # Never an entry's key (those go on with ":<entry_id>"), same slot as them.
        return f"{self._key_root}{{{partition}}}"

    def _addressable(self, index: str, node: ClusterNode) -> bool:
        """Whether ``index``'s name lives in a slot ``node`` owns (per the slot map)."""
        cluster = cast("RedisCluster", self._cluster)
        try:
            owner = cluster.get_node_from_key(index)
        except DRIVER_ERRORS:
            return False
        return owner is not None and owner.name == node.name

    async def _list_indexes(self, node: ClusterNode) -> list[str]:
        """This store's indexes on ``node`` that ``node`` can answer for (``FT._LIST``)."""
        try:
            reply = await self._ft(node, "FT._LIST")
        except DRIVER_ERRORS as exc:
            raise _search_error(exc, "FT._LIST") from exc
        names = sorted(_text(item) for item in reply or ())
        root = self._index_root + "{"
        return [
            name
            for name in names
            if name.startswith(root) and name.endswith("}") and self._addressable(name, node)
        ]

    def _new_index_name(self, node: ClusterNode) -> str:
        """A name for ``node``'s index, anchored at the highest slot it owns.

        The highest slot, because resharding tools (``redis-cli --cluster reshard`` and
        ``rebalance``) hand over a primary's lowest slots first.
        """
        cluster = cast("RedisCluster", self._cluster)
        owned = [
            slot
            for slot, nodes in cluster.nodes_manager.slots_cache.items()
            if nodes and nodes[0].name == node.name
        ]
        if not owned:
            raise BackendError(f"cluster primary {node.name} owns no hash slot")
        return f"{self._index_root}{{{slot_tag(max(owned))}}}"

    async def _node_index(
        self, node: ClusterNode, dimension: int | None, *, create: bool
    ) -> str | None:
        """The index on ``node`` (found, or made when ``create``), or ``None``."""
        index = self._indexes.get(node.name)
        if index is not None:
            return index
        async with self._locks.setdefault(node.name, asyncio.Lock()):
            index = self._indexes.get(node.name)
            if index is not None:  # checked by whoever held the lock before us
                return index
            found = await self._list_indexes(node)
            if found:
                index = found[0]
            elif create:
                index = self._new_index_name(node)
            else:
                return None
            if not await self._prepare(dimension, create=create, index=index, node=node):
                return None
            self._indexes[node.name] = index
            return index

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
            ConfigurationError: Bad token, TTL or vector.
            SchemaMismatchError: The index (or the dimension learned from it) does not fit
                the vector; the entry is not written.
            CapabilityError: The server has no query engine.
            BackendError: The server failed (subclasses for unreachable / timed out).
        """
        check_token(partition, "partition")
        check_token(entry_id, "entry_id")
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise TypeError(f"payload must be bytes, got {type(payload).__name__}")
        ttl_ms = ttl_to_ms(ttl)
        array = encode_vector(
            vector, self._dtype, self._dimension if self._declared_dimension else None
        )
        if self._ready and time.monotonic() >= self._recheck_at:
            self._ready = False  # due for a check that the index still fits
        if self._cluster is not None:
            if not self._ready:  # due: check each primary's index again on its next add
                self._indexes.clear()
                self._ready = True
                self._recheck_at = time.monotonic() + _INDEX_RECHECK_S
            # The index of the primary owning the partition (the write itself is routed
            # by its key; if the slot has just moved, the next add or search there
            # makes that primary's index).
            node = await self._owner(partition)
            if node.name not in self._indexes:
                await self._node_index(node, array.size, create=True)
            if array.size != self._dimension or array.dtype != self._dtype:
                # Raises for another size; converts to a type adopted from the index.
                array = encode_vector(array, self._dtype, self._dimension)
        else:
            if not self._ready:
                await self.prepare(array.size)
            if array.size != self._dimension:
                # The dimension was learned from the index (a lookup came first, or the
                # index was there first): check the index against this vector, which
                # raises the mismatch naming its remedy, or recreates the index.
                await self._check_for(array.size)
            if array.size != self._dimension or array.dtype != self._dtype:
                array = encode_vector(array, self._dtype, self._dimension)
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
            value = await self._command("HGET", self._key(partition, entry_id), _PAYLOAD)
        # This client never decodes (checked in __init__): replies are bytes.
        return cast("bytes | None", value)

    def _args_for(self, k: int, batches: bool = False) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """The FT.SEARCH arguments after the index name, around ``partition`` and the
        vector blob, per ``k`` and plan (``batches``: ``HYBRID_POLICY BATCHES``, else the
        server's choice)."""
        cached = self._search_args.get((k, batches))
        if cached is None:
            ef = f" EF_RUNTIME {self._ef_runtime}" if self._ef_runtime is not None else ""
            plan = " HYBRID_POLICY BATCHES" if batches else ""
            query = f"(@{_PARTITION}:{{$p}})=>[KNN {k} @{_VEC} $blob{ef}{plan} AS {_DIST}]"
            head = (query, "PARAMS", 4, "p")
            tail = ("RETURN", 2, _PAYLOAD, _DIST, "SORTBY", _DIST, "LIMIT", 0, k, "DIALECT", 2)
            cached = (head, tail)
            if len(self._search_args) < 64:  # a few distinct k in practice; stay bounded
                self._search_args[k, batches] = cached
        return cached

    def _batches(self, index: str, partition: str) -> bool:
        """Whether the KNN of ``partition`` asks for ``HYBRID_POLICY BATCHES``."""
        return self._planner is not None and self._planner.batches(index, partition)

    def _counts_due(self, index: str, partition: str) -> tuple[tuple[Any, ...], ...]:
        """The count commands (``FT.SEARCH ... LIMIT 0 0`` of the partition and of the
        whole index) due with this search on a standalone server, to be pipelined after
        it; none when no count is due (or the store cannot pipeline, or has no planner)."""
        if self._planner is None or self._pair is None:
            return ()
        partition_due, total_due = self._planner.due(index, partition)
        commands: list[tuple[Any, ...]] = []
        if partition_due:
            commands.append(
                ("FT.SEARCH", index, _COUNT_PARTITION, "PARAMS", 2, "p", partition, *_COUNT_TAIL)
            )
        if total_due:
            commands.append(("FT.SEARCH", index, "*", *_COUNT_TAIL))
        return tuple(commands)

    def _note_counts(
        self, index: str, partition: str, commands: tuple[tuple[Any, ...], ...], replies: Any
    ) -> None:
        """Give the planner the counts in ``replies`` (a failed or unreadable count is
        skipped: it only chooses a plan)."""
        if self._planner is None:
            return
        entries = total = None
        for command, reply in zip(commands, replies, strict=False):
            if command[2] == "*":
                total = _count_of(reply)
            else:
                entries = _count_of(reply)
        self._planner.note(index, partition, entries, total)

    def _query_inputs(
        self, partition: str, vector: Vector, k: int, max_distance: float
    ) -> tuple[Any, int, float]:
        """A vector query's inputs, checked: the vector as an array of the index's type,
        ``k`` and ``max_distance``.

        Raises:
            ConfigurationError: Bad token, ``k``, ``max_distance`` or vector.
        """
        check_token(partition, "partition")
        k = check_k(k)
        max_distance = check_max_distance(max_distance)
        return encode_vector(vector, self._dtype, self._dimension), k, max_distance

    def _search_query(
        self, index: str, partition: str, blob: bytes, k: int, batches: bool = False
    ) -> tuple[Any, ...]:
        """The ``FT.SEARCH`` command of a KNN ``k`` query in ``partition``."""
        head, tail = self._args_for(k, batches)
        return ("FT.SEARCH", index, *head, partition, "blob", blob, *tail)

    def _id_start(self, partition: str) -> int:
        """Where the entry id starts in the keys of ``partition``'s documents."""
        return len(self._key_root) + len(partition) + 3  # root + "{" + p + "}:"

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
        array, k, max_distance = self._query_inputs(partition, vector, k, max_distance)
        if self._cluster is not None:
            return await self._search_cluster(partition, array, k, max_distance)
        if not self._ready:
            if not await self._prepare(array.size, create=False):
                return []
            self._ready = True
            array = encode_vector(array, self._dtype, self._dimension)
        try:
            return await self._knn(
                self._index_name, None, partition, array.tobytes(), k, max_distance
            )
        except SchemaMismatchError:
            self._ready = False  # the index changed behind our back: check it again
            raise
        except _MissingIndex:
            # Dropped behind our back: the next add creates it again.
            self._ready = False
            return []

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
        ``HGET`` and ``FT.SEARCH`` pipelined in one round trip on a standalone server
        (the search's work is wasted when the entry exists); a cluster (or an index not
        yet seen) asks in turn. A key of another Redis type where the entry would be comes
        back as a :class:`~llmemo.errors.WrongTypeError` in the payload's place (the
        matches are still valid).

        Raises:
            As :meth:`get` and :meth:`search`.
        """
        check_token(entry_id, "entry_id")
        if self._pair is None or not self._ready or self._cluster is not None:
            return await probe_in_turn(self, partition, entry_id, vector, k, max_distance)
        array, k, max_distance = self._query_inputs(partition, vector, k, max_distance)
        blob = array.tobytes()
        index = self._index_name
        batches = self._batches(index, partition)
        query = self._search_query(index, partition, blob, k, batches)
        counts = self._counts_due(index, partition)
        try:
            probe, reply, *counted = await self._pair(
                ("HGET", self._key(partition, entry_id), _PAYLOAD), query, *counts
            )
        except DRIVER_ERRORS as exc:
            raise translate(exc, "HGET + FT.SEARCH") from exc
        if counts:
            self._note_counts(index, partition, counts, counted)
        probed = probed_payload(probe, lambda error: translate(error, "HGET"))
        if isinstance(probed, bytes):
            return probed, []
        try:
            matches = await self._knn(
                index, None, partition, blob, k, max_distance, first_reply=reply, batches=batches
            )
        except SchemaMismatchError:
            self._ready = False  # the index changed behind our back: check it again
            raise
        except _MissingIndex:
            self._ready = False  # dropped behind our back: the next add creates it
            return probed, []
        return probed, matches

    async def _search_cluster(
        self, partition: str, array: Any, k: int, max_distance: float
    ) -> list[VectorMatch]:
        """:meth:`search` on a cluster: the search script, on the partition's primary."""
        blob = array.tobytes()
        for attempt in range(2):
            node = await self._owner(partition)
            index = self._indexes.get(node.name)
            if index is None:
                # Make the index only when the dimension is known: a primary without one
                # may hold entries that came with a migrated slot (the initial scan of a
                # new index picks them up).
                create = self._dimension is not None
                index = await self._node_index(node, array.size, create=create)
                if index is None:
                    return []
                array = encode_vector(array, self._dtype, self._dimension)
                blob = array.tobytes()
            try:
                return await self._knn_script(index, partition, blob, k, max_distance)
            except _MissingIndex:
                # Dropped, or the slot moved and MOVED took the script to a primary where
                # this index name means nothing: ask again (the slot map is fresh now).
                self._indexes.pop(node.name, None)
                if attempt:
                    return []
        return []  # pragma: no cover - the loop returns

    async def _knn_script(
        self, index: str, partition: str, blob: bytes, k: int, max_distance: float
    ) -> list[VectorMatch]:
        """:meth:`_knn` through the cluster search script (one ``EVALSHA``)."""
        id_start = self._id_start(partition)

        batches = self._batches(index, partition)
        counts = (False, False) if self._planner is None else self._planner.due(index, partition)

        async def fetch(want: int) -> _Page:
            nonlocal counts
            query = self._args_for(want, batches)[0][0]
            flags = tuple("1" if due else "0" for due in counts)
            counts = (False, False)  # asked with the first request only
            args = (index, query, partition, blob, want, *flags)
            try:
                reply = await run_script(
                    self._client, _CLUSTER_SEARCH, (self._slot_key(partition),), args
                )
            except ResponseError as exc:
                if _is_stale_index(exc):
                    raise _MissingIndex from exc
                raise _search_error(exc, "FT.SEARCH") from exc
            except DRIVER_ERRORS as exc:
                raise translate(exc, "FT.SEARCH") from exc
            if self._planner is not None and flags != ("0", "0"):
                self._planner.note(index, partition, *_script_counts(reply))
            return _parse_script_reply(reply, id_start, max_distance)

        return await _until_enough(fetch, k)

    async def _knn(
        self,
        index: str,
        node: ClusterNode | None,
        partition: str,
        blob: bytes,
        k: int,
        max_distance: float,
        *,
        first_reply: Any = None,
        batches: bool | None = None,
    ) -> list[VectorMatch]:
        """One ``FT.SEARCH`` (more only after meeting expired documents); with
        ``first_reply``, the reply (or error reply) of a first one already sent with the
        plan ``batches``. Without it, the plan is the planner's and the first request
        carries the counts due (pipelined, same round trip).

        Raises:
            _MissingIndex: The index does not exist (there).
        """
        id_start = self._id_start(partition)
        if batches is None:
            batches = self._batches(index, partition)
        counts = (
            ()
            if first_reply is not None or node is not None
            else self._counts_due(index, partition)
        )

        def page(reply: Any) -> _Page:
            if isinstance(reply, ResponseError):
                if _is_missing_index(reply):
                    raise _MissingIndex from reply
                raise _search_error(reply, "FT.SEARCH") from reply
            return _parse_search(reply, id_start, max_distance)

        async def fetch(want: int) -> _Page:
            nonlocal counts
            query = self._search_query(index, partition, blob, want, batches)
            try:
                if counts and self._pair is not None:
                    reply, *counted = await self._pair(query, *counts)
                    self._note_counts(index, partition, counts, counted)
                    counts = ()
                else:
                    reply = await self._ft(node, *query)
            except ResponseError as exc:
                reply = exc
            except DRIVER_ERRORS as exc:
                raise translate(exc, "FT.SEARCH") from exc
            return page(reply)

        first = None if first_reply is None else page(first_reply)
        return await _until_enough(fetch, k, first)

    async def delete(self, partition: str, entry_id: str) -> bool:
        """Remove one entry (one ``UNLINK``); return whether it existed."""
        check_token(partition, "partition")
        check_token(entry_id, "entry_id")
        with map_redis_errors("UNLINK"):
            removed: int = await self._client.unlink(self._key(partition, entry_id))
        return removed > 0

    async def clear(self, *, progress: Callable[[int], object] | None = None) -> int:
        """Remove every entry of this store (``SCAN`` + ``UNLINK`` of ``<name>:v1:s:*``).

        The index stays (empty) and nothing outside this store's key prefix is touched.
        Not atomic: entries added while it runs may survive. Each command may take
        ``admin_timeout`` (an ``UNLINK`` of 500 indexed entries takes ~0.25 s).

        Args:
            progress: Called with the running count after each ``UNLINK`` batch.

        Returns:
            How many entries (keys) were removed.
        """
        pattern = glob_escape(self._key_root) + "*"
        if self._planner is not None:
            self._planner.forget()  # an emptied partition is searched by the server's plan
        with map_redis_errors("clear"):
            return await unlink_matching(
                self._client, pattern, 500, timeout=self._admin_timeout, progress=progress
            )

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


class _MissingIndex(Exception):
    """``FT.SEARCH`` found no index by that name (internal signal)."""


def _count_of(reply: Any) -> int | None:
    """The number of results of an ``FT.SEARCH ... LIMIT 0 0`` reply (RESP2 ``[n]``,
    RESP3 map, or a script's integer), or ``None`` for an error or any other shape."""
    try:
        if isinstance(reply, dict):
            reply = reply.get(b"total_results")
        elif isinstance(reply, list):
            reply = reply[0]
        if type(reply) is int and reply >= 0:
            return reply
    except REPLY_SHAPE_ERRORS:
        pass
    return None


def _match(doc_id: Any, distance: float, payload: Any) -> VectorMatch:
    """One row within reach as a match (``distance`` checked, not NaN).

    A document whose id is not UTF-8 is not one this store wrote (its ids are ASCII
    tokens): it comes back with an empty payload, which callers cannot decode (a cache
    counts it as an undecodable entry and tries its other candidates).

    Raises:
        TypeError / AttributeError: the payload or the id is not bytes (the parsers map
            these to SerializationError).
    """
    if type(payload) is not bytes:
        raise TypeError(f"the payload is {type(payload).__name__}, not bytes")
    distance = 0.0 if distance < 0.0 else (2.0 if distance > 2.0 else distance)
    try:
        return VectorMatch(doc_id.decode(), distance, payload)
    except UnicodeDecodeError:
        return VectorMatch(doc_id.decode("utf-8", "backslashreplace"), distance, b"")


def _script_counts(reply: Any) -> tuple[int | None, int | None]:
    """The partition's and the index's counts heading the cluster search script's reply
    (``None`` where not counted, or unreadable)."""
    if not isinstance(reply, list) or len(reply) < 2:
        return None, None
    return _count_of(reply[0]), _count_of(reply[1])


def _parse_script_reply(
    reply: Any, id_start: int, max_distance: float
) -> tuple[list[VectorMatch], int, int, bool]:
    """Parse the cluster search script's ``[count, count, id, distance, payload, ...]``,
    as :func:`_parse_search` does an ``FT.SEARCH`` reply (the counts are left to
    :func:`_script_counts`).

    Raises:
        SerializationError: the reply is not one the script returns (a row of another
            shape, a distance that is not a number or is NaN).
    """
    try:
        if len(reply) < 2:
            raise ValueError("the reply lacks its two counts")
        matches: list[VectorMatch] = []
        skipped = 0
        rows = (len(reply) - 2) // 3
        for i in range(2, len(reply) - 2, 3):
            payload = reply[i + 2]
            dist = reply[i + 1]
            if payload is None or dist is None:
                skipped += 1  # expired (not reclaimed yet) or deleted meanwhile
                continue
            distance = float(dist)
            if not distance <= max_distance:  # beyond, or NaN (which passes every bound)
                if distance > max_distance:
                    return matches, rows, skipped, True
                raise ValueError("the distance is NaN")
            matches.append(_match(reply[i][id_start:], distance, payload))
        return matches, rows, skipped, False
    except REPLY_SHAPE_ERRORS as exc:
        raise malformed_reply(exc, "FT.SEARCH script") from exc


def _parse_search(
    reply: Any, id_start: int, max_distance: float
) -> tuple[list[VectorMatch], int, int, bool]:
    """Parse an ``FT.SEARCH`` reply (RESP2 list or RESP3 map).

    Returns:
        ``(matches within max_distance, rows in the reply, rows skipped as expired,
        whether a row beyond max_distance was met)``.

    Raises:
        SerializationError: the reply is not a search reply (another shape, a distance
            that is not a number or is NaN): caches count it as a miss.
    """
    try:
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
            if not distance <= max_distance:  # beyond, or NaN (which passes every bound)
                if distance > max_distance:
                    # Rows come sorted by distance: the rest is farther still.
                    return matches, rows, skipped, True
                raise ValueError("the distance is NaN")
            matches.append(_match(doc_id[id_start:], distance, payload))
        return matches, rows, skipped, False
    except REPLY_SHAPE_ERRORS as exc:
        raise malformed_reply(exc, "FT.SEARCH") from exc


#: One page of KNN rows: (matches, rows returned, expired rows skipped, rows beyond the
#: distance bound seen).
_Page = tuple[list[VectorMatch], int, int, bool]


async def _until_enough(
    fetch: Callable[[int], Awaitable[_Page]], k: int, first: _Page | None = None
) -> list[VectorMatch]:
    """Fetch the ``k`` nearest rows, asking for more only when expired-but-unreclaimed
    documents took places among them (at most ``_MAX_SEARCH_ATTEMPTS`` requests);
    ``first`` is the page of ``k`` rows when it is already at hand."""
    want = k
    matches: list[VectorMatch] = []
    for attempt in range(_MAX_SEARCH_ATTEMPTS):
        page = first if attempt == 0 and first is not None else await fetch(want)
        matches, rows, skipped, beyond = page
        if not skipped or beyond or len(matches) >= k or rows < want:
            return matches[:k]
        want = max(want * 2, k + skipped)
    return matches[:k]
