"""The semantic cache: same model configuration and context, prompt of the same meaning."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llmemo import codec, keys
from llmemo._json import fast_dumps
from llmemo._lru import LRU
from llmemo.caches.base import (
    DEFAULT,
    CacheHit,
    CacheRuntime,
    CacheStats,
    OneTimeSetup,
    check_key_inputs,
    clear_with_progress,
    resolve_ttl,
)
from llmemo.config import (
    DEFAULT_EMBEDDING_MEMO_BYTES,
    SemanticConfig,
    validate_distance_threshold,
    validate_optional_positive_int,
)
from llmemo.errors import (
    ConfigurationError,
    SchemaMismatchError,
    SerializationError,
    WrongTypeError,
)
from llmemo.options import current_options
from llmemo.policy import FailurePolicy
from llmemo.stores.base import Embedder, ProbingVectorStore, VectorMatch, VectorStore
from llmemo.text import CONTEXT_POLICIES, PromptParts, split_prompt
from llmemo.verify.base import Candidate, HitVerifier, Verdict

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    #: What the embedding memo holds (see :func:`_as_vector`).
    MemoVector = npt.NDArray[np.float64]

__all__ = [
    "DEFAULT_DISTANCE_THRESHOLD",
    "MEMO_MAX_TEXT_CHARS",
    "SemanticCache",
    "resolve_verifier",
]


_DEFAULT_CANDIDATES = 4
# Recent prompts whose split (text to embed, context) and ids are kept: parsing the chat
# JSON and hashing its context is most of a hit's own CPU when the same prompt comes
# again (retries, the same question asked again). Only prompts of up to
# _LOCATE_MEMO_CHARS characters (with their llm_string) are kept, so the memo holds a few
# MB at most, however long the conversations.
_LOCATE_MEMO_SIZE = 128
_LOCATE_MEMO_CHARS = 4096
#: Longest text (characters) whose embedding and verifier signature are memoised: longer
#: texts are embedded (and signed) on every call, so one huge prompt is never kept as a
#: memo key. 32,768 characters is past the input window of common embedding models.
MEMO_MAX_TEXT_CHARS = 32_768
_STORE_FAILED: Any = object()

#: The default ``distance_threshold`` of :class:`SemanticCache` (cosine distance), chosen
#: with the default verifier on the project's tuning sets (docs/semantic-hits.md): with
#: :class:`~llmemo.verify.RulesVerifier` checking each candidate, 0.35 keeps recall high
#: while the rules refuse the near-but-wrong pairs a threshold cannot tell apart.
DEFAULT_DISTANCE_THRESHOLD = 0.35


def resolve_verifier(verifier: Any) -> HitVerifier | None:
    """The verifier a cache uses: a new default :class:`~llmemo.verify.RulesVerifier` when
    the argument was omitted (``DEFAULT``), ``None`` (threshold only) when ``None``, else
    the given verifier.

    Raises:
        ConfigurationError: ``verifier`` does not implement the ``HitVerifier`` protocol.
    """
    if verifier is DEFAULT:
        from llmemo.verify.rules import RulesVerifier

        return RulesVerifier()
    if verifier is not None and not isinstance(verifier, HitVerifier):
        raise ConfigurationError(
            "verifier must implement llmemo.verify.HitVerifier (name, signature, verify), "
            f"or be None for the threshold alone; got {type(verifier).__qualname__}"
        )
    return verifier


def _as_vector(given: Any) -> MemoVector:
    """An embedder's vector as a read-only float64 array, checked.

    The memo keeps arrays, not lists: a store converts an array to its own dtype in well
    under a microsecond, a list of 384 floats in ~9 us, on every lookup. float64 keeps
    the embedder's values as they were (Python floats are float64).

    Raises:
        SerializationError: not a non-empty 1-D sequence of numbers, zero, or not finite.
    """
    import numpy as np

    try:
        array = np.array(given, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"embedder returned a vector that is not numbers: {exc}") from exc
    # One dot product checks "non-zero" and "finite" (NaN and infinities make it
    # non-finite; so do absurdly large components, which would overflow a store's
    # float32 anyway).
    if array.ndim != 1 or not 0.0 < float(array @ array) < math.inf:
        raise SerializationError("embedder returned an empty, zero or non-finite vector")
    array.flags.writeable = False  # shared by every lookup of the text
    return array


def _vector_weight(text: Any, vector: MemoVector) -> int:
    """Bytes an embedding memo entry holds: its text and its vector's data."""
    return sys.getsizeof(text) + int(vector.nbytes)


