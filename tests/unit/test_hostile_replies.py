"""Hostile or foreign data met while reading: the codec and every reply parser raise
only :class:`~llmemo.errors.SerializationError` (which caches count as a miss), whatever
the bytes, the reply's shape (RESP2 lists, RESP3 maps, bytes, ints, ``None``, nesting)
or the JSON inside.

Replies are drawn both as arbitrary nested values and as near-valid replies (the shape
the parser expects, with hostile leaves: ids that are not UTF-8, distances that are not
numbers, NaN, 400-digit integers), so that the fuzzing reaches past the first check.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmemo import codec
from llmemo.errors import SerializationError
from llmemo.stores.base import VectorMatch
from llmemo.stores.redis import search, vectorset

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- building blocks ---------------------------------------------------------------------

huge_int = st.integers(min_value=10**20, max_value=10**400) | st.integers(
    max_value=-(10**20), min_value=-(10**400)
)
any_float = st.floats(allow_nan=True, allow_infinity=True)
number_bytes = st.sampled_from(
    [
        b"0",
        b"0.5",
        b"-0",
        b"2",
        b"nan",
        b"NaN",
        b"inf",
        b"-inf",
        b"1e400",
        b"-1e400",
        b"",
        b"abc",
        b"\xff",
        b"9" * 400,
        b"0x10",
        b" 1 ",
        b"1_0",
        "\u0661".encode(),
    ]
)
hostile_bytes = st.binary(max_size=40) | st.sampled_from(
    [b"\xff\xfe", b"\x80", b"\xc3(", b"\xed\xa0\x80", b"ok-id", b"", b"\x00"]
)
leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | huge_int
    | any_float
    | hostile_bytes
    | number_bytes
    | st.text(max_size=10)
)
# Any reply a RESP2 or RESP3 client could hand over: lists, maps (RESP3), sets, scalars.
reply = st.recursive(
    leaf,
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.dictionaries(hostile_bytes | st.text(max_size=6) | st.integers(), inner, max_size=4)
        | st.tuples(inner, inner)
    ),
    max_leaves=30,
)
field_name = st.sampled_from([b"payload", b"dist", b"id", b"other", "payload", "dist"])


@st.composite
def resp2_search(draw: st.DrawFn) -> list[Any]:
    """An FT.SEARCH RESP2 reply: [count, id, [field, value, ...], id, ...]."""
    rows = draw(st.integers(0, 4))
    out: list[Any] = [draw(st.integers(0, 10) | leaf)]
    for _ in range(rows):
        out.append(draw(hostile_bytes | leaf))
        fields: list[Any] = []
        for name in draw(st.lists(field_name, max_size=4)):
            fields += [name, draw(number_bytes | hostile_bytes | leaf)]
        out.append(draw(st.just(fields) | reply))
    return out


@st.composite
def resp3_search(draw: st.DrawFn) -> Any:
    """An FT.SEARCH RESP3 reply: {results: [{id, extra_attributes: {...}}, ...]}."""
    rows = []
    for _ in range(draw(st.integers(0, 4))):
        attrs = {
            name: draw(number_bytes | hostile_bytes | leaf)
            for name in draw(st.lists(field_name, max_size=3))
        }
        row: Any = {b"id": draw(hostile_bytes | leaf), b"extra_attributes": attrs}
        rows.append(draw(st.just(row) | reply))
    results: Any = draw(st.just(rows) | reply)
    return draw(st.just({b"results": results, b"total_results": len(rows)}) | reply)


@st.composite
def flat_triples(draw: st.DrawFn) -> list[Any]:
    """A search script's reply: [id, distance or score, payload, ...]."""
    out: list[Any] = []
    for _ in range(draw(st.integers(0, 4))):
        out += [
            draw(hostile_bytes | leaf),
            draw(number_bytes | leaf),
            draw(hostile_bytes | st.none() | reply),
        ]
    if draw(st.booleans()):
        out += draw(st.lists(leaf, max_size=2))  # a ragged tail
    return out


