"""ExactCache and SemanticCache on the memory stores, through the core async API."""

from __future__ import annotations

import math
from typing import Any

import pytest
from langchain_core.load import dumps
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.outputs import Generation

from llmemo import ExactCache, LangChainEmbedder, SemanticCache, codec, keys
from llmemo.errors import ConfigurationError, SchemaMismatchError, SerializationError
from llmemo.policy import FailurePolicy
from llmemo.stores.memory import MemoryKeyStore, MemoryVectorStore
from llmemo.verify import Candidate, Verdict

from fakes import AsyncConceptEmbeddings, ConceptEmbeddings
from harness import FakeClock

LLM = "model=fake-chat temperature=0"
FRANCE = "What is the capital of France?"
FRANCE_PARAPHRASE = "Can you tell me the capital city of France?"
BREAD = "How do I bake bread?"


class WallClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def semantic(
    embeddings: ConceptEmbeddings | None = None, **kwargs: object
) -> tuple[SemanticCache, ConceptEmbeddings, FakeClock]:
    clock = FakeClock()
    embeddings = embeddings or ConceptEmbeddings()
    cache = SemanticCache(
        MemoryVectorStore(clock=clock),
        LangChainEmbedder(embeddings),
        **kwargs,  # type: ignore[arg-type]
    )
    return cache, embeddings, clock


async def test_exact_hit_miss_and_hit_information() -> None:
    wall = WallClock()
    cache = ExactCache(MemoryKeyStore(), clock=wall)
    assert await cache.alookup("p", LLM) is None
    await cache.aupdate("p", LLM, {"answer": 42})
    wall.now += 7.5
    hit = await cache.alookup("p", LLM)
    assert hit is not None
    assert (hit.value, hit.kind, hit.distance, hit.age) == ({"answer": 42}, "exact", 0.0, 7.5)
    assert hit.entry_id == keys.prompt_id("p")
    counters = cache.stats.as_dict()
    assert {k: counters[k] for k in ("exact_hits", "misses", "writes")} == {
        "exact_hits": 1,
        "misses": 1,
        "writes": 1,
    }
    assert sum(counters.values()) == 3  # nothing else counted


async def test_exact_isolates_llm_strings() -> None:
    cache = ExactCache(MemoryKeyStore())
    await cache.aupdate("p", "model-a", "A")
    await cache.aupdate("p", "model-b", "B")
    assert (await cache.alookup("p", "model-a")).value == "A"  # type: ignore[union-attr]
    assert (await cache.alookup("p", "model-b")).value == "B"  # type: ignore[union-attr]
    assert await cache.alookup("p", "model-c") is None


async def test_cache_ttl_and_per_write_ttl() -> None:
    clock = FakeClock()
    cache = ExactCache(MemoryKeyStore(clock=clock), ttl=10)
    await cache.aupdate("default", LLM, 1)
    await cache.aupdate("short", LLM, 2, ttl=1)
    await cache.aupdate("forever", LLM, 3, ttl=None)
    await clock.elapse(5)
    assert await cache.alookup("short", LLM) is None
    assert await cache.alookup("default", LLM) is not None
    await clock.elapse(5)
    assert await cache.alookup("default", LLM) is None
    await clock.elapse(10_000)
    assert await cache.alookup("forever", LLM) is not None


async def test_undecodable_entry_is_a_counted_miss() -> None:
    store = MemoryKeyStore()
    cache = ExactCache(store)
    await store.set(cache.key("p", LLM), b"\x00garbage")
    assert await cache.alookup("p", LLM) is None
    assert cache.stats.decode_errors == 1
    assert cache.stats.misses == 1


async def test_clear_removes_only_its_namespace() -> None:
    store = MemoryKeyStore()
    mine, other = ExactCache(store, namespace="mine"), ExactCache(store, namespace="other")
    await mine.aupdate("p", LLM, 1)
    await other.aupdate("p", LLM, 2)
    await store.set("unrelated", b"keep")
    assert await mine.aclear() == 1
    assert await mine.alookup("p", LLM) is None
    assert (await other.alookup("p", LLM)).value == 2  # type: ignore[union-attr]
    assert await store.get("unrelated") == b"keep"