def _signature_weight(text: Any, memo: tuple[dict[str, Any] | None]) -> int:
    """Bytes a signature memo entry holds: its text, and its signature as compact JSON
    (a measure of its size that costs far less than computing the signature did)."""
    signature = memo[0]
    dumps = fast_dumps()
    try:
        size = (
            len(dumps(signature))
            if dumps is not None
            else len(json.dumps(signature, separators=(",", ":")))
        )
    except (TypeError, ValueError, RecursionError):  # not JSON data: count it as its text
        size = sys.getsizeof(text)
    return sys.getsizeof(text) + size


class _Cost:
    """An operation's recent intrinsic duration in seconds: the least of its last
    ``window`` measurements (``None`` until measured).

    The least, not an average: a measurement taken while many tasks share the event loop
    (a burst) includes their turns, and the two costs compared are not always measured
    in the same conditions (once embedding counts as the cheaper, probes are no longer
    timed alone). Updates from several threads may race; a value slightly off only
    shifts when a lookup switches strategy.
    """

    __slots__ = ("samples", "skip", "value", "window")

    def __init__(self, skip: int = 0, window: int = 16) -> None:
        self.value: float | None = None
        self.skip = skip  # first measurements to ignore
        self.window = window
        self.samples: list[float] = []

    def add(self, seconds: float) -> None:
        if self.skip:
            self.skip -= 1
            return
        samples = self.samples
        samples.append(seconds)
        if len(samples) > self.window:
            del samples[0]
        self.value = min(samples)