@st.composite
def ft_info(draw: st.DrawFn) -> Any:
    """An FT.INFO reply, RESP2 (flat list) or RESP3 (map), with hostile values."""
    attribute = [
        b"identifier",
        draw(st.just(b"vec") | hostile_bytes | leaf),
        b"attribute",
        draw(st.just(b"vec") | hostile_bytes | leaf),
        b"type",
        draw(st.sampled_from([b"VECTOR", b"TAG"]) | hostile_bytes | leaf),
        b"algorithm",
        draw(st.just(b"HNSW") | hostile_bytes | leaf),
        b"data_type",
        draw(st.just(b"FLOAT32") | hostile_bytes | leaf),
        b"dim",
        draw(number_bytes | leaf),
        b"distance_metric",
        draw(st.just(b"COSINE") | leaf),
        b"M",
        draw(number_bytes | leaf),
        b"ef_construction",
        draw(number_bytes | leaf),
    ]
    attributes = [draw(st.just(attribute) | reply) for _ in range(draw(st.integers(0, 3)))]
    definition = [b"key_type", b"HASH", b"prefixes", draw(st.lists(hostile_bytes | leaf))]
    resp2 = [
        b"index_name",
        b"x",
        b"index_definition",
        draw(st.just(definition) | reply),
        b"attributes",
        draw(st.just(attributes) | reply),
        b"num_docs",
        draw(number_bytes | leaf),
    ]
    if draw(st.booleans()):
        return draw(st.just(resp2) | reply)
    resp3 = {
        b"index_definition": {b"prefixes": draw(st.lists(hostile_bytes | leaf))},
        b"attributes": [
            {resp2_key: value for resp2_key, value in zip(a[::2], a[1::2], strict=False)}
            if a is attribute
            else a
            for a in attributes
        ],
    }
    return draw(st.just(resp3) | reply)


def check_matches(matches: list[VectorMatch]) -> None:
    """What a parser returns is usable as is: str ids, bytes payloads, finite distances
    in [0, 2]."""
    for match in matches:
        assert isinstance(match.entry_id, str)
        assert isinstance(match.payload, bytes)
        assert math.isfinite(match.distance) and 0.0 <= match.distance <= 2.0


def parsed_or_refused(parse: Any, *args: Any) -> Any:
    """``parse(*args)``, or ``None`` when it raised SerializationError (any other
    exception fails the test)."""
    try:
        return parse(*args)
    except SerializationError:
        return None


# -- RediSearch ------------------------------------------------------------------------


@FUZZ
@given(reply=resp2_search() | resp3_search() | reply, max_distance=st.sampled_from([0.2, 2.0]))
def test_ft_search_replies(reply: Any, max_distance: float) -> None:
    page = parsed_or_refused(search._parse_search, reply, 3, max_distance)
    if page is not None:
        check_matches(page[0])


@st.composite
def counted_triples(draw: st.DrawFn) -> list[Any]:
    """The cluster search script's reply: two counts, then [id, distance, payload, ...]."""
    counts = draw(st.lists(st.none() | st.integers(-5, 10**12) | leaf, min_size=0, max_size=2))
    return [*counts, *draw(flat_triples())]


@FUZZ
@given(reply=counted_triples() | reply, max_distance=st.sampled_from([0.2, 2.0]))
def test_cluster_search_script_replies(reply: Any, max_distance: float) -> None:
    counts = search._script_counts(reply)  # never raises: a count only chooses a plan
    assert all(c is None or (type(c) is int and c >= 0) for c in counts)
    page = parsed_or_refused(search._parse_script_reply, reply, 3, max_distance)
    if page is not None:
        check_matches(page[0])


@FUZZ
@given(reply=resp2_search() | resp3_search() | reply | st.integers(-5, 5))
def test_count_replies_are_a_count_or_none(reply: Any) -> None:
    count = search._count_of(reply)
    assert count is None or (type(count) is int and count >= 0)


@FUZZ
@given(reply=ft_info() | reply)
def test_ft_info_replies(reply: Any) -> None:
    parsed_or_refused(search._parse_info, reply)