@pytest.mark.parametrize("prompt, llm_string", [(1, LLM), ("p", None), (b"p", LLM)])
async def test_non_string_inputs_raise_type_error_naming_the_parameter(
    prompt: object, llm_string: object
) -> None:
    store = MemoryKeyStore()
    cache = ExactCache(store)
    name = "prompt" if not isinstance(prompt, str) else "llm_string"
    with pytest.raises(TypeError, match=name):
        await cache.aupdate(prompt, llm_string, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=name):
        await cache.alookup(prompt, llm_string)  # type: ignore[arg-type]
    assert len(store) == 0


@pytest.mark.parametrize("ttl", [-1, 0, math.nan, "60"])
async def test_bad_ttl_names_the_parameter_and_stores_nothing(ttl: object) -> None:
    store = MemoryKeyStore()
    with pytest.raises(ConfigurationError, match="ttl"):
        ExactCache(store, ttl=ttl)  # type: ignore[arg-type]
    cache = ExactCache(store)
    with pytest.raises(ConfigurationError, match="ttl"):
        await cache.aupdate("p", LLM, 1, ttl=ttl)
    assert len(store) == 0


@pytest.mark.parametrize("threshold", [-0.01, 2.01, math.nan, "0.2", None])
def test_threshold_outside_zero_two_is_refused(threshold: object) -> None:
    with pytest.raises(ConfigurationError, match="distance_threshold"):
        semantic(distance_threshold=threshold)


async def test_semantic_paraphrase_hits_and_far_prompt_misses() -> None:
    cache, _, _ = semantic(distance_threshold=0.2)
    await cache.aupdate(FRANCE, LLM, "Paris")
    hit = await cache.alookup(FRANCE_PARAPHRASE, LLM)
    assert hit is not None
    assert hit.value == "Paris"
    assert hit.kind == "semantic"
    assert 0.0 < hit.distance <= 0.2
    assert hit.entry_id == keys.prompt_id(FRANCE)
    assert await cache.alookup(BREAD, LLM) is None
    assert cache.stats.semantic_hits == 1
    assert cache.stats.misses == 1


async def test_semantic_threshold_override_per_call() -> None:
    cache, _, _ = semantic(distance_threshold=0.2)
    await cache.aupdate(FRANCE, LLM, "Paris")
    assert await cache.alookup(FRANCE_PARAPHRASE, LLM, distance_threshold=0.01) is None
    assert await cache.alookup(FRANCE_PARAPHRASE, LLM, distance_threshold=0.06) is not None
    with pytest.raises(ConfigurationError, match="distance_threshold"):
        await cache.alookup(FRANCE_PARAPHRASE, LLM, distance_threshold=3)


async def test_exact_is_tried_first_without_embedding() -> None:
    cache, embeddings, _ = semantic(distance_threshold=0.0)
    await cache.aupdate(FRANCE, LLM, "Paris")
    calls = len(embeddings.calls)
    hit = await cache.alookup(FRANCE, LLM)
    assert hit is not None and hit.kind == "exact" and hit.distance == 0.0
    assert len(embeddings.calls) == calls


async def test_a_miss_then_its_update_embed_once() -> None:
    cache, embeddings, _ = semantic()
    assert await cache.alookup(FRANCE, LLM) is None
    await cache.aupdate(FRANCE, LLM, "Paris")
    assert embeddings.calls == [FRANCE]
    assert cache.stats.embeddings == 1


