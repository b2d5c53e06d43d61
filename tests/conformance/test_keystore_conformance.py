"""The KeyStore contract, run against every backend in ``KEY_STORE_BACKENDS``."""

from __future__ import annotations

import math

import pytest

from llmemo.errors import ConfigurationError
from llmemo.stores.base import KeyStore

from harness import Harness


async def test_is_a_key_store(key_store_harness: Harness[KeyStore]) -> None:
    assert isinstance(key_store_harness.store, KeyStore)


async def test_missing_key_is_none(key_store_harness: Harness[KeyStore]) -> None:
    assert await key_store_harness.store.get(f"{key_store_harness.prefix}:nothing") is None


@pytest.mark.parametrize(
    "value",
    [b"", b"plain", b"\x00nul\x00bytes\xff\xfe", "ünïcødé ✓ 日本".encode(), b"x" * 1_000_000],
    ids=["empty", "plain", "binary", "utf8", "megabyte"],
)
async def test_set_then_get_returns_the_same_bytes(
    key_store_harness: Harness[KeyStore], value: bytes
) -> None:
    store, key = key_store_harness.store, f"{key_store_harness.prefix}:k"
    await store.set(key, value)
    assert await store.get(key) == value


async def test_unicode_keys(key_store_harness: Harness[KeyStore]) -> None:
    store, key = key_store_harness.store, f"{key_store_harness.prefix}:ключ:日本:✓"
    await store.set(key, b"v")
    assert await store.get(key) == b"v"


async def test_overwrite_replaces_value_and_ttl(key_store_harness: Harness[KeyStore]) -> None:
    store, key = key_store_harness.store, f"{key_store_harness.prefix}:k"
    await store.set(key, b"first", ttl=0.3)
    await store.set(key, b"second")
    await key_store_harness.elapse(0.6)
    assert await store.get(key) == b"second"


async def test_ttl_expires_the_value(key_store_harness: Harness[KeyStore]) -> None:
    store, prefix = key_store_harness.store, key_store_harness.prefix
    await store.set(f"{prefix}:short", b"v", ttl=0.3)
    await store.set(f"{prefix}:long", b"v", ttl=60)
    await store.set(f"{prefix}:forever", b"v")
    assert await store.get(f"{prefix}:short") == b"v"
    await key_store_harness.elapse(0.6)
    assert await store.get(f"{prefix}:short") is None
    assert await store.get_many([f"{prefix}:short"]) == [None]
    assert await store.get(f"{prefix}:long") == b"v"
    assert await store.get(f"{prefix}:forever") == b"v"


@pytest.mark.parametrize("ttl", [0, -1, math.nan, math.inf, "5", True])
async def test_bad_ttl_is_refused_and_nothing_stored(
    key_store_harness: Harness[KeyStore], ttl: object
) -> None:
    store, key = key_store_harness.store, f"{key_store_harness.prefix}:k"
    with pytest.raises(ConfigurationError, match="ttl"):
        await store.set(key, b"v", ttl=ttl)  # type: ignore[arg-type]
    assert await store.get(key) is None


async def test_get_many_keeps_order_and_reports_missing(
    key_store_harness: Harness[KeyStore],
) -> None:
    store, prefix = key_store_harness.store, key_store_harness.prefix
    await store.set(f"{prefix}:a", b"A")
    await store.set(f"{prefix}:c", b"C")
    keys = [f"{prefix}:c", f"{prefix}:b", f"{prefix}:a", f"{prefix}:c"]
    assert await store.get_many(keys) == [b"C", None, b"A", b"C"]
    assert await store.get_many([]) == []


async def test_delete_reports_whether_the_key_existed(
    key_store_harness: Harness[KeyStore],
) -> None:
    store, key = key_store_harness.store, f"{key_store_harness.prefix}:k"
    await store.set(key, b"v")
    assert await store.delete(key) is True
    assert await store.get(key) is None
    assert await store.delete(key) is False


async def test_clear_removes_only_its_prefix(key_store_harness: Harness[KeyStore]) -> None:
    store, prefix = key_store_harness.store, key_store_harness.prefix
    mine = [f"{prefix}:x:{i}" for i in range(25)]
    # Foreign keys: same root but outside the cleared prefix, and a sibling prefix.
    foreign = [f"{prefix}:y:1", f"{prefix}-other:x:1", f"{prefix}:x"]
    for key in mine + foreign:
        await store.set(key, b"v")
    try:
        assert await store.clear(f"{prefix}:x:") == len(mine)
        assert await store.get_many(mine) == [None] * len(mine)
        assert await store.get_many(foreign) == [b"v"] * len(foreign)
    finally:
        for key in foreign:
            await store.delete(key)


async def test_clear_with_empty_prefix_is_refused(key_store_harness: Harness[KeyStore]) -> None:
    store, key = key_store_harness.store, f"{key_store_harness.prefix}:k"
    await store.set(key, b"v")
    with pytest.raises(ConfigurationError, match="prefix"):
        await store.clear("")
    assert await store.get(key) == b"v"


async def test_aclose_is_idempotent(key_store_harness: Harness[KeyStore]) -> None:
    await key_store_harness.store.aclose()
    await key_store_harness.store.aclose()
