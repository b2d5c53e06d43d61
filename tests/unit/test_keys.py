"""Key derivation: length-prefixed hashing never collides across field boundaries."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmemo import keys
from llmemo.errors import ConfigurationError

fields = st.lists(st.text(), max_size=4)


@given(fields, fields)
def test_distinct_field_lists_hash_differently(a: list[str], b: list[str]) -> None:
    if a != b:
        assert keys.field_hash("d", *a) != keys.field_hash("d", *b)
    else:
        assert keys.field_hash("d", *a) == keys.field_hash("d", *b)


@given(st.text(), st.text(), st.text())
def test_moving_a_boundary_changes_the_partition(ns: str, llm: str, ctx: str) -> None:
    shifted = keys.partition_id("n", llm + ctx, "")
    if ctx:
        assert keys.partition_id("n", llm, ctx) != shifted
    assert keys.partition_id("n", llm, ctx) != keys.partition_id("m", llm, ctx)


def test_domains_separate_id_kinds() -> None:
    assert keys.field_hash("prompt", "x") != keys.field_hash("partition", "x")


@pytest.mark.parametrize(
    "prompt",
    ["", "\x00", "a\x00b", "日本語 ✓", "\ud800 lone surrogate", "x" * 1_000_000],
    ids=["empty", "nul", "inner-nul", "unicode", "surrogate", "megabyte"],
)
def test_ids_are_stable_hex_for_any_prompt(prompt: str) -> None:
    first = keys.prompt_id(prompt)
    assert first == keys.prompt_id(prompt)
    assert len(first) == 32
    assert all(c in "0123456789abcdef" for c in first)


def test_exact_key_layout() -> None:
    partition = keys.partition_id("ns", "model")
    key = keys.exact_key("ns", partition, "hello")
    assert key == f"ns:v1:x:{partition}:{keys.prompt_id('hello')}"


@pytest.mark.parametrize(
    "bad", ["", "a b", "a*b", "x{y}", "a?", "a[b]", "a" * 65, None, 3, "a:v1:x", "v1"]
)
def test_namespace_validation_names_the_parameter(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="namespace"):
        keys.validate_namespace(bad)


def test_namespace_validation_accepts_ordinary_names() -> None:
    for name in ("llm-cache_v2.prod", "myapp:cache", "v1x", "redis"):
        assert keys.validate_namespace(name) == name


def test_semantic_roots_of_distinct_prefix_and_name_pairs_are_distinct() -> None:
    import itertools

    parts = ["t", "a", "x", "t:a", "a:x", "t:a:x", "llmcache"]
    roots: dict[str, tuple[str, str]] = {}
    for prefix, name in itertools.product(parts, repeat=2):
        try:
            root = keys.semantic_root(prefix, name)
        except ConfigurationError:
            assert ":" in name
            continue
        assert roots.setdefault(root, (prefix, name)) == (prefix, name)
    assert keys.semantic_root("t:a", "x") == "t:a:x"
    assert keys.semantic_root("llmcache", "llmcache") == "llmcache"


@pytest.mark.parametrize("namespace", ["a:v2", "v7", "x:v10:y"])
def test_every_schema_like_segment_is_reserved(namespace: str) -> None:
    with pytest.raises(ConfigurationError, match="prefix"):
        keys.validate_namespace(namespace, parameter="prefix")