async def test_semantic_isolates_llm_strings() -> None:
    cache, _, _ = semantic()
    await cache.aupdate(FRANCE, "model-a", "A")
    await cache.aupdate(FRANCE, "model-b", "B")
    assert (await cache.alookup(FRANCE_PARAPHRASE, "model-a")).value == "A"  # type: ignore[union-attr]
    assert (await cache.alookup(FRANCE_PARAPHRASE, "model-b")).value == "B"  # type: ignore[union-attr]
    assert await cache.alookup(FRANCE_PARAPHRASE, "model-c") is None


async def test_semantic_chat_with_a_different_earlier_turn_misses() -> None:
    cache, _, _ = semantic()

    def chat(system: str, question: str) -> str:
        return dumps([SystemMessage(system), HumanMessage(question)])

    await cache.aupdate(chat("You are a geographer.", FRANCE), LLM, "Paris")
    hit = await cache.alookup(chat("You are a geographer.", FRANCE_PARAPHRASE), LLM)
    assert hit is not None and hit.kind == "semantic"
    assert await cache.alookup(chat("You are a pirate.", FRANCE), LLM) is None


async def test_semantic_ttl() -> None:
    cache, _, clock = semantic(ttl=30)
    await cache.aupdate(FRANCE, LLM, "Paris")
    await cache.aupdate(BREAD, LLM, "Knead", ttl=None)
    await clock.elapse(31)
    assert await cache.alookup(FRANCE_PARAPHRASE, LLM) is None
    assert await cache.alookup(FRANCE, LLM) is None
    assert await cache.alookup(BREAD, LLM) is not None


async def test_semantic_undecodable_candidate_is_skipped_and_counted() -> None:
    cache, _, _ = semantic()
    await cache.aupdate(FRANCE, LLM, "Paris")
    partition = keys.partition_id("llmemo", LLM)
    vector = (await cache.embedder.embed([FRANCE]))[0]
    await cache.store.add(partition, keys.prompt_id(FRANCE), vector, b"garbage")
    assert await cache.alookup(FRANCE_PARAPHRASE, LLM) is None
    assert cache.stats.decode_errors == 1


async def test_sync_only_embeddings_run_off_the_loop() -> None:
    import threading

    embeddings = ConceptEmbeddings()
    cache, _, _ = semantic(embeddings)
    await cache.aupdate(FRANCE, LLM, "Paris")
    assert embeddings.threads and threading.get_ident() not in embeddings.threads


async def test_native_async_embeddings_are_awaited_on_the_loop() -> None:
    import threading

    embeddings = AsyncConceptEmbeddings()
    cache, _, _ = semantic(embeddings)
    await cache.aupdate(FRANCE, LLM, "Paris")
    assert embeddings.threads == [threading.get_ident()]


async def test_empty_prompt_cannot_be_stored_semantically() -> None:
    cache, _, _ = semantic()
    with pytest.raises(ConfigurationError, match="prompt"):
        await cache.aupdate("", LLM, "x")
    assert await cache.alookup("", LLM) is None


async def test_megabyte_prompt_round_trips() -> None:
    prompt = "capital France " * 70_000
    cache = ExactCache(MemoryKeyStore())
    generations = [Generation(text="x" * 1_000_000)]
    await cache.aupdate(prompt, LLM, generations)
    assert (await cache.alookup(prompt, LLM)).value == generations  # type: ignore[union-attr]
    sem, _, _ = semantic()
    await sem.aupdate(prompt, LLM, generations)
    assert (await sem.alookup(prompt, LLM)).value == generations  # type: ignore[union-attr]


async def test_without_exact_first_a_repeat_is_found_by_the_vector_query() -> None:
    cache, embeddings, _ = semantic(exact_first=False)
    await cache.aupdate(FRANCE, LLM, "Paris")
    hit = await cache.alookup(FRANCE, LLM)
    assert hit is not None and hit.kind == "exact" and hit.value == "Paris"
    paraphrase = await cache.alookup(FRANCE_PARAPHRASE, LLM)
    assert paraphrase is not None and paraphrase.kind == "semantic"
    assert embeddings.calls == [FRANCE, FRANCE_PARAPHRASE]  # memoised, then one new text
    with pytest.raises(ConfigurationError, match="exact_first"):
        semantic(exact_first="no")