# -- vector sets -------------------------------------------------------------------------


@FUZZ
@given(reply=flat_triples() | reply, max_distance=st.sampled_from([0.2, 2.0]))
def test_vector_set_search_replies(reply: Any, max_distance: float) -> None:
    matches = parsed_or_refused(vectorset._matches, reply, max_distance)
    if matches is not None:
        check_matches(matches)


# -- named regressions: what used to escape ----------------------------------------------

OK_PAYLOAD = codec.encode("fine", written_at=1.0)


@pytest.mark.parametrize(
    ("parse", "reply"),
    [
        # A distance or score that is not a number, or NaN (which passes every bound).
        (
            lambda r: search._parse_search(r, 3, 2.0),
            [1, b"abc-id", [b"payload", b"x", b"dist", b"near"]],
        ),
        (
            lambda r: search._parse_search(r, 3, 0.1),
            [1, b"abc-id", [b"payload", b"x", b"dist", b"nan"]],
        ),
        (lambda r: vectorset._matches(r, 0.1), [b"id", b"nan", b"x"]),
        # Rows of the wrong type: an int id, a payload that is a list.
        (lambda r: vectorset._matches(r, 2.0), [7, b"0.9", b"x"]),
        (lambda r: vectorset._matches(r, 2.0), [b"id", b"0.9", [b"x"]]),
        (lambda r: search._parse_search(r, 3, 2.0), {b"results": [[b"not", b"a", b"map"]]}),
        # An FT.INFO whose dimension is 400 digits, or not UTF-8.
        (
            search._parse_info,
            [b"attributes", [[b"identifier", b"vec", b"type", b"VECTOR", b"dim", b"9" * 5000]]],
        ),
        (search._parse_info, [b"attributes", [[b"identifier", b"\xff", b"type", b"VECTOR"]]]),
    ],
)
def test_replies_that_used_to_escape_are_serialization_errors(parse: Any, reply: Any) -> None:
    with pytest.raises(SerializationError):
        parse(reply)


FOREIGN_ROW = (b"good-id", OK_PAYLOAD, b"\xff\xfe", b"foreign payload")


@pytest.mark.parametrize(
    "parse",
    [
        lambda good, p, bad, q: search._parse_search(
            [
                2,
                b"abc" + good,
                [b"payload", p, b"dist", b"0.1"],
                b"abc" + bad,
                [b"dist", b"0.2", b"payload", q],
            ],
            3,
            2.0,
        )[0],
        lambda good, p, bad, q: search._parse_search(
            {
                b"results": [
                    {b"id": b"abc" + good, b"extra_attributes": {b"payload": p, b"dist": b"0.1"}},
                    {b"id": b"abc" + bad, b"extra_attributes": {b"payload": q, b"dist": b"0.2"}},
                ]
            },
            3,
            2.0,
        )[0],
        lambda good, p, bad, q: search._parse_script_reply(
            [None, None, b"abc" + good, b"0.1", p, b"abc" + bad, b"0.2", q], 3, 2.0
        )[0],
        lambda good, p, bad, q: vectorset._matches([good, b"0.95", p, bad, b"0.9", q], 2.0),
    ],
    ids=["ft-search-resp2", "ft-search-resp3", "cluster-script", "vector-set"],
)
def test_a_member_whose_id_is_not_utf8_comes_back_undecodable(parse: Any) -> None:
    # (UnicodeDecodeError once.) Not an id this store writes: its payload is withheld,
    # so the cache counts an undecodable entry, and the other rows stay usable.
    good, foreign = parse(*FOREIGN_ROW)
    assert (good.entry_id, good.payload) == ("good-id", OK_PAYLOAD)
    assert foreign.entry_id == "\\xff\\xfe"
    assert foreign.payload == b""
    with pytest.raises(SerializationError):
        codec.decode(foreign.payload)


# -- the codec ---------------------------------------------------------------------------

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | huge_int
    | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)
