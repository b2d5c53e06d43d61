"""Fuzzing update → lookup: what goes in comes out equal, or a documented error is raised
and nothing is stored (see docs/errors.md).

Prompts and llm_strings are any Python ``str`` (lone surrogates, NUL, newlines, glob
characters included); generations are every allow-listed LangChain class with arbitrary
JSON metadata. Runs on the in-memory exact and semantic caches, the core ``ExactCache``,
and ``RedisCache`` (sync and async faces). Bounded and derandomized.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, AIMessageChunk, ChatMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, Generation, GenerationChunk

from llmemo import ConfigurationError, ExactCache, MemoryKeyStore, SerializationError, codec
from llmemo.langchain import InMemoryCache, InMemorySemanticCache, LangChainCache, RedisCache

from fakes import ConceptEmbeddings

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Any str Python can hold: lone surrogates, NUL, control characters, every plane.
any_char = st.characters(exclude_categories=())
any_text = st.text(any_char, max_size=60) | st.sampled_from(
    ["", "*", "?[a-z]*\n\r\x00", "{tag}:v1:x:*", "\ud800", "a" * 5000]
)
json_scalar = (
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too
    | st.floats(allow_nan=False, allow_infinity=False)
    | any_text
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)
json_object = st.dictionaries(any_text, json_value, max_size=4)
optional_info = st.none() | json_object
content = any_text | st.lists(
    any_text | st.fixed_dictionaries({"type": st.just("text"), "text": any_text}), max_size=3
)
tool_call = st.fixed_dictionaries(
    {
        "name": any_text,
        "args": json_object,
        "id": st.none() | any_text,
        "type": st.just("tool_call"),
    }
)
usage = st.fixed_dictionaries(
    {
        "input_tokens": st.integers(0, 10**6),
        "output_tokens": st.integers(0, 10**6),
        "total_tokens": st.integers(0, 2 * 10**6),
    }
)


@st.composite
def ai_message(draw: st.DrawFn, cls: type[AIMessage] = AIMessage) -> AIMessage:
    return cls(
        content=draw(content),
        additional_kwargs=draw(json_object),
        response_metadata=draw(json_object),
        name=draw(st.none() | any_text),
        id=draw(st.none() | any_text),
        tool_calls=draw(st.lists(tool_call, max_size=2)),
        usage_metadata=draw(st.none() | usage),
    )


generation = st.one_of(
    st.builds(Generation, text=any_text, generation_info=optional_info),
    st.builds(GenerationChunk, text=any_text, generation_info=optional_info),
    st.builds(ChatGeneration, message=ai_message(), generation_info=optional_info),
    st.builds(
        ChatGenerationChunk,
        message=ai_message(AIMessageChunk),  # type: ignore[arg-type]
        generation_info=optional_info,
    ),
    st.builds(
        ChatGeneration,
        message=st.builds(ChatMessage, content=any_text, role=any_text),
        generation_info=optional_info,
    ),
)
generations = st.lists(generation, min_size=1, max_size=3)


bad_key_input = st.one_of(
    st.none(), st.integers(), st.binary(), st.lists(st.text(), max_size=2), st.floats()
)
bad_return_val = st.one_of(
    st.just([]),
    any_text,
    st.binary(),
    st.none(),
    st.lists(any_text, min_size=1, max_size=2),
    st.lists(st.builds(HumanMessage, content=any_text), min_size=1, max_size=2),
    st.builds(lambda g: [g, "not a generation"], generation),
    st.builds(lambda g: (g, g, {"x": 1}), generation),
    # A chat generation whose message is not an AI message.
    st.builds(lambda t: [ChatGeneration(message=HumanMessage(content=t))], any_text),
)
#: What update() may raise for a bad return_val, each documented in docs/errors.md.
DOCUMENTED_WRITE_ERRORS = (TypeError, ConfigurationError)
#: A model's answer the codec cannot store (metadata that is not JSON data): the model
#: was paid for, so under errors="open" the write is dropped and counted, never raised.
unencodable_return_val = st.one_of(
    st.builds(lambda t: [Generation(text=t, generation_info={"x": math.nan})], any_text),
    st.builds(lambda t: [Generation(text=t, generation_info={"x": {1, 2}})], any_text),
    st.builds(lambda t: [Generation(text=t, generation_info={"x": b"bytes"})], any_text),
)


class Faces:
    """update/lookup on one LangChain cache through one face, with unique llm_strings so
    that every example starts from nothing stored."""

    def __init__(self, cache: LangChainCache, face: str) -> None:
        self.cache = cache
        self.face = face
        self._numbers = itertools.count()
        self._loop = asyncio.new_event_loop() if face == "async" else None

    def fresh(self, llm_string: str) -> str:
        return f"{llm_string}\x00#{next(self._numbers)}"

    def update(self, prompt: Any, llm_string: Any, value: Any) -> None:
        if self._loop is None:
            self.cache.update(prompt, llm_string, value)
        else:
            self._loop.run_until_complete(self.cache.aupdate(prompt, llm_string, value))

    def lookup(self, prompt: Any, llm_string: Any) -> Any:
        if self._loop is None:
            return self.cache.lookup(prompt, llm_string)
        return self._loop.run_until_complete(self.cache.alookup(prompt, llm_string))

    def close(self) -> None:
        if self._loop is not None:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()


def memory_exact() -> LangChainCache:
    return InMemoryCache()


def memory_semantic() -> LangChainCache:
    return InMemorySemanticCache(ConceptEmbeddings(), distance_threshold=0.0)


@pytest.fixture(
    params=[
        "memory-sync",
        "memory-async",
        "semantic-memory-sync",
        pytest.param("redis-sync", marks=pytest.mark.redis),
        pytest.param("redis-async", marks=pytest.mark.redis),
    ]
)
def faces(request: pytest.FixtureRequest, unique_prefix: str) -> Iterator[Faces]:
    kind, face = request.param.rsplit("-", 1)
    cache: LangChainCache
    if kind == "memory":
        cache = memory_exact()
    elif kind == "semantic-memory":
        cache = memory_semantic()
    else:
        cache = RedisCache(request.getfixturevalue("redis_url"), prefix=unique_prefix)
    made = Faces(cache, face)
    try:
        yield made
    finally:
        made.close()
        if isinstance(cache, RedisCache):
            cache.clear()
            cache.close()


def test_round_trip(faces: Faces) -> None:
    empty_prompt_errors = 0

    @FUZZ
    @given(prompt=any_text, llm_string=any_text, value=generations)
    def round_trip(prompt: str, llm_string: str, value: list[Generation]) -> None:
        nonlocal empty_prompt_errors
        llm = faces.fresh(llm_string)
        assert faces.lookup(prompt, llm) is None
        if prompt == "" and isinstance(faces.cache, InMemorySemanticCache):
            # Documented: a semantic cache has nothing to embed in an empty prompt.
            with pytest.raises(ConfigurationError, match="prompt"):
                faces.update(prompt, llm, value)
            assert faces.lookup(prompt, llm) is None
            empty_prompt_errors += 1
            return
        faces.update(prompt, llm, value)
        assert faces.lookup(prompt, llm) == value
        assert faces.lookup(prompt, llm) == value  # twice: nothing shared, nothing mutated

    round_trip()
    assert faces.cache.stats.errors == 0
    assert faces.cache.stats.decode_errors == 0
    assert faces.cache.stats.writes >= 30


def test_bad_return_vals_raise_and_store_nothing(faces: Faces) -> None:
    @FUZZ
    @given(prompt=any_text, llm_string=any_text, value=bad_return_val)
    def bad_value(prompt: str, llm_string: str, value: Any) -> None:
        llm = faces.fresh(llm_string)
        with pytest.raises(DOCUMENTED_WRITE_ERRORS) as raised:
            faces.update(prompt, llm, value)
        if not (prompt == "" and isinstance(faces.cache, InMemorySemanticCache)):
            assert "return_val" in str(raised.value)  # the message names the parameter
        assert faces.lookup(prompt, llm) is None

    bad_value()
    assert faces.cache.stats.writes == 0


def test_unencodable_answers_are_dropped_and_counted_never_raised(faces: Faces) -> None:
    @FUZZ
    @given(prompt=any_text, llm_string=any_text, value=unencodable_return_val)
    def unencodable(prompt: str, llm_string: str, value: Any) -> None:
        if prompt == "" and isinstance(faces.cache, InMemorySemanticCache):
            return  # nothing to embed: a caller's error, raised (tested above)
        llm = faces.fresh(llm_string)
        dropped = faces.cache.stats.writes_unencodable
        faces.update(prompt, llm, value)
        assert faces.cache.stats.writes_unencodable == dropped + 1
        assert faces.lookup(prompt, llm) is None

    unencodable()
    assert faces.cache.stats.writes == 0
    assert faces.cache.stats.writes_dropped == faces.cache.stats.writes_unencodable > 0


def test_bad_keys_raise_type_errors_naming_the_parameter(faces: Faces) -> None:
    value = [Generation(text="answer")]

    @FUZZ
    @given(prompt=any_text | bad_key_input, llm_string=any_text | bad_key_input)
    def bad_key(prompt: Any, llm_string: Any) -> None:
        if isinstance(prompt, str) and isinstance(llm_string, str):
            return
        name = "prompt" if not isinstance(prompt, str) else "llm_string"
        with pytest.raises(TypeError, match=name):
            faces.update(prompt, llm_string, value)
        with pytest.raises(TypeError, match=name):
            faces.lookup(prompt, llm_string)

    bad_key()
    assert faces.cache.stats.writes == 0


@FUZZ
@given(prompt=any_text, llm_string=any_text, value=json_value)
def test_core_exact_cache_round_trips_json(prompt: str, llm_string: str, value: Any) -> None:
    cache = ExactCache(MemoryKeyStore())

    async def run() -> Any:
        await cache.aupdate(prompt, llm_string, value)
        hit = await cache.alookup(prompt, llm_string)
        assert hit is not None
        return hit.value

    assert asyncio.run(run()) == normalise(value)


def normalise(value: Any) -> Any:
    """JSON's view of ``value`` (the core documents tuples coming back as lists)."""
    if isinstance(value, (list, tuple)):
        return [normalise(v) for v in value]
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    return value