class DigitsVerifier:
    """A toy verifier: the digits in both prompts must agree."""

    name = "digits"

    def signature(self, text: str) -> dict[str, object]:
        return {"digits": "".join(c for c in text if c.isdigit())}

    async def verify(self, text: str, signature: Any, candidate: Candidate) -> Verdict:
        if candidate.signature is None:
            return Verdict(False, self.name, "no signature stored")
        same = signature["digits"] == candidate.signature["digits"]
        return Verdict(same, self.name, "digits agree" if same else "digits differ")


class BrokenVerifier(DigitsVerifier):
    name = "broken"

    async def verify(self, text: str, signature: Any, candidate: Candidate) -> Verdict:
        raise RuntimeError("boom")


ORDERS_50 = "capital France orders under 50"
ORDERS_30 = "capital France orders under 30"
ORDERS_50_AGAIN = "France capital orders under 50 please"


async def test_verifier_rejects_the_nearest_and_accepts_a_further_candidate() -> None:
    cache, _, _ = semantic(verifier=DigitsVerifier(), distance_threshold=0.5)
    await cache.aupdate(ORDERS_30, LLM, "thirty")
    await cache.aupdate(ORDERS_50, LLM, "fifty")
    searches: list[int] = []
    search = cache.store.search

    async def counted(*args: Any, **kwargs: Any) -> Any:
        searches.append(kwargs["k"])
        return await search(*args, **kwargs)

    cache.store.search = counted  # type: ignore[method-assign]
    hit = await cache.alookup(ORDERS_50_AGAIN, LLM)
    assert hit is not None and hit.value == "fifty"
    assert hit.verdict == Verdict(True, "digits", "digits agree")
    assert cache.stats.verifier_accepts == 1
    # One vector query brings every candidate; the nearest is refused, the next served.
    assert searches == [4]
    assert cache.stats.verifier_rejections == 1


async def test_verifier_rejecting_every_candidate_is_a_miss() -> None:
    cache, _, _ = semantic(verifier=DigitsVerifier(), distance_threshold=0.5)
    await cache.aupdate(ORDERS_30, LLM, "thirty")
    assert await cache.alookup(ORDERS_50_AGAIN, LLM) is None
    assert cache.stats.verifier_rejections == 1
    assert cache.stats.misses == 1


async def test_exact_repeats_skip_the_verifier() -> None:
    cache, _, _ = semantic(verifier=BrokenVerifier())
    await cache.aupdate(ORDERS_30, LLM, "thirty")
    hit = await cache.alookup(ORDERS_30, LLM)
    assert hit is not None and hit.kind == "exact" and hit.verdict is None


async def test_a_failing_verifier_is_a_counted_miss_never_a_hit() -> None:
    cache, _, _ = semantic(verifier=BrokenVerifier(), distance_threshold=0.5)
    await cache.aupdate(ORDERS_50, LLM, "fifty")
    assert await cache.alookup(ORDERS_50_AGAIN, LLM) is None
    assert cache.stats.verifier_errors == 1


async def test_entries_carry_the_verifier_signature() -> None:
    cache, _, _ = semantic(verifier=DigitsVerifier())
    await cache.aupdate(ORDERS_50, LLM, "fifty")
    partition = keys.partition_id("llmemo", LLM)
    payload = await cache.store.get(partition, keys.prompt_id(ORDERS_50))
    assert payload is not None
    assert codec.decode(payload).signature == {"digits": "50"}


def test_verifier_and_candidates_are_validated() -> None:
    with pytest.raises(ConfigurationError, match="verifier"):
        semantic(verifier=object())
    with pytest.raises(ConfigurationError, match="candidates"):
        semantic(verifier=DigitsVerifier(), candidates=0)
    cache, _, _ = semantic(verifier=DigitsVerifier())
    assert cache.candidates == 4
    assert semantic(verifier=None)[0].candidates == 1


