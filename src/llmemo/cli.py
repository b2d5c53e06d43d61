"""The ``llmemo`` command: ``demo``, and ``stats``/``clear`` for a cache on Redis.

With ``--cluster`` the URL names one startup node of a Redis Cluster: keys are scanned on
every primary, deleted one hash slot at a time, and the cache's RediSearch indexes are
the per-primary ``<root>:v1:ix:{tag}`` ones (see ``docs/cluster.md``).

Exit codes: 0 success (also ``stats`` and ``clear`` of a cache without keys: Redis cannot
tell an emptied cache from an unused name); 1 a runtime error (server unreachable,
authentication failed, a Redis error, a missing optional dependency, a declined
confirmation); 2 a usage error (bad option, malformed URL, a missing or malformed input
file, a Redis Cluster node without ``--cluster``, ``clear`` without ``--yes`` and
without a terminal to ask on).
Errors are printed as one line on stderr, never as a traceback.

Importing this module imports nothing heavy: redis, LangChain and the embedding model
load inside the subcommand that needs them.
"""

from __future__ import annotations

import argparse
import math
import random
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from llmemo import keys
from llmemo._argtypes import positive_int
from llmemo.demo import connect_error, redact_secrets, redact_url
from llmemo.errors import (
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    LlmemoError,
    MissingDependencyError,
    WrongTypeError,
)
from llmemo.policy import DEFAULT_ADMIN_TIMEOUT

if TYPE_CHECKING:
    import redis

__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_USAGE", "Progress", "build_parser", "main"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2

#: Seconds of work after which ``stats``/``clear`` start reporting progress on stderr.
PROGRESS_AFTER_S = 1.0
#: Seconds between two progress lines.
PROGRESS_EVERY_S = 1.0
_SCAN_COUNT = 1000
_BATCH = 500
_SEMANTIC_DEFAULT_PREFIX = "llmcache"  # RedisSemanticCache's default prefix
_KINDS = ("all", "exact", "semantic")

# What follows "<root>:v1:" in each kind of key llmemo writes, exactly (see keys.py and
# the Redis stores): partitions and ids are 32 lowercase hex characters. A key of any
# other shape under the root (another program's, a half-written name) is never selected.
_ID = rb"[0-9a-f]{%d}" % keys.ID_HEX_CHARS
_SHAPES = {
    "exact": rb"x:" + _ID + rb":" + _ID,  # ExactCache / RedisCache string
    "search": rb"s:\{" + _ID + rb"\}:" + _ID,  # RediSearch hash (vector + payload)
    "vset": rb"vs:\{" + _ID + rb"\}",  # Redis 8 vector set (one per partition)
    "vpayload": rb"vp:\{" + _ID + rb"\}:" + _ID,  # payload string of a vector-set entry
    "stats": rb"stats",  # the counters caches with publish_stats=True add to (a hash)
}
_SHAPE_RE = re.compile(b"|".join(b"(?P<%s>%s)" % (k.encode(), v) for k, v in _SHAPES.items()))
_SEMANTIC_KINDS = frozenset({"search", "vset", "vpayload"})


class _UsageError(LlmemoError):
    """A command line that cannot be run as given (exit code 2)."""


# -- output helpers ----------------------------------------------------------------------


def _one_line(message: object) -> str:
    return " ".join(str(message).split())


def _error(message: object) -> None:
    print(f"llmemo: error: {_one_line(message)}", file=sys.stderr, flush=True)