@pytest.mark.parametrize("make", [memory_exact, memory_semantic], ids=["exact", "semantic"])
def test_megabyte_prompt_and_generation(make: Callable[[], LangChainCache]) -> None:
    cache = make()
    prompt = "x" * 1_000_000 + "\x00\ud800"
    value = [Generation(text="y" * 1_000_000)]
    cache.update(prompt, "llm", value)
    assert cache.lookup(prompt, "llm") == value


@pytest.mark.redis
def test_megabyte_prompt_and_generation_on_redis(redis_url: str, unique_prefix: str) -> None:
    cache = RedisCache(redis_url, prefix=unique_prefix)
    try:
        prompt = "x" * 1_000_000 + "\x00\ud800"
        value = [Generation(text="y" * 1_000_000)]
        cache.update(prompt, "llm", value)
        assert cache.lookup(prompt, "llm") == value
        with redis.Redis.from_url(redis_url) as client:
            stored = list(client.scan_iter(match=f"{unique_prefix}:*"))
        assert len(stored) == 1
        assert len(stored[0]) < 200  # the key is a hash, not the megabyte prompt
    finally:
        cache.clear()
        cache.close()


# ---------------------------------------------------------------------------------------
# Whatever bytes sit under a cache's key: a hit of a well-formed entry, or a counted miss
# ---------------------------------------------------------------------------------------