known = st.sampled_from(
    [
        "Generation",
        "GenerationChunk",
        "ChatGeneration",
        "ChatGenerationChunk",
        "AIMessage",
        "AIMessageChunk",
        "ChatMessage",
        "HumanMessage",
        "ai",
        "AIMessageChunk",
    ]
)


@st.composite
def hostile_generation(draw: st.DrawFn) -> Any:
    fields = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "content": st.text(max_size=5) | json_value,
                "type": known | json_value,
                "role": st.text(max_size=3) | json_value,
                "additional_kwargs": json_value,
                "response_metadata": json_value,
                "tool_calls": json_value
                | st.lists(st.dictionaries(st.sampled_from(["name", "args", "id"]), json_value)),
                "usage_metadata": json_value
                | st.fixed_dictionaries(
                    {"input_tokens": huge_int | json_leaf, "output_tokens": huge_int}
                ),
                "id": json_value,
                "name": json_value,
                "example": json_value,
            },
        )
    )
    item = {"c": draw(known | json_value), "i": draw(st.none() | json_value), "x": draw(json_value)}
    item["m"] = draw(st.just({"c": draw(known | json_value), "f": fields}) | json_value)
    return draw(st.just(item) | json_value)


@st.composite
def hostile_envelope(draw: st.DrawFn) -> bytes:
    envelope: dict[str, Any] = {
        "v": draw(st.just(1) | json_value),
        "t": draw(st.just(1.0) | huge_int | json_value),
        "k": draw(st.sampled_from(["lc", "json"]) | json_value),
        "d": draw(st.lists(hostile_generation(), max_size=3) | json_value),
    }
    if draw(st.booleans()):
        envelope["s"] = draw(json_value)
    text = json.dumps(envelope)
    if draw(st.booleans()):
        text = '{"v":1,"n":1,' + text[1:]  # the stdlib mark, with or without a version
    return text.encode()


@FUZZ
@given(payload=st.binary(max_size=200) | hostile_envelope())
def test_decode_raises_only_serialization_errors(payload: bytes) -> None:
    try:
        entry = codec.decode(payload)
    except SerializationError:
        return
    assert math.isfinite(entry.written_at)


@pytest.mark.parametrize(
    "payload",
    [
        # A 400-digit timestamp (OverflowError converting it), with and without the mark
        # that routes long numbers to the stdlib parser.
        b'{"v":1,"t":' + b"9" * 400 + b',"k":"json","d":1}',
        b'{"v":1,"n":1,"t":' + b"9" * 400 + b',"k":"json","d":1}',
        b'{"v":1,"n":1,"t":-' + b"9" * 400 + b',"k":"json","d":1}',
        # Nested far beyond any recursion limit, in data and in the signature.
        b'{"v":1,"t":1,"k":"json","d":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"v":1,"t":1,"k":"json","d":1,"s":{"a":' + b"[" * 5000 + b"]" * 5000 + b"}}",
    ],
)
def test_hostile_entries_are_serialization_errors(payload: bytes) -> None:
    with pytest.raises(SerializationError):
        codec.decode(payload)


def test_values_nested_too_deep_to_encode_are_serialization_errors() -> None:
    value: Any = []
    for _ in range(5000):
        value = [value]
    with pytest.raises(SerializationError):
        codec.encode(value, written_at=1.0)


# -- the counters hash read by `llmemo stats` --------------------------------------------

stats_value = number_bytes | hostile_bytes | st.binary(max_size=8) | leaf


@FUZZ
@given(
    raw=st.dictionaries(
        st.sampled_from([b"exact_hits", b"misses", b"updated_at", b"writes"])
        | hostile_bytes
        | leaf.filter(lambda v: v.__hash__ is not None),
        stats_value,
        max_size=8,
    )
    | reply
)
def test_stats_hash_readings(raw: Any) -> None:
    from llmemo.cli import _read_counters

    found = _read_counters(raw)  # never raises
    assert all(isinstance(v, int) and v >= 0 for v in found.counts.values())
    assert found.updated_at is None or math.isfinite(found.updated_at)
    assert all(isinstance(name, str) and len(name) <= 43 for name in found.unreadable)