class Progress:
    """Prints a progress line on ``stream`` once work has run longer than ``after`` seconds.

    Args:
        what: Describes the work (e.g. ``"scanning llmcache:v1:*"``).
        stream: Where lines go (stderr).
        after: Seconds of silence before the first line.
        every: Seconds between lines.
        clock: Monotonic seconds.
    """

    def __init__(
        self,
        what: str,
        *,
        stream: TextIO | None = None,
        after: float | None = None,
        every: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.stream = stream if stream is not None else sys.stderr
        self.after = PROGRESS_AFTER_S if after is None else after
        self.every = PROGRESS_EVERY_S if every is None else every
        self.clock = clock
        self.start = clock()
        self.last: float | None = None
        self.shown = False

    def update(self, detail: str) -> None:
        """Report ``detail`` if the work has been slow enough and the last line is old."""
        now = self.clock()
        if now - self.start < self.after:
            return
        if self.last is not None and now - self.last < self.every:
            return
        self.last = now
        self.shown = True
        print(f"{self.what}: {detail} ...", file=self.stream, flush=True)

    def done(self, detail: str) -> None:
        """Close the report with ``detail`` (only if something was shown)."""
        if self.shown:
            elapsed = self.clock() - self.start
            print(f"{self.what}: {detail} ({elapsed:.1f} s)", file=self.stream, flush=True)


def _size(n_bytes: float) -> str:
    value = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


# -- which keys are a cache's --------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """The cache a ``stats``/``clear`` command is about.

    Attributes:
        root: Key root: ``prefix`` (``RedisCache``, or ``RedisSemanticCache`` with
            ``name == prefix``) or ``prefix:name``. Keys are ``{root}:v1:...`` and the
            RediSearch index, if any, is named ``{root}:v1:ix``.
        kind: ``"all"``, ``"exact"`` or ``"semantic"``.
    """

    root: str
    kind: str

    @property
    def pattern(self) -> str:
        """The SCAN pattern of every llmemo key under ``root``."""
        return f"{self.root}:{keys.KEY_SCHEMA}:*"

    def classify(self, key: bytes) -> str | None:
        """What ``key`` holds (``exact``, ``search``, ``vset``, ``vpayload``) if selected:
        only a key of exactly the shape llmemo writes under ``root`` is."""
        head = f"{self.root}:{keys.KEY_SCHEMA}:".encode()
        if not key.startswith(head):
            return None
        shape = _SHAPE_RE.fullmatch(key, len(head))
        if shape is None:
            return None
        what = shape.lastgroup
        assert what is not None
        if self.kind == "exact" and what != "exact":
            return None  # the counters' hash belongs to the whole root: --kind all only
        if self.kind == "semantic" and what not in _SEMANTIC_KINDS:
            return None
        return what

    @property
    def semantic(self) -> bool:
        """Whether semantic entries (and the RediSearch index) are included."""
        return self.kind in ("all", "semantic")


def _target_from_args(args: argparse.Namespace) -> _Target:
    """Resolve ``--prefix``/``--name``/``--kind`` into a :class:`_Target`.

    Raises:
        _UsageError: neither ``--prefix`` nor ``--name``.
        ConfigurationError: a prefix or name llmemo could not have written.
    """
    prefix: str | None = args.prefix
    name: str | None = args.name
    if prefix is None and name is None:
        raise _UsageError(
            "say which cache: --prefix P (RedisCache(prefix=P)) and/or --name N "
            "(RedisSemanticCache(name=N, prefix=P), prefix default 'llmcache')"
        )
    if prefix is None:
        prefix = _SEMANTIC_DEFAULT_PREFIX
    try:
        root = keys.semantic_root(prefix, prefix if name is None else name)
    except ConfigurationError as exc:  # name the options, not the cache's parameters
        raise ConfigurationError(f"--{exc}") from exc
    return _Target(root, args.kind)


# -- Redis ---------------------------------------------------------------------------------


def _connect(url: str, timeout: float, *, cluster: bool = False) -> redis.Redis:
    """A sync client for ``url`` that has answered PING (a ``redis.RedisCluster`` that
    has fetched the topology when ``cluster``).

    Raises:
        _UsageError: malformed URL.
        BackendUnavailableError: the server cannot be reached (message names the URL).
    """
    import redis

    from llmemo.stores.redis._errors import map_redis_errors

    if cluster:
        return _connect_cluster(url, timeout)
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    except ValueError as exc:
        raise _UsageError(
            f"--redis-url {redact_url(url)!r} is not a Redis URL: {redact_secrets(str(exc), url)}"
        ) from exc
    try:
        with map_redis_errors("PING"):
            client.ping()
        _refuse_cluster_node(client, url)
    except BackendUnavailableError as exc:
        client.close()
        raise connect_error(exc, url, "Redis") from exc
    except (BackendError, _UsageError):
        client.close()
        raise
    return client


def _refuse_cluster_node(client: redis.Redis, url: str) -> None:
    """Raise a usage error when ``client`` talks to a node of a Redis Cluster: a plain
    client sees one shard's keys only, so counts would be partial and a clear
    incomplete (one ``INFO cluster`` round trip).

    Raises:
        _UsageError: the server is a cluster node (the message says to pass --cluster).
    """
    from llmemo.errors import BackendTimeoutError
    from llmemo.stores.redis._errors import map_redis_errors

    try:
        with map_redis_errors("INFO cluster"):
            info = client.info("cluster")
    except (BackendUnavailableError, BackendTimeoutError):
        raise
    except BackendError:  # INFO refused (an ACL, a renamed command): cannot tell, go on
        return
    if str(info.get("cluster_enabled", 0)) == "1":
        raise _UsageError(
            f"{redact_url(url)} is a node of a Redis Cluster: pass --cluster (a plain "
            "connection would see this node's keys only)"
        )


def _connect_cluster(url: str, timeout: float) -> redis.Redis:
    import redis

    from llmemo.stores.redis._errors import map_redis_errors

    try:
        with map_redis_errors("cluster topology"):
            # Connects to the startup node and fetches the slot map (CLUSTER SLOTS).
            client = redis.RedisCluster.from_url(
                url, socket_connect_timeout=timeout, socket_timeout=timeout
            )
    except ValueError as exc:
        raise _UsageError(
            f"--redis-url {redact_url(url)!r} is not a Redis URL: {redact_secrets(str(exc), url)}"
        ) from exc
    except BackendError as exc:
        raise connect_error(exc, url, "Redis Cluster") from exc
    # Typed as the standalone client: the commands used here have the same signatures,
    # and the cluster-only paths check _is_cluster() first.
    return client  # type: ignore[return-value]


def _is_cluster(client: object) -> bool:
    import redis

    return isinstance(client, redis.RedisCluster)


def _shards(client: redis.Redis) -> list[tuple[str | None, redis.Redis]]:
    """``(node name, client)`` of every shard: the server itself (name ``None``), or one
    direct client per primary of a cluster (commands sent to it reach that primary)."""
    if not _is_cluster(client):
        return [(None, client)]
    from llmemo.stores.redis._errors import map_redis_errors

    cluster: Any = client
    with map_redis_errors("cluster topology"):
        return [
            (node.name, cluster.get_redis_connection(node))
            for node in sorted(cluster.get_primaries(), key=lambda n: n.name)
        ]


@dataclass
class _Scan:
    """What one SCAN over a cache's keys found.

    Attributes:
        counts: Keys per kind (``exact``, ``search``, ``vset``, ``vpayload``).
        sample: A uniform random sample of the selected keys (reservoir sampling).
        total: Selected keys.
    """

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_SHAPES, 0))
    sample: list[bytes] = field(default_factory=list)
    total: int = 0

    @property
    def entries(self) -> int:
        """Cache entries: exact keys, RediSearch hashes and vector-set payloads."""
        return self.counts["exact"] + self.counts["search"] + self.counts["vpayload"]


def _iter_keys(client: redis.Redis, target: _Target, progress: Progress) -> Iterator[bytes]:
    """Yield the selected keys of ``target`` (SCAN, so keys written meanwhile may or may
    not be seen), reporting progress after each SCAN call once the work is slow."""
    from llmemo.stores.redis._errors import map_redis_errors

    shards = [shard for _, shard in _shards(client)]  # every primary of a cluster
    with map_redis_errors("DBSIZE"):
        keyspace = sum(int(shard.dbsize()) for shard in shards)
    visited = found = 0
    for number, shard in enumerate(shards, 1):
        cursor: int = 0
        while True:
            with map_redis_errors("SCAN"):
                cursor, batch = shard.scan(cursor=cursor, match=target.pattern, count=_SCAN_COUNT)
            visited += _SCAN_COUNT
            for key in batch:
                if isinstance(key, bytes) and target.classify(key) is not None:
                    found += 1
                    yield key
            if cursor == 0 and number == len(shards):
                return
            if cursor == 0:
                break
            share = min(99, 100 * visited // max(keyspace, 1))
            progress.update(f"{found:,} keys found, about {share}% of {keyspace:,} keys scanned")


def _scan(
    client: redis.Redis, target: _Target, *, sample_size: int, rng: random.Random | None = None
) -> _Scan:
    """Count the keys of ``target`` by kind and keep a uniform sample of them."""
    rng = rng or random.Random()
    progress = Progress(f"scanning {target.pattern}")
    result = _Scan()
    for key in _iter_keys(client, target, progress):
        what = target.classify(key)
        assert what is not None
        result.counts[what] += 1
        result.total += 1
        if len(result.sample) < sample_size:
            result.sample.append(key)
        elif sample_size:
            slot = rng.randrange(result.total)
            if slot < sample_size:
                result.sample[slot] = key
    progress.done(f"{result.total:,} keys")
    return result


def _memory_usage(client: redis.Redis, sample: list[bytes]) -> tuple[int, int]:
    """Sum ``MEMORY USAGE`` over ``sample``; return ``(bytes, keys measured)``.

    Keys that expired since the scan are skipped (and not counted as measured).
    """
    from llmemo.stores.redis._errors import map_redis_errors

    progress = Progress("measuring memory")
    total = measured = 0
    for start in range(0, len(sample), _BATCH):
        with map_redis_errors("MEMORY USAGE"):
            for shard, keys_there in _route(client, sample[start : start + _BATCH]):
                pipe = shard.pipeline(transaction=False)
                for key in keys_there:
                    pipe.memory_usage(key)
                for used in pipe.execute():
                    if used is not None:
                        total += int(used)
                        measured += 1
        progress.update(f"{start + _BATCH:,} of {len(sample):,} keys")
    progress.done(f"{measured:,} keys")
    return total, measured


def _route(client: redis.Redis, keys: list[bytes]) -> list[tuple[redis.Redis, list[bytes]]]:
    """``keys`` grouped by the shard that holds them (per a cluster's slot map): one
    group, the server itself, when not a cluster. Raises the driver's errors."""
    if not _is_cluster(client):
        return [(client, keys)] if keys else []
    cluster: Any = client
    groups: dict[str, tuple[redis.Redis, list[bytes]]] = {}
    for key in keys:
        node = cluster.get_node_from_key(key)
        group = groups.get(node.name)
        if group is None:
            group = groups[node.name] = (cluster.get_redis_connection(node), [])
        group[1].append(key)
    return list(groups.values())


@dataclass
class _Indexes:
    """The RediSearch index(es) of a cache.

    Attributes:
        docs: ``num_docs`` summed over them; ``None`` when there is none;
            ``"unavailable"`` when the server has no RediSearch.
        found: ``(shard client, index name)`` of each, for ``FT.DROPINDEX``.
        label: How messages name them.
    """

    docs: int | str | None
    found: list[tuple[redis.Redis, str]]
    label: str


def _find_indexes(client: redis.Redis, root: str) -> _Indexes:
    """The cache's index: named ``<root>:v1:ix`` on a server (plus the index named
    ``root`` that llmemo before 0.x made, only when it covers exactly this cache's
    ``<root>:v1:s:`` keys, so a foreign ``llmcache`` index is never touched); on a
    cluster, the indexes named ``<root>:v1:ix:{tag}`` that each primary lists
    (``FT._LIST``) and owns the name's slot of (``FT.INFO`` is sent to that primary)."""
    if not _is_cluster(client):
        return _find_server_index(client, root)
    from llmemo.errors import CapabilityError
    from llmemo.stores.redis._errors import map_redis_errors

    cluster: Any = client
    head = f"{root}:{keys.KEY_SCHEMA}:ix:{{"
    found: list[tuple[redis.Redis, str]] = []
    total = 0
    for node_name, shard in _shards(client):
        try:
            with map_redis_errors("FT._LIST"):
                reply = shard.execute_command("FT._LIST")  # type: ignore[no-untyped-call]
        except CapabilityError:
            return _Indexes("unavailable", [], f"'{head}...}}'")
        for item in reply or ():
            name = item.decode() if isinstance(item, bytes) else str(item)
            if not (name.startswith(head) and name.endswith("}")):
                continue
            with map_redis_errors("cluster routing"):
                owner = cluster.get_node_from_key(name)
            if owner is None or owner.name != node_name:
                continue  # its name's slot moved away: not addressable there
            docs = _index_docs(shard, name)
            if isinstance(docs, int):
                found.append((shard, name))
                total += docs
    label = f"'{head}...}}'" + (f" (one per primary, {len(found)})" if found else "")
    return _Indexes(total if found else None, found, label)


def _find_server_index(client: redis.Redis, root: str) -> _Indexes:
    """:func:`_find_indexes` on a server (not a cluster)."""
    name = f"{root}:{keys.KEY_SCHEMA}:ix"
    docs = _index_docs(client, name)
    if docs == "unavailable":
        return _Indexes(docs, [], repr(name))
    # The older layout's index covers the same keys: its documents are the same entries.
    legacy = _index_docs(client, root, owned_prefix=f"{root}:{keys.KEY_SCHEMA}:s:")
    found = [(client, index) for index, n in ((name, docs), (root, legacy)) if isinstance(n, int)]
    if not isinstance(docs, int):
        if isinstance(legacy, int):
            return _Indexes(legacy, found, f"{root!r} (older llmemo)")
        return _Indexes(docs, found, repr(name))
    label = repr(name) if len(found) == 1 else f"{name!r} (and the older {root!r})"
    return _Indexes(docs, found, label)


def _index_docs(
    client: redis.Redis, name: str, *, owned_prefix: str | None = None
) -> int | str | None:
    """The ``num_docs`` of RediSearch index ``name``; ``None`` when there is no such
    index (or, with ``owned_prefix``, when the index covers any other key prefix than
    exactly that one: not llmemo's); ``"unavailable"`` when the server has no
    RediSearch."""
    from redis.exceptions import ResponseError

    from llmemo.errors import CapabilityError
    from llmemo.stores.redis._errors import map_redis_errors

    try:
        with map_redis_errors("FT.INFO"):
            reply = client.execute_command("FT.INFO", name)  # type: ignore[no-untyped-call]
    except CapabilityError:
        return "unavailable"
    except BackendError as exc:
        cause = exc.__cause__
        message = str(cause).lower()
        missing = "unknown index" in message or "no such" in message
        if isinstance(cause, ResponseError) and missing:
            return None
        raise
    info: dict[Any, Any]
    if isinstance(reply, dict):
        info = reply
    else:
        items = list(reply)
        info = dict(zip(items[::2], items[1::2], strict=False))
    fields = {(k.decode() if isinstance(k, bytes) else str(k)): v for k, v in info.items()}
    if owned_prefix is not None and _index_prefixes(fields) != [owned_prefix]:
        return None
    value = fields.get("num_docs")
    return 0 if value is None else int(value)


def _index_prefixes(info: dict[str, Any]) -> list[str]:
    """The key prefixes of an index, from its ``FT.INFO`` (RESP2 list or RESP3 map)."""
    definition = info.get("index_definition") or []
    if isinstance(definition, dict):
        pairs = list(definition.items())
    else:
        items = list(definition)
        pairs = list(zip(items[::2], items[1::2], strict=False))
    for key, value in pairs:
        if (key.decode() if isinstance(key, bytes) else str(key)) == "prefixes":
            return [p.decode() if isinstance(p, bytes) else str(p) for p in value or ()]
    return []


def _describe_target(target: _Target, url: str, *, cluster: bool = False) -> str:
    kinds = {"all": "", "exact": " (exact entries only)", "semantic": " (semantic entries only)"}
    where = " (Redis Cluster)" if cluster else ""
    return f"cache {target.root!r}{kinds[target.kind]} on {redact_url(url)}{where}"


#: What ``stats`` and ``clear`` say of a key root without keys (nor an index).
_NOTHING_HERE = "no keys: an empty cache, or no cache of that name here (check --prefix/--name)"


# -- subcommands ---------------------------------------------------------------------------


#: A published counter: a sum of positive increments, at most 30 ASCII digits (int() would
#: accept signs, other Unicode digits, underscores and spaces, and refuse 4,300+ digits).
_COUNTER = re.compile(rb"[0-9]{1,30}")


@dataclass
class _Counters:
    """What could be read of a ``{root}:v1:stats`` hash.

    Attributes:
        counts: Counter name -> value.
        updated_at: When they were last published (unix seconds), if readable.
        unreadable: Printable names of the fields that could not be read.
    """

    counts: dict[str, int] = field(default_factory=dict)
    updated_at: float | None = None
    unreadable: list[str] = field(default_factory=list)


def _read_counters(raw: Any) -> _Counters:
    """Read the counters caches publish (``HGETALL`` reply: field -> value, as bytes).

    Anything else in the hash (another writer's fields, names or values that are not
    UTF-8, values that are not whole numbers, a timestamp that is not a finite number)
    is listed in :attr:`_Counters.unreadable` instead of failing; never raises.
    """
    found = _Counters()
    items = raw.items() if isinstance(raw, dict) else ()
    for name, value in items:
        if not isinstance(name, bytes):
            found.unreadable.append(repr(name)[:40])
            continue
        label = name.decode("utf-8", "backslashreplace")
        label = label if len(label) <= 40 else label[:40] + "..."
        if not isinstance(value, bytes):
            found.unreadable.append(label)
        elif name == b"updated_at":
            try:
                when = float(value.decode("ascii"))
            except (UnicodeDecodeError, ValueError):
                when = math.nan
            if math.isfinite(when):
                found.updated_at = when
            else:
                found.unreadable.append(label)
        elif _COUNTER.fullmatch(value) and label.isidentifier():
            found.counts[label] = int(value)
        else:
            found.unreadable.append(label)
    found.unreadable.sort()
    return found


def _print_counters(client: Any, root: str, out: Any) -> None:
    """The counters the caches published to ``{root}:v1:stats`` (summed over
    every process using the cache), or a line saying there are none yet. Fields that
    cannot be read (another writer's data) are named, not fatal."""
    from llmemo.stores.redis._errors import map_redis_errors

    stats_key = f"{root}:{keys.KEY_SCHEMA}:stats"
    try:
        with map_redis_errors("HGETALL"):
            raw = client.hgetall(stats_key)
    except WrongTypeError:
        print(f"  counters:    unreadable ({stats_key!r} is not a hash)", file=out)
        return
    found = _read_counters(raw)
    counts = found.counts
    if not counts and found.updated_at is None and not found.unreadable:
        print(
            "  counters:    none published (caches with publish_stats=True publish them "
            "at most every 10 s while used, and when closed)",
            file=out,
        )
        return
    hits = counts.get("exact_hits", 0) + counts.get("semantic_hits", 0)
    misses = counts.get("misses", 0)
    rate = f" ({hits / (hits + misses):.0%} hit rate)" if hits + misses else ""
    print(f"  lookups:     {hits:,} hits, {misses:,} misses{rate}", file=out)
    for name in sorted(counts):
        if counts[name] and name not in ("exact_hits", "semantic_hits", "misses"):
            print(f"    {name}: {counts[name]:,}", file=out)
    if found.updated_at is not None:
        age = time.time() - found.updated_at
        print(f"  counters published {age:,.0f} s ago", file=out)
    if found.unreadable:
        shown = ", ".join(found.unreadable[:8])
        more = f" and {len(found.unreadable) - 8} more" if len(found.unreadable) > 8 else ""
        print(
            f"  unreadable:  {len(found.unreadable)} field(s) of {stats_key!r} skipped "
            f"(not written by llmemo?): {shown}{more}",
            file=out,
        )


def _cmd_stats(args: argparse.Namespace) -> int:
    target = _target_from_args(args)
    client = _connect(args.redis_url, args.timeout, cluster=args.cluster)
    try:
        found = _scan(client, target, sample_size=args.sample)
        indexes = _find_indexes(client, target.root) if target.semantic else None
        docs = indexes.docs if indexes is not None else None
        out = sys.stdout
        counts = found.counts
        print(_describe_target(target, args.redis_url, cluster=args.cluster), file=out)
        print(f"  keys:        {found.total:,} matching {target.pattern}", file=out)
        if found.total == 0 and not isinstance(docs, int):
            # Redis cannot tell an emptied cache from a name never used: say both.
            print(f"    {_NOTHING_HERE}", file=out)
        print(f"  entries:     {found.entries:,}", file=out)
        if target.kind != "semantic":
            print(f"    exact:                 {counts['exact']:,}", file=out)
        if target.semantic:
            print(f"    semantic (RediSearch): {counts['search']:,}", file=out)
            print(
                f"    semantic (vector sets): {counts['vpayload']:,} "
                f"in {counts['vset']:,} vector sets",
                file=out,
            )
        used, measured = _memory_usage(client, found.sample)
        if measured == 0:
            print("  memory:      0 B", file=out)
        elif measured >= found.total:
            print(
                f"  memory:      {_size(used)} (MEMORY USAGE summed over {measured:,} keys)",
                file=out,
            )
        else:
            estimate = used / measured * found.total
            print(
                f"  memory:      ~{_size(estimate)} (estimated: MEMORY USAGE of {measured:,} "
                f"sampled keys of {found.total:,})",
                file=out,
            )
        if indexes is not None:
            if docs == "unavailable":
                print("  index:       none (server has no RediSearch)", file=out)
            elif docs is None:
                print(f"  index:       no RediSearch index {indexes.label}", file=out)
            else:
                print(f"  index:       RediSearch {indexes.label}, {docs:,} documents", file=out)
        _print_counters(client, target.root, out)
    finally:
        client.close()
    return EXIT_OK


def _confirm(question: str) -> bool:
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def _cmd_clear(args: argparse.Namespace) -> int:
    target = _target_from_args(args)
    if not args.yes and not sys.stdin.isatty():
        raise _UsageError(
            "refusing to delete without confirmation: standard input is not a terminal (pass --yes)"
        )
    client = _connect(args.redis_url, args.timeout, cluster=args.cluster)
    try:
        found = _scan(client, target, sample_size=0)
        indexes = _find_indexes(client, target.root) if target.semantic else None
        drop = args.drop_index and indexes is not None and bool(indexes.found)
        described = _describe_target(target, args.redis_url, cluster=args.cluster)
        if found.total == 0 and not drop:
            # Idempotent: clearing an empty cache succeeds without asking.
            print(f"deleted 0 keys of {described} ({_NOTHING_HERE})")
            return EXIT_OK
        what = f"{found.entries:,} entries ({found.total:,} keys)"
        if drop:
            assert indexes is not None
            what += f" and the RediSearch index {indexes.label}"
        if not args.yes and not _confirm(f"delete {what} of {described}?"):
            print("aborted: nothing deleted", file=sys.stderr)
            return EXIT_ERROR
        removed = _unlink_all(client, target)
        suffix = ""
        if drop:
            assert indexes is not None
            for shard, name in indexes.found:
                _drop_index(shard, name)
            suffix = f"; dropped RediSearch index {indexes.label}"
        print(f"deleted {removed:,} keys of {described}{suffix}")
    finally:
        client.close()
    return EXIT_OK


def _unlink_all(client: redis.Redis, target: _Target) -> int:
    from llmemo.stores.redis._errors import map_redis_errors

    progress = Progress(f"deleting {target.pattern}")
    removed = 0
    batch: list[bytes] = []
    with map_redis_errors("UNLINK"):
        for key in _iter_keys(client, target, progress):
            batch.append(key)
            if len(batch) >= _BATCH:
                removed += _unlink(client, batch)
                batch.clear()
                progress.update(f"{removed:,} deleted")
        if batch:
            removed += _unlink(client, batch)
    progress.done(f"{removed:,} deleted")
    return removed


def _unlink(client: redis.Redis, batch: list[bytes]) -> int:
    """UNLINK ``batch``; on a cluster one command per hash slot (a multi-key command
    across slots fails), all of them in one pipeline (a round trip per primary)."""
    if not _is_cluster(client):
        return int(client.unlink(*batch))
    cluster: Any = client
    slots: dict[int, list[bytes]] = {}
    for key in batch:
        slots.setdefault(cluster.keyslot(key), []).append(key)
    pipe = cluster.pipeline()
    for keys_in_slot in slots.values():
        pipe.execute_command("UNLINK", *keys_in_slot)
    return sum(int(n) for n in pipe.execute())


def _drop_index(client: redis.Redis, name: str) -> bool:
    from llmemo.stores.redis._errors import map_redis_errors

    with map_redis_errors("FT.DROPINDEX"):
        client.execute_command("FT.DROPINDEX", name)  # type: ignore[no-untyped-call]
    return True


def _cmd_demo(args: argparse.Namespace) -> int:
    import asyncio

    from llmemo.demo import options_from_args, run_demo

    options = options_from_args(args)
    asyncio.run(run_demo(options))
    return EXIT_OK


# -- parser --------------------------------------------------------------------------------

_EXIT_CODES = "exit codes: 0 ok, 1 runtime error, 2 usage error"

_TARGET_HELP = """\
which cache: RedisCache(prefix=P) is --prefix P; RedisSemanticCache(name=N, prefix=P) is
--prefix P --name N (its keys live under P:N, or under P when N == P; --name alone means
prefix 'llmcache'). Both kinds of entries under that key root are included unless --kind
says otherwise."""


def _add_target_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis-url",
        default="redis://localhost:6379",
        metavar="URL",
        help="Redis server (redis://, rediss://, unix://; default %(default)s)",
    )
    parser.add_argument("--prefix", metavar="P", help="the cache's key prefix")
    parser.add_argument("--name", metavar="N", help="the semantic cache's name")
    parser.add_argument(
        "--kind",
        choices=_KINDS,
        default="all",
        help="which entries under the key root: all (default), exact or semantic",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        # The administrative timeout of the caches (FailurePolicy.admin_timeout): one
        # UNLINK of 500 indexed entries takes ~0.25 s, far more on a loaded server.
        default=DEFAULT_ADMIN_TIMEOUT,
        metavar="SECONDS",
        help="connect and command timeout (default %(default)s)",
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="URL names one node of a Redis Cluster: scan every primary, delete one hash "
        "slot at a time, and use the per-primary RediSearch indexes",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``llmemo`` command (all subcommands)."""
    parser = argparse.ArgumentParser(
        prog="llmemo",
        description="llmemo: an async-first exact and semantic cache for LLM responses.",
        epilog=_EXIT_CODES,
    )
    from llmemo import __version__

    parser.add_argument("--version", action="version", version=f"llmemo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    from llmemo.demo import add_arguments as add_demo_arguments

    demo = sub.add_parser(
        "demo",
        help="walk through exact, semantic and TTL caching (in memory, or on --redis-url)",
        description="Walk through exact, semantic and TTL caching through LangChain, with "
        "the local all-MiniLM-L6-v2 embedding model; in process memory unless --redis-url "
        "is given. Removes everything it wrote.",
        epilog=_EXIT_CODES,
    )
    add_demo_arguments(demo)
    demo.set_defaults(handler=_cmd_demo)

    stats = sub.add_parser(
        "stats",
        help="entries, memory and index of a cache on Redis",
        description="Show the entries, memory and RediSearch index of one llmemo cache on "
        "Redis. " + _TARGET_HELP,
        epilog=_EXIT_CODES,
    )
    _add_target_arguments(stats)
    stats.add_argument(
        "--sample",
        type=positive_int,
        default=10_000,
        metavar="N",
        help="measure MEMORY USAGE on at most N keys and extrapolate (default %(default)s)",
    )
    stats.set_defaults(handler=_cmd_stats)

    clear = sub.add_parser(
        "clear",
        help="delete a cache's entries on Redis (asks first)",
        description="Delete the entries of one llmemo cache on Redis (SCAN + UNLINK of its "
        "own keys; nothing else). Asks for confirmation unless --yes; without --yes and "
        "without a terminal it refuses (exit 2). " + _TARGET_HELP,
        epilog=_EXIT_CODES,
    )
    _add_target_arguments(clear)
    clear.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    clear.add_argument(
        "--drop-index",
        action="store_true",
        help="also drop the cache's RediSearch index (by default it stays, empty, as after "
        "cache.clear())",
    )
    clear.set_defaults(handler=_cmd_clear)

    from llmemo.evaluate import add_eval_parser

    add_eval_parser(sub).epilog = _EXIT_CODES
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``llmemo`` command line; return the exit code (0, 1 or 2).

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when ``None``.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    url = getattr(args, "redis_url", None)
    try:
        code: int = handler(args)
    except (_UsageError, ConfigurationError) as exc:
        # Whatever an error says (a driver's message may quote the URL), no secret of
        # the URL is printed.
        _error(redact_secrets(str(exc), url))
        return EXIT_USAGE
    except (LlmemoError, MissingDependencyError) as exc:
        _error(redact_secrets(str(exc), url))
        return EXIT_ERROR
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    return code