huge_int = st.integers(min_value=10**19, max_value=10**400)
hostile_json = st.recursive(
    json_scalar | huge_int,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=10,
)


@st.composite
def stored_bytes(draw: st.DrawFn) -> bytes:
    """Arbitrary bytes, or an envelope of this version with hostile fields."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=120))
    envelope = {
        "v": draw(st.just(1) | hostile_json),
        "t": draw(st.just(1.0) | huge_int | hostile_json),
        "k": draw(st.sampled_from(["lc", "json"]) | hostile_json),
        "d": draw(hostile_json),
    }
    nested = draw(st.sampled_from([0, 0, 2000, 50_000]))
    text = json.dumps(envelope, ensure_ascii=False)
    if nested:
        text = text[:-1] + ',"s":' + "[" * nested + "]" * nested + "}"
    if draw(st.booleans()):
        text = '{"v":1,"n":1,' + text[1:]
    return text.encode("utf-8", "surrogatepass")


EXACT_FACES = [
    "memory-sync",
    "memory-async",
    pytest.param("redis-sync", marks=pytest.mark.redis),
    pytest.param("redis-async", marks=pytest.mark.redis),
]


@pytest.mark.parametrize("faces", EXACT_FACES, indirect=True)
def test_arbitrary_stored_bytes_are_hits_or_counted_misses(
    faces: Faces, unique_prefix: str, request: pytest.FixtureRequest
) -> None:
    write = raw_writer(faces.cache, request)
    namespace = unique_prefix if isinstance(faces.cache, RedisCache) else "llmemo"

    @FUZZ
    @given(prompt=any_text, payload=stored_bytes())
    def planted(prompt: str, payload: bytes) -> None:
        llm = faces.fresh("llm")
        write(ExactCache(MemoryKeyStore(), namespace=namespace).key(prompt, llm), payload)
        errors = faces.cache.stats.decode_errors
        try:
            expected = codec.decode(payload).value
        except SerializationError:
            expected = None
        found = faces.lookup(prompt, llm)  # never raises
        if expected is None or not isinstance(expected, list) or not expected:
            assert found is None
        assert faces.cache.stats.decode_errors == errors + (expected is None)

    planted()
    assert faces.cache.stats.errors == 0


def raw_writer(
    cache: LangChainCache, request: pytest.FixtureRequest
) -> Callable[[str, bytes], Any]:
    """A function writing raw bytes under a key of ``cache``'s store."""
    if isinstance(cache, RedisCache):
        client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
        request.addfinalizer(client.close)
        return client.set
    store = cache.core().store  # shared by every loop and thread

    def write(key: str, payload: bytes) -> None:
        asyncio.run(store.set(key, payload))

    return write
