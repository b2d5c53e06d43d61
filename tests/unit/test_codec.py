"""The entry codec: round trips, the class allow-list, and strict decoding."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import (
    ChatGeneration,
    ChatGenerationChunk,
    Generation,
    GenerationChunk,
)

from llmemo import codec
from llmemo.errors import SerializationError

json_scalars = st.none() | st.booleans() | st.integers() | st.text()
json_scalars |= st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
small_dicts = st.dictionaries(st.text(max_size=8), json_scalars, max_size=3)


def roundtrip(value: Any) -> Any:
    return codec.decode(codec.encode(value, written_at=123.5)).value


@given(json_values)
def test_json_values_round_trip(value: Any) -> None:
    assert roundtrip(value) == value


@given(
    st.lists(
        st.builds(Generation, text=st.text(), generation_info=small_dicts | st.none()),
        min_size=1,
        max_size=3,
    )
)
def test_generations_round_trip_in_order(generations: list[Generation]) -> None:
    assert roundtrip(generations) == generations


tool_calls = st.lists(
    st.builds(
        lambda name, args, id_: {"name": name, "args": args, "id": id_, "type": "tool_call"},
        st.text(min_size=1, max_size=10),
        small_dicts,
        st.text(min_size=1, max_size=10),
    ),
    max_size=2,
)


@settings(max_examples=50)
@given(
    content=st.text(),
    calls=tool_calls,
    metadata=small_dicts,
    info=small_dicts | st.none(),
    tokens=st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)),
)
def test_chat_generations_round_trip(
    content: str,
    calls: list[dict[str, Any]],
    metadata: dict[str, Any],
    info: dict[str, Any] | None,
    tokens: tuple[int, int],
) -> None:
    message = AIMessage(
        content=content,
        tool_calls=calls,
        response_metadata=metadata,
        usage_metadata={
            "input_tokens": tokens[0],
            "output_tokens": tokens[1],
            "total_tokens": sum(tokens),
        },
        id="run-1",
    )
    generations = [ChatGeneration(message=message, generation_info=info)] * 2
    assert roundtrip(generations) == generations


def test_every_allowed_class_round_trips() -> None:
    values = [
        Generation(text="g", generation_info={"a": 1}),
        GenerationChunk(text="gc"),
        ChatGeneration(message=AIMessage(content=[{"type": "text", "text": "block"}])),
        ChatGenerationChunk(message=AIMessageChunk(content="chunk")),
    ]
    decoded = roundtrip(values)
    assert decoded == values
    assert [type(v) for v in decoded] == [type(v) for v in values]


@pytest.mark.parametrize(
    "text",
    ["", "\x00nul\x00", "日本語 ✓ emoji 🎉", "\ud800 lone surrogate", "x" * 1_000_000],
    ids=["empty", "nul", "unicode", "surrogate", "megabyte"],
)
def test_awkward_text_round_trips(text: str) -> None:
    generations = [ChatGeneration(message=AIMessage(content=text)), Generation(text=text)]
    assert roundtrip(generations) == generations


def test_age_timestamp_is_kept() -> None:
    entry = codec.decode(codec.encode({"k": 1}, written_at=42.25))
    assert entry.written_at == 42.25


def envelope(**overrides: Any) -> bytes:
    base: dict[str, Any] = {"v": 1, "t": 1.0, "k": "lc", "d": []}
    base.update(overrides)
    return json.dumps(base).encode()


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x80\x81 not utf8",
        b"not json",
        b"[1, 2]",
        envelope(v=2),
        envelope(v="1"),
        envelope(t="yesterday"),
        envelope(k="pickle"),
        envelope(d={"not": "a list"}),
        envelope(d=[{"c": "os.system", "x": "rm -rf /"}]),
        envelope(d=[{"c": "Generation", "x": 5}]),
        envelope(d=[{"c": "ChatGeneration", "m": {"c": "SystemMessage", "f": {"content": "x"}}}]),
        envelope(d=[{"c": "ChatGeneration", "m": {"c": "AIMessage", "f": {"content": 5}}}]),
        envelope(d=[{"c": "ChatGeneration"}]),
        envelope(d=[{"c": "Generation", "x": "t", "i": [1]}]),
        b'{"v": 1, "t": 1, "k": "json"}',
        b"[" * 100_000,
    ],
)
def test_bad_payloads_raise_serialization_error(payload: bytes) -> None:
    with pytest.raises(SerializationError):
        codec.decode(payload)


def test_langchain_dumps_format_is_not_loaded() -> None:
    # A payload in LangChain's own serialization format names classes; it must never be
    # instantiated by llmemo's decoder.
    from langchain_core.load import dumps

    foreign = dumps([Generation(text="x")]).encode()
    with pytest.raises(SerializationError):
        codec.decode(foreign)


def test_disallowed_generation_subclass_is_refused() -> None:
    class Custom(Generation):
        pass

    with pytest.raises(TypeError, match=r"return_val\[0\]"):
        codec.encode_generations([Custom(text="x")], written_at=0)


def test_non_json_metadata_is_a_serialization_error() -> None:
    value = [ChatGeneration(message=AIMessage(content="x", response_metadata={"o": object()}))]
    with pytest.raises(SerializationError, match="JSON"):
        codec.encode(value, written_at=0)


@pytest.mark.parametrize("bad", [float("nan"), {"x": float("inf")}])
def test_nan_is_refused(bad: Any) -> None:
    with pytest.raises(SerializationError):
        codec.encode(bad, written_at=0)


@pytest.mark.parametrize("number", [2**63, -(2**63) - 1, 2**64, 10**30])
def test_integers_beyond_64_bits_stay_exact(number: int) -> None:
    assert roundtrip({"n": number, "text": "x"}) == {"n": number, "text": "x"}


def chat_hit() -> ChatGeneration:
    message = AIMessage(
        content="Paris.",
        response_metadata={"model_name": "m", "finish_reason": "stop"},
        usage_metadata={"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
        id="run-1",
    )
    return ChatGeneration(message=message, generation_info={"finish_reason": "stop"})


def test_chat_hits_decode_like_the_constructors_build_them() -> None:
    # The hot path sets pydantic state directly once a self-check passed at first use;
    # with the installed pydantic and LangChain it must be in use, and indistinguishable.
    assert codec._fast_layout() is not None
    original = chat_hit()
    [decoded] = codec.decode(codec.encode([original], written_at=1.0)).value
    assert decoded == original
    assert decoded.model_dump() == original.model_dump()
    public = AIMessage.model_construct(**original.message.model_dump())
    assert decoded.message.model_fields_set == public.model_fields_set
    assert decoded.text == "Paris."
    # LangChain replaces the message on a hit (model_copy with zero cost): works too.
    copied = decoded.message.model_copy(update={"usage_metadata": {"total_cost": 0}})
    assert copied.content == "Paris." and decoded.message.usage_metadata["total_tokens"] == 5


def test_decoded_hits_share_no_state() -> None:
    payload = codec.encode([chat_hit()], written_at=1.0)
    [first] = codec.decode(payload).value
    first.message.response_metadata["mutated"] = True
    first.message.additional_kwargs["x"] = 1
    [second] = codec.decode(payload).value
    assert "mutated" not in second.message.response_metadata
    assert second.message.additional_kwargs == {}


def test_entries_missing_fields_take_the_public_constructor() -> None:
    # An entry written with fewer AIMessage fields (another LangChain) still decodes.
    envelope = {
        "v": 1,
        "t": 1.0,
        "k": "lc",
        "d": [{"c": "ChatGeneration", "i": None, "m": {"c": "AIMessage", "f": {"content": "hi"}}}],
    }
    [decoded] = codec.decode(json.dumps(envelope).encode()).value
    assert decoded == ChatGeneration(message=AIMessage(content="hi"))