def test_the_default_verifier_is_the_rules_and_none_turns_it_off() -> None:
    from llmemo.verify import RulesVerifier

    cache = semantic()[0]
    assert isinstance(cache.verifier, RulesVerifier)
    assert cache.candidates == 4
    assert cache.config.distance_threshold == 0.35
    assert semantic(verifier=None)[0].verifier is None


async def test_concurrent_misses_of_one_text_embed_once() -> None:
    import asyncio

    cache, embeddings, _ = semantic(AsyncConceptEmbeddings())
    results = await asyncio.gather(*(cache.alookup(FRANCE, LLM) for _ in range(50)))
    assert results == [None] * 50
    assert embeddings.calls == [FRANCE]


async def test_a_vector_of_another_dimension_is_a_backend_fault_under_the_policy() -> None:
    class Shorter(AsyncConceptEmbeddings):
        async def aembed_query(self, text: str) -> list[float]:
            return (await super().aembed_query(text))[:8]

    store = MemoryVectorStore()
    writer = SemanticCache(store, LangChainEmbedder(AsyncConceptEmbeddings()))
    await writer.aupdate(FRANCE, LLM, "Paris")
    reader = SemanticCache(store, LangChainEmbedder(Shorter()))
    assert await reader.alookup(FRANCE_PARAPHRASE, LLM) is None
    assert await reader.aupdate(BREAD, LLM, "Knead") is False  # dropped, not raised
    assert reader.stats.errors_backend == 2
    assert reader.stats.writes_dropped == 1
    strict = SemanticCache(
        store, LangChainEmbedder(Shorter()), policy=FailurePolicy(errors="raise")
    )
    with pytest.raises(SchemaMismatchError, match="dimension"):
        await strict.aupdate(BREAD, LLM, "Knead")


class FixedEmbedder:
    """An ``Embedder`` returning one given vector for every text."""

    def __init__(self, vector: Any) -> None:
        self.vector = vector

    async def embed(self, texts: Any) -> Any:
        return [self.vector for _ in texts]


@pytest.mark.parametrize(
    "vector",
    [[], [0.0, 0.0], [1.0, math.nan], [1.0, math.inf], ["north", "south"], [[1.0, 2.0]]],
)
async def test_an_unusable_vector_from_the_embedder_is_a_counted_miss_and_a_dropped_write(
    vector: Any,
) -> None:
    cache = SemanticCache(MemoryVectorStore(), FixedEmbedder(vector))
    assert await cache.alookup(FRANCE, LLM) is None
    assert cache.stats.embedder_errors == 1
    assert await cache.aupdate(FRANCE, LLM, "Paris") is False
    assert cache.stats.embedder_errors == 2
    assert cache.stats.writes == 0


async def test_embeddings_are_memoised_as_read_only_float64_arrays_of_the_same_values() -> None:
    import numpy as np

    given = np.array([0.1, 0.2, 0.3], dtype=np.float32)
    cache = SemanticCache(MemoryVectorStore(), FixedEmbedder(given))
    await cache.aupdate(FRANCE, LLM, "Paris")
    memoised = cache._memo.get(FRANCE)
    assert memoised is not None and memoised.dtype == np.float64
    assert not memoised.flags.writeable
    assert memoised.tolist() == given.astype(np.float64).tolist()
    given[0] = 9.0  # the embedder's own array stays its own
    assert memoised[0] == np.float32(0.1)
    hit = await cache.alookup(FRANCE, LLM)
    assert hit is not None and hit.kind == "exact"