class SemanticCache:
    """An async semantic cache over a :class:`~llmemo.stores.base.VectorStore`.

    A lookup tries the exact entry first (one ``get`` by prompt id, no embedding; see
    ``exact_first``; when the prompt's vector is memoised, or embedding has lately cost
    less than that round trip, stores implementing
    :class:`~llmemo.stores.base.ProbingVectorStore` get the probe and the vector query
    in one round trip instead), then
    embeds the text of the prompt (see :func:`llmemo.text.split_prompt`) and asks the
    store for the nearest entry *of the same partition* within ``distance_threshold``.
    The partition hashes the namespace, ``llm_string`` and every part of the prompt that
    is not embedded, so a cached answer is only ever served for the same model,
    parameters, system prompt and earlier turns.

    A write embeds the text (memoised: a miss followed by its update embeds once) and
    adds vector and payload in one store call.

    Failures follow the cache's :class:`~llmemo.policy.FailurePolicy` (default: fail
    open, store calls and embedder calls each under a budget and a circuit breaker);
    undecodable entries are counted and skipped. Per-call controls come from
    :func:`llmemo.options`.

    Loop affinity is the store's and the embedder's.
    """

    def __init__(
        self,
        store: VectorStore,
        embedder: Embedder,
        *,
        namespace: str = "llmemo",
        distance_threshold: float = DEFAULT_DISTANCE_THRESHOLD,
        ttl: float | None = None,
        embedding_memo_size: int = 1024,
        embedding_memo_bytes: int = DEFAULT_EMBEDDING_MEMO_BYTES,
        exact_first: bool = True,
        verifier: HitVerifier | None = DEFAULT,
        candidates: int | None = None,
        policy: FailurePolicy | None = None,
        runtime: CacheRuntime | None = None,
        clock: Callable[[], float] = time.time,
        context: str = "exact",
    ) -> None:
        """Create a cache; does no I/O.

        Args:
            store: Where vectors and payloads live.
            embedder: Turns prompt text into vectors.
            namespace: Namespace hashed into partitions (1-64 of ``[A-Za-z0-9_.:-]``).
            distance_threshold: Largest cosine distance in ``[0, 2]`` a candidate may be
                at (default 0.35, chosen with the default verifier; without a verifier
                keep it tight, e.g. 0.2 or less).
            ttl: Default seconds an entry lives, or ``None``.
            embedding_memo_size: Recent embeddings, and as many verifier signatures,
                kept in process, with the parsed parts of up to 128 recent prompts of
                up to 4,096 characters (0 disables all three).
            embedding_memo_bytes: Most bytes the memoised embeddings (texts and
                vectors) hold together, and as many for the signatures (default 32 MiB);
                the least recently used go first. Texts longer than
                :data:`MEMO_MAX_TEXT_CHARS` (32,768) characters are never memoised.
            exact_first: Serve an exact repeat as exact, without embedding when embedding
                is dear: the exact prompt is looked up (one ``get``) before the vector
                query, or with it in one round trip when the embedding is at hand or
                cheaper than that round trip. ``False`` never probes: every lookup
                embeds, and exact repeats are found by the vector query (at distance
                ~0, reported as exact).
            verifier: Decides whether a near neighbour's answer serves the new prompt
                (see :mod:`llmemo.verify`); by default a new
                :class:`~llmemo.verify.RulesVerifier` (offline rules: numbers, negation,
                entities and roles must agree); ``None`` serves the nearest entry under
                the threshold, as plain semantic caches do. Its signature of each prompt
                is stored with the entry.
            candidates: How many nearest entries under the threshold the vector query
                returns (in the same round trip) for the verifier to try, nearest first
                (default 4 with a verifier, 1 without).
            policy: What failures do (ignored when ``runtime`` is given).
            runtime: Counters and guards shared with other cores of the same cache.
            clock: Wall-clock seconds, used for entry ages.
            context: Context policy for chat prompts: ``"exact"`` (default: the system
                prompt and every earlier turn must match exactly) or ``"tolerant"`` (a
                final message that stands on its own is served after any plain
                conversation; system prompts and tools must still match). See
                :func:`llmemo.text.split_prompt` and docs/semantic-hits.md.

        Raises:
            ConfigurationError: a parameter is out of range (the message names it).
        """
        self.config = SemanticConfig(
            namespace=namespace,
            ttl=ttl,
            distance_threshold=distance_threshold,
            embedding_memo_size=embedding_memo_size,
            embedding_memo_bytes=embedding_memo_bytes,
        )
        if not isinstance(exact_first, bool):
            raise ConfigurationError(f"exact_first must be a bool; got {exact_first!r}")
        if context not in CONTEXT_POLICIES:
            raise ConfigurationError(
                f"context must be one of {', '.join(map(repr, CONTEXT_POLICIES))}; got {context!r}"
            )
        self.context = context
        self.exact_first = exact_first
        verifier = self.verifier = resolve_verifier(verifier)
        default_k = 1 if verifier is None else _DEFAULT_CANDIDATES
        k = validate_optional_positive_int(candidates, parameter="candidates")
        self.candidates = default_k if k is None else k
        self.store = store
        self._probing = store.get_or_search if isinstance(store, ProbingVectorStore) else None
        self.embedder = embedder
        self.runtime = runtime if runtime is not None else CacheRuntime(policy)
        self._clock = clock
        self._embed_cost = _Cost()  # embedder calls
        # Exact probes (one round trip each). The first one usually opens the connection
        # (milliseconds, not the ~0.1-0.3 ms of a probe), and once embedding counts as the
        # cheaper, probes are no longer timed alone: a first sample kept would make an
        # embedder up to ~10x slower than a probe look cheap for good.
        self._probe_cost = _Cost(skip=1)
        self._memo = self._new_memo()
        # (signature,): a verifier may sign a text None.
        self._signatures = LRU[tuple[dict[str, Any] | None]](
            self.config.embedding_memo_size,
            max_bytes=self.config.embedding_memo_bytes,
            weigh=_signature_weight,
        )
        self._located = LRU[tuple[PromptParts, str, str]](
            min(_LOCATE_MEMO_SIZE, self.config.embedding_memo_size)
        )
        self._pending: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Future[MemoVector]]
        self._pending = {}
        # First-use work, done before (not inside) the first calls' budgets, once.
        self._store_setup = OneTimeSetup(self._prepare_store)
        self._index_setup = OneTimeSetup(self._prepare_index)
        self._embed_setup = OneTimeSetup(self._prepare_embedder)

    # -- one-time setup ---------------------------------------------------------------

    async def _prepare_store(self) -> None:
        """Imports and the store's first-use work (connect, probe, find the index)."""
        import numpy  # noqa: F401  # a first import costs ~0.1 s: never inside a budget

        await self._store_prepare()

    async def _prepare_index(self, dimension: int | None) -> None:
        """:meth:`_prepare_store`, then the index for vectors of ``dimension`` (created
        if missing), once for all concurrent first writers."""
        await self._store_setup()
        await self._store_prepare(dimension)

    async def _store_prepare(self, *dimension: int | None) -> None:
        """The store's ``prepare`` (if it has one), for a first call's setup: bad data or
        an index that does not fit is not a setup failure, since the call itself meets it
        again and counts it."""
        prepare = getattr(self.store, "prepare", None)
        if prepare is not None:
            with contextlib.suppress(WrongTypeError, ConfigurationError):
                await prepare(*dimension)

    async def _prepare_embedder(self) -> None:
        """Load the embedder's model, if it says how (``warm_up``/``awarm_up`` on the
        embedder or on the LangChain ``Embeddings`` it wraps)."""
        for target in (self.embedder, getattr(self.embedder, "embeddings", None)):
            if target is None:
                continue
            if getattr(self.embedder, "inline", False):
                warm = getattr(target, "warm_up", None)
                if callable(warm):
                    warm()
                    return
                continue
            awarm = getattr(target, "awarm_up", None)
            if callable(awarm):
                await awarm()
                return

    async def setup(self) -> None:
        """Do the one-time work of first use now instead of in the first calls: imports,
        connecting, probing the server, checking the index, loading the embedder's
        model (if it has ``awarm_up``); then, if the store has no index yet, embed a
        probe text to learn the dimension and create it. Optional: the first calls do
        it themselves, outside their budgets.

        Raises:
            BackendError: the store or the embedder failed (whatever the policy).
            ConfigurationError: the store's index does not fit this cache.
        """
        import numpy  # noqa: F401

        await self._embed_setup()
        prepare = getattr(self.store, "prepare", None)
        if prepare is None:
            self._store_setup.done = True
            return
        await prepare()
        self._store_setup.done = True
        dimension = getattr(self.store, "dimension", None)
        if dimension is None:
            dimension = len(await self._embed_now("llmemo setup"))
        await prepare(dimension)
        self._index_setup.done = True

    @staticmethod
    def _pending_setup(setup: OneTimeSetup) -> OneTimeSetup | None:
        return None if setup.done else setup

    def _new_memo(self) -> LRU[MemoVector]:
        return LRU(
            self.config.embedding_memo_size,
            max_bytes=self.config.embedding_memo_bytes,
            weigh=_vector_weight,
        )

    @property
    def stats(self) -> CacheStats:
        """This cache's counters (shared by every core of the same runtime)."""
        return self.runtime.stats

    def _locate(self, prompt: str, llm_string: str) -> tuple[PromptParts, str, str]:
        """The prompt's parts, partition and entry id (memoised for short prompts)."""
        memo = len(prompt) + len(llm_string) <= _LOCATE_MEMO_CHARS
        if memo:
            located = self._located.get((prompt, llm_string))
            if located is not None:
                return located
        parts = (
            split_prompt(prompt) if self.context == "exact" else split_prompt(prompt, self.context)
        )
        partition = keys.partition_id(self.config.namespace, llm_string, parts.context)
        located = (parts, partition, keys.prompt_id(prompt))
        if memo:
            self._located.put((prompt, llm_string), located)
        return located

    async def _embed(self, text: str) -> MemoVector:
        vector = self._memo.get(text)
        if vector is not None:
            return vector
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None  # driven without a loop (sync faces): nothing runs concurrently
        if loop is None:
            return await self._embed_now(text)
        # Concurrent misses of one text on one loop share one embedder call.
        key = (loop, text)
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[MemoVector] = loop.create_future()
        self._pending[key] = future
        try:
            vector = await self._embed_now(text)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here: waiters may be none
            raise
        else:
            future.set_result(vector)
            return vector
        finally:
            del self._pending[key]

    def _embedding_is_cheap(self) -> bool:
        """Whether embedding has lately cost less than an exact probe's round trip."""
        embed, probe = self._embed_cost.value, self._probe_cost.value
        return embed is not None and probe is not None and embed < probe

    async def _embed_now(self, text: str) -> MemoVector:
        started = time.perf_counter()
        vectors = await self.embedder.embed([text])
        self._embed_cost.add(time.perf_counter() - started)
        if len(vectors) != 1:
            raise SerializationError(f"embedder returned {len(vectors)} vectors for one text")
        vector = _as_vector(vectors[0])
        self.stats.add("embeddings")
        if len(text) <= MEMO_MAX_TEXT_CHARS:
            self._memo.put(text, vector)
        return vector

    def _signature(self, verifier: HitVerifier, text: str) -> dict[str, Any] | None:
        if len(text) > MEMO_MAX_TEXT_CHARS:
            return verifier.signature(text)
        memo = self._signatures.get(text)
        if memo is None:
            memo = (verifier.signature(text),)
            self._signatures.put(text, memo)
        return memo[0]

    async def _embed_guarded(self, text: str, operation: str) -> MemoVector | None:
        return await self.runtime.embed_guard.call(
            operation,
            lambda: self._embed(text),
            None,
            setup=self._pending_setup(self._embed_setup),
        )

    def _node_of(self, partition: str) -> str | None:
        # Per-node circuit breakers on a Redis Cluster: a dead shard opens only its own.
        node_of = getattr(self.store, "node_of_partition", None)
        return None if node_of is None else node_of(partition)

    async def _search(
        self, partition: str, vector: MemoVector, k: int, threshold: float
    ) -> list[VectorMatch]:
        try:
            return await self.store.search(partition, vector, k=k, max_distance=threshold)
        except SchemaMismatchError:
            raise  # the stored index does not fit: a backend fault, for the failure policy
        except (WrongTypeError, SerializationError, ConfigurationError) as exc:
            self._count_unusable(exc)
            return []

    def _count_unusable(
        self, error: WrongTypeError | SerializationError | ConfigurationError
    ) -> None:
        """Count a lookup's vector query that failed on bad data, not an outage (the
        lookup is then a miss): another Redis type under the partition's key, or a reply
        the store could not read (foreign data; both ``decode_errors``), or an
        embedder's vector the store refuses (zero, NaN: ``embedder_errors``). A stored
        index or vector set of another dimension than the embedder's
        (:class:`~llmemo.errors.SchemaMismatchError`) is a backend fault, handled by the
        failure policy like any other."""
        bad = "embedder_errors" if isinstance(error, ConfigurationError) else "decode_errors"
        self.runtime.stats.add(bad)

    async def _get_or_search(
        self,
        probing: Any,
        partition: str,
        entry_id: str,
        vector: MemoVector,
        k: int,
        threshold: float,
    ) -> tuple[bytes | None, list[VectorMatch]]:
        try:
            payload, matches = await probing(
                partition, entry_id, vector, k=k, max_distance=threshold
            )
        except SchemaMismatchError:
            raise  # a backend fault, for the failure policy (see _search)
        except (WrongTypeError, SerializationError, ConfigurationError) as exc:
            self._count_unusable(exc)
            return None, []
        if isinstance(payload, WrongTypeError):
            # Another Redis type where our exact entry would be: bad stored data.
            self.runtime.stats.add("decode_errors")
            payload = None
        return payload, matches

    async def _get(self, partition: str, entry_id: str) -> bytes | None:
        try:
            return await self.store.get(partition, entry_id)
        except WrongTypeError:
            self.runtime.stats.add("decode_errors")
            return None

    def _decode(self, payload: bytes) -> codec.DecodedEntry | None:
        try:
            return codec.decode(payload)
        except SerializationError:
            self.stats.add("decode_errors")
            return None

    def _hit(
        self,
        entry: codec.DecodedEntry,
        kind: Any,
        distance: float,
        entry_id: str,
        verdict: Verdict | None = None,
    ) -> CacheHit:
        self.stats.add("exact_hits" if kind == "exact" else "semantic_hits")
        age = max(0.0, self._clock() - entry.written_at)
        return CacheHit(entry.value, kind, distance, entry_id, age, verdict)

    async def _verify(self, text: str, signature: Any, candidate: Candidate) -> Verdict:
        assert self.verifier is not None
        try:
            verdict = await self.verifier.verify(text, signature, candidate)
        except Exception as exc:  # a failing verifier must never turn into a hit
            self.stats.add("verifier_errors")
            return Verdict(False, self.verifier.name, f"verifier failed: {exc!r}")
        self.stats.add("verifier_accepts" if verdict.accepted else "verifier_rejections")
        return verdict

    async def alookup(
        self, prompt: str, llm_string: str, *, distance_threshold: float | None = None
    ) -> CacheHit | None:
        """Return the exact entry, else the nearest acceptable entry within the threshold.

        With a verifier, up to ``candidates`` entries within the threshold are tried,
        nearest first; the first one the verifier accepts is the hit (its verdict is in
        :attr:`CacheHit.verdict`). An exact repeat is served without verification.

        Args:
            prompt: A plain prompt or LangChain's serialized message list.
            llm_string: The model configuration.
            distance_threshold: Overrides the cache's threshold for this call.

        Raises:
            TypeError: ``prompt`` or ``llm_string`` is not a ``str``.
            ConfigurationError: bad ``distance_threshold``.
            BackendError: the store failed.
        """
        started = time.perf_counter()
        try:
            return await self._alookup(prompt, llm_string, distance_threshold=distance_threshold)
        finally:
            self.runtime.stats.observe_lookup(time.perf_counter() - started)

    async def _alookup(
        self, prompt: str, llm_string: str, *, distance_threshold: float | None = None
    ) -> CacheHit | None:

        check_key_inputs(prompt, llm_string)
        options = current_options()
        if distance_threshold is not None:
            threshold = validate_distance_threshold(distance_threshold)
        elif options.distance_threshold is not None:
            threshold = options.distance_threshold
        else:
            threshold = self.config.distance_threshold
        if options.bypass_read:
            self.stats.add("bypassed_reads")
            return None
        guard = self.runtime.store_guard
        parts, partition, entry_id = self._locate(prompt, llm_string)
        node = self._node_of(partition)
        k = self.candidates
        # The exact probe goes first to save an embedding on exact repeats. When the
        # vector is already in hand (memoised), or embedding has been cheaper than the
        # probe's round trip, there is nothing to save: stores that can send the probe
        # with the vector query in one round trip do so (an exact entry still wins).
        probing = self._probing
        memoised: MemoVector | None = None
        embedded = False
        if probing is not None and self.exact_first and parts.text:
            memoised = self._memo.get(parts.text)
            if memoised is None and self._embedding_is_cheap():
                memoised = await self._embed_guarded(parts.text, "lookup")
                embedded = True
        matches: list[VectorMatch] | None = None
        payload: Any = None  # the exact entry's bytes, None (absent), or _STORE_FAILED
        if memoised is not None and probing is not None:
            both = await guard.call(
                "lookup",
                lambda: self._get_or_search(probing, partition, entry_id, memoised, k, threshold),
                _STORE_FAILED,
                node,
                setup=self._pending_setup(self._store_setup),
            )
            payload, matches = (both, None) if both is _STORE_FAILED else both
        elif self.exact_first or not parts.text:
            started = time.perf_counter()
            payload = await guard.call(
                "lookup",
                lambda: self._get(partition, entry_id),
                _STORE_FAILED,
                node,
                setup=self._pending_setup(self._store_setup),
            )
            if payload is not _STORE_FAILED:
                self._probe_cost.add(time.perf_counter() - started)
        if payload is _STORE_FAILED:
            # The store just failed (or its circuit is open): a vector query would only
            # spend a second budget on the same outage.
            self.stats.add("misses")
            return None
        entry = None if payload is None else self._decode(payload)
        if entry is not None:
            return self._hit(entry, "exact", 0.0, entry_id)
        if matches is None and parts.text and not embedded:
            vector = await self._embed_guarded(parts.text, "lookup")
            if vector is not None:
                no_matches: list[VectorMatch] = []
                matches = await guard.call(
                    "vector query",
                    lambda: self._search(partition, vector, k, threshold),
                    no_matches,
                    node,
                    setup=self._pending_setup(self._store_setup),
                )
        if matches:
            hit = await self._first_served(matches, parts.text, entry_id)
            if hit is not None:
                return hit
        self.stats.add("misses")
        return None

    async def _first_served(
        self, matches: list[VectorMatch], text: str, entry_id: str
    ) -> CacheHit | None:
        """The first of ``matches`` (nearest first) that decodes and that the verifier
        accepts, as a hit; ``None`` if none."""
        signature: Any = None
        if self.verifier is not None:
            signature = self._signature(self.verifier, text)
        for match in matches:
            if match.entry_id == entry_id and self.exact_first:
                continue  # the exact entry, already found undecodable
            entry = self._decode(match.payload)
            if entry is None:
                continue
            if match.entry_id == entry_id:
                return self._hit(entry, "exact", 0.0, entry_id)
            verdict = None
            if self.verifier is not None:
                candidate = Candidate(match.entry_id, match.distance, entry.signature)
                verdict = await self._verify(text, signature, candidate)
                if not verdict.accepted:
                    continue
            return self._hit(entry, "semantic", match.distance, match.entry_id, verdict)
        return None

    async def aupdate(
        self, prompt: str, llm_string: str, value: Any, *, ttl: Any = DEFAULT
    ) -> bool:
        """Store ``value`` for this prompt and configuration; return whether it was stored
        (``False``: bypassed, or dropped by the fail-open policy).

        The text embedded is the final user turn (or the whole plain prompt); when that
        text is empty (e.g. an image-only turn), the whole prompt string is embedded
        instead, so the entry still serves exact repeats.

        Args:
            prompt: The prompt.
            llm_string: The model configuration.
            value: A sequence of LangChain generations, or JSON data.
            ttl: Seconds this entry lives (``None``: no expiry); if omitted, the TTL of an
                enclosing ``llmemo.options(ttl=...)`` block, else the cache's.

        Raises:
            TypeError: bad ``prompt``/``llm_string``, or generations of a disallowed type.
            ConfigurationError: bad ``ttl``, or an empty ``prompt`` (nothing to embed).
            SerializationError: the value is not encodable, with ``errors="raise"`` only
                (otherwise the write is dropped and counted in ``writes_unencodable``).
                Nothing is stored.
            BackendError: the store or the embedder failed, with ``errors="raise"``
                only (otherwise the write is dropped and counted).

        An entry whose encoding is over the policy's ``max_entry_bytes`` is not sent
        (``False``; counted in ``writes_too_large`` and ``writes_dropped``).
        """
        check_key_inputs(prompt, llm_string)
        options = current_options()
        entry_ttl = resolve_ttl(ttl, options, self.config.ttl)
        parts, partition, entry_id = self._locate(prompt, llm_string)
        text = parts.text or prompt
        if not text:
            raise ConfigurationError("prompt must not be empty for a semantic cache")
        signature = None if self.verifier is None else self._signature(self.verifier, text)
        payload = self.runtime.encoded(
            lambda: codec.encode(value, written_at=self._clock(), signature=signature)
        )
        if payload is None:
            return False
        if options.bypass_write:
            self.stats.add("bypassed_writes")
            return False
        if self.runtime.too_large(payload):
            return False
        vector = await self._embed_guarded(text, "write")
        setup = self._index_setup
        done = vector is not None and await self.runtime.write_guard.call(
            "write",
            lambda: self._add(partition, entry_id, vector, payload, entry_ttl),
            False,
            self._node_of(partition),
            setup=None if setup.done else lambda: setup(len(vector)),
        )
        self.stats.add("writes" if done else "writes_dropped")
        return done

    async def _add(
        self, partition: str, entry_id: str, vector: MemoVector, payload: bytes, ttl: float | None
    ) -> bool:
        await self.store.add(partition, entry_id, vector, payload, ttl=ttl)
        return True

    async def aclear(self, *, progress: Callable[[int], object] | None = None) -> int:
        """Remove every entry of this cache's store; return how many.

        An explicit administrative action: store errors propagate whatever the policy.
        Each of its commands may take the policy's ``admin_timeout`` on stores that
        accept it (the Redis stores).

        Args:
            progress: Called with the running count of removed entries after each batch,
                on stores that report progress (the Redis stores).
        """
        self._memo = self._new_memo()
        return await clear_with_progress(self.store.clear, progress)

    async def aclose(self) -> None:
        """Close the store."""
        await self.store.aclose()