class ProbingMemoryStore(MemoryVectorStore):
    """A memory store that also answers ``get_or_search``; each read waits
    ``round_trip`` seconds, the first ``get`` ``first_get_delay`` (as a first round trip
    that opens the connection)."""

    def __init__(self, first_get_delay: float, round_trip: float = 0.0) -> None:
        super().__init__()
        self.first_get_delay = first_get_delay
        self.round_trip = round_trip
        self.gets = 0
        self.pipelined = 0

    async def get(self, partition: str, entry_id: str) -> Any:
        import asyncio

        self.gets += 1
        await asyncio.sleep(self.first_get_delay if self.gets == 1 else self.round_trip)
        return await super().get(partition, entry_id)

    async def get_or_search(
        self, partition: str, entry_id: str, vector: Any, *, k: int = 1, max_distance: float = 2.0
    ) -> Any:
        import asyncio

        self.pipelined += 1
        await asyncio.sleep(self.round_trip)
        payload = await super().get(partition, entry_id)
        if payload is not None:
            return payload, []
        return None, await self.search(partition, vector, k=k, max_distance=max_distance)


class SleepyEmbedder:
    """Each call sleeps ``seconds`` (an embedder dearer than a warm probe, cheaper than a
    cold one)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls = 0

    async def embed(self, texts: Any) -> Any:
        import asyncio

        self.calls += 1
        await asyncio.sleep(self.seconds)
        return [ConceptEmbeddings().embed_query(t) for t in texts]


async def test_a_slow_first_probe_does_not_make_a_dearer_embedder_look_cheap() -> None:
    # The first probe (60 ms here, as a connection being opened) is not taken as the cost
    # of a probe: with an embedder far dearer than the later probes, exact repeats keep
    # being served by the probe alone, without embedding.
    store = ProbingMemoryStore(first_get_delay=0.06)
    embedder = SleepyEmbedder(0.02)
    cache = SemanticCache(store, embedder, verifier=None)
    # Written by another process (so the reader has not memoised its vector).
    await SemanticCache(store, LangChainEmbedder(ConceptEmbeddings())).aupdate(FRANCE, LLM, "P")
    for n in range(3):  # misses: probe alone, then embed and search
        assert await cache.alookup(f"unrelated question {n}", LLM) is None
    calls, pipelined = embedder.calls, store.pipelined
    for _ in range(3):
        hit = await cache.alookup(FRANCE, LLM)
        assert hit is not None and hit.kind == "exact"
    assert embedder.calls == calls
    assert store.pipelined == pipelined


class BurstyEmbedder:
    """Microseconds per call, except ``slow_calls`` calls that take 5 ms (as when a burst
    of tasks shares the event loop with the embedding)."""

    def __init__(self) -> None:
        self.slow_calls = 0

    async def embed(self, texts: Any) -> Any:
        import asyncio

        if self.slow_calls:
            self.slow_calls -= 1
            await asyncio.sleep(0.005)
        return [ConceptEmbeddings().embed_query(t) for t in texts]


async def test_a_burst_of_slow_embeddings_does_not_switch_a_cheap_embedder_to_probing_first() -> (
    None
):
    store = ProbingMemoryStore(first_get_delay=0.001, round_trip=0.001)
    embedder = BurstyEmbedder()
    cache = SemanticCache(store, embedder, verifier=None)
    await cache.aupdate(FRANCE, LLM, "Paris")
    for n in range(4):  # costs measured: embedding (µs) is cheaper than a probe (1 ms)
        await cache.alookup(f"warm-up question {n}", LLM)
    embedder.slow_calls = 10
    for n in range(10):
        await cache.alookup(f"question asked during a burst {n}", LLM)
    probes_alone, pipelined = store.gets, store.pipelined
    for n in range(10):
        await cache.alookup(f"question asked after the burst {n}", LLM)
    assert store.gets == probes_alone  # every lookup sent probe and query together
    assert store.pipelined == pipelined + 10


@pytest.mark.parametrize("memo_size", [1024, 0])
async def test_a_repeated_prompt_is_parsed_once_and_located_as_a_new_one_is(
    monkeypatch: pytest.MonkeyPatch, memo_size: int
) -> None:
    import llmemo.caches.semantic as semantic_module
    from llmemo.text import split_prompt

    splits: list[str] = []

    def counting_split(prompt: str) -> Any:
        splits.append(prompt)
        return split_prompt(prompt)

    monkeypatch.setattr(semantic_module, "split_prompt", counting_split)
    cache, _, _ = semantic(embedding_memo_size=memo_size)
    short = dumps([SystemMessage("You are a geographer."), HumanMessage(FRANCE)])
    long = dumps([SystemMessage("x" * 5000), HumanMessage(FRANCE)])  # > 4,096 characters
    for prompt in (short, long):
        await cache.aupdate(prompt, LLM, "Paris")
        for llm in (LLM, LLM, "another model", LLM):
            hit = await cache.alookup(prompt, llm)
            assert (hit is not None) == (llm == LLM)
            parts = split_prompt(prompt)
            expected = (
                parts,
                keys.partition_id("llmemo", llm, parts.context),
                keys.prompt_id(prompt),
            )
            assert cache._locate(prompt, llm) == expected
    # Memo on: the short prompt is parsed once per llm_string, the long one every time.
    # Memo off (size 0): every time.
    calls = 1 + 4 + 4  # aupdate, 4 lookups, 4 direct _locate calls
    if memo_size:
        assert splits.count(short) == 2
    else:
        assert splits.count(short) == calls
    assert splits.count(long) == calls


class HostileReplyStore(MemoryVectorStore):
    """A memory store whose vector queries get a reply that the real Redis reply parser
    refuses (a NaN distance), as ``search`` or pipelined with the exact probe."""

    @staticmethod
    def _hostile(max_distance: float) -> Any:
        from llmemo.stores.redis.search import _parse_search

        reply = [1, b"e-1", [b"payload", b"x", b"dist", b"nan"]]
        return _parse_search(reply, 0, max_distance)[0]

    async def search(
        self, partition: str, vector: Any, *, k: int = 1, max_distance: float = 2.0
    ) -> Any:
        return self._hostile(max_distance)


class HostileProbingStore(HostileReplyStore):
    async def get_or_search(
        self, partition: str, entry_id: str, vector: Any, *, k: int = 1, max_distance: float = 2.0
    ) -> Any:
        payload = await self.get(partition, entry_id)
        if payload is not None:  # as the Redis stores: the reply is parsed only if needed
            return payload, []
        return payload, self._hostile(max_distance)


@pytest.mark.parametrize("store_class", [HostileReplyStore, HostileProbingStore])
@pytest.mark.parametrize("exact_first", [True, False])
async def test_a_vector_query_reply_the_parser_refuses_is_a_counted_miss(
    store_class: type[MemoryVectorStore], exact_first: bool
) -> None:
    embedder = LangChainEmbedder(ConceptEmbeddings())
    cache = SemanticCache(store_class(), embedder, exact_first=exact_first)
    await cache.aupdate(FRANCE, LLM, "Paris")
    for number in range(1, 13):  # more than the breaker's threshold
        assert await cache.alookup("Tell me the capital of France", LLM) is None
        assert cache.stats.decode_errors == number
    assert cache.stats.misses == 12
    assert cache.stats.errors == 0
    assert cache.runtime.store_guard.breaker.state == "closed"
    if exact_first:  # the exact entry is still served
        hit = await cache.alookup(FRANCE, LLM)
        assert hit is not None and hit.value == "Paris"


class UnreadableKeyStore(MemoryKeyStore):
    """A key store whose reads meet a reply it cannot read."""

    async def get(self, key: str) -> bytes | None:
        raise SerializationError("malformed GET reply (TypeError: an int, not bytes)")


async def test_a_key_store_reply_it_cannot_read_is_a_counted_miss() -> None:
    cache = ExactCache(UnreadableKeyStore())
    for number in range(1, 13):  # more than the breaker's threshold
        assert await cache.alookup("prompt", LLM) is None
        assert cache.stats.decode_errors == number
    assert cache.stats.errors == 0
    assert cache.runtime.store_guard.breaker.state == "closed"
