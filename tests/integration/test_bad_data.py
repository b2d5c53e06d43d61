"""Bad stored data under a cache's own keys: a counted miss, never an exception, never code.

Each kind of bad entry is written straight under the key the cache computes (the key
layout of ``llmemo.keys``), then looked up through a LangChain model: the model's answer
comes back, ``stats.decode_errors`` counts the entry, and the model's fresh answer
replaces it. A payload naming a class outside the allow-list names a canary module whose
import would leave a mark: it is never imported.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import io
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from langchain_core.outputs import Generation

from echo_model import EchoChatModel, answer_to, invoker, prompt_of
from llmemo import ExactCache, FailurePolicy, MemoryKeyStore, cli, codec, keys
from llmemo.langchain import InMemoryCache, LangChainCache, RedisCache, RedisSemanticCache
from llmemo.text import split_prompt

from fakes import ConceptEmbeddings

FRANCE = "What is the capital of France?"
FRANCE_PARAPHRASE = "Can you tell me the capital city of France?"
# These tests count what bad data does, not slowness: the Redis caches get a time budget
# that no loaded CI machine runs over (the default 100 ms once was, by the setup of a
# connection, which turned an expected decode error into a timeout). The circuit
# breaker keeps its defaults.
PATIENT = FailurePolicy(operation_timeout=10.0)


@dataclass
class Canary:
    """A module on ``sys.path`` whose import (or whose class's instantiation) writes
    :attr:`marker`."""

    module: str
    marker: Path

    @property
    def touched(self) -> bool:
        return self.marker.exists() or self.module in sys.modules


@pytest.fixture
def canary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unique_prefix: str) -> Iterator[Canary]:
    module = f"llmemo_canary_{unique_prefix.replace('-', '_')}"
    marker = tmp_path / "imported"
    (tmp_path / f"{module}.py").write_text(
        "from pathlib import Path\n"
        f"Path({str(marker)!r}).write_text('imported')\n"
        "class Evil:\n"
        "    def __init__(self, *args, **kwargs):\n"
        f"        Path({str(marker)!r}).write_text('instantiated')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    found = Canary(module, marker)
    yield found
    sys.modules.pop(module, None)


def envelope(data: Any, *, kind: str = "lc", version: Any = 1) -> bytes:
    return json.dumps({"v": version, "t": 1.0, "k": kind, "d": data}).encode()


def ai_generation(**message_fields: Any) -> dict[str, Any]:
    fields = {"content": "served from a bad entry", "type": "ai", **message_fields}
    return {"c": "ChatGeneration", "i": None, "m": {"c": "AIMessage", "f": fields}}


def bad_payloads(canary: Canary) -> dict[str, bytes]:
    """Every kind of undecodable entry, by name."""
    evil = f"{canary.module}.Evil"
    constructor = {"lc": 1, "type": "constructor", "id": [canary.module, "Evil"], "kwargs": {}}
    # A pickle that imports and instantiates the canary class when unpickled.
    pickled = f"\x80\x04c{canary.module}\nEvil\n)\x81.".encode("latin-1")
    good = codec.encode([Generation(text="fine")], written_at=1.0)
    return {
        "garbage": b"\x80\x81\xfe\x00 not json {",
        "empty": b"",
        "truncated": good[:-7],
        "not-utf8-json": b'{"v": 1, "t": 1, "k": "lc", "d": "\xff\xfe"}',
        "not-an-object": b"[1, 2, 3]",
        "unknown-version": envelope([{"c": "Generation", "i": None, "x": "old"}], version=99),
        "no-version": json.dumps({"t": 1.0, "k": "lc", "d": []}).encode(),
        "no-timestamp": json.dumps({"v": 1, "k": "lc", "d": []}).encode(),
        "unknown-kind": envelope(base64.b64encode(pickled).decode(), kind="pickle"),
        "raw-pickle": pickled,
        "generations-not-a-list": envelope({"c": "Generation", "x": "x"}),
        "generation-class-outside-allow-list": envelope([{"c": evil, "i": None, "x": "x"}]),
        "langchain-class-outside-allow-list": envelope(
            [{"c": "ChatGeneration", "i": None, "m": {"c": "HumanMessage", "f": {}}}]
        ),
        "message-class-outside-allow-list": envelope(
            [{"c": "ChatGeneration", "i": None, "m": {"c": evil, "f": {"content": "x"}}}]
        ),
        "serialized-constructor-as-generation": envelope([constructor]),
        "serialized-constructor-as-message": envelope(
            [{"c": "ChatGeneration", "i": None, "m": {"c": "AIMessage", "f": constructor}}]
        ),
        "message-field-of-wrong-type": envelope([ai_generation(additional_kwargs=7)]),
        "unknown-message-field": envelope([ai_generation(lc_constructor=constructor)]),
        "bad-tool-call": envelope([ai_generation(tool_calls=[{"name": 1, "args": "no"}])]),
        "bad-usage": envelope([ai_generation(usage_metadata={"input_tokens": "many"})]),
        "generation-text-not-str": envelope([{"c": "Generation", "i": None, "x": 42}]),
        "deeply-nested": b"[" * 100_000 + b"]" * 100_000,
        "deeply-nested-metadata": b'{"v":1,"t":1,"k":"lc","d":[{"c":"Generation","i":{"x":'
        + b"[" * 5_000
        + b"]" * 5_000
        + b'},"x":"x"}]}',
        # A timestamp beyond floats (OverflowError once); the second carries the mark
        # that sends entries with long digit runs to the stdlib parser.
        "huge-timestamp": b'{"v":1,"t":' + b"9" * 400 + b',"k":"json","d":"x"}',
        "huge-timestamp-marked": b'{"v":1,"n":1,"t":' + b"9" * 400 + b',"k":"lc","d":[]}',
        "nan-timestamp": b'{"v":1,"t":NaN,"k":"lc","d":[]}',
    }


def test_the_canary_would_sing(canary: Canary) -> None:
    # Control: importing the canary module and instantiating its class leave a mark, so
    # the "never imported" checks below can fail.
    assert not canary.touched
    module = importlib.import_module(canary.module)
    assert canary.marker.read_text() == "imported"
    module.Evil()
    assert canary.marker.read_text() == "instantiated"


def test_every_bad_payload_is_refused_by_the_codec(canary: Canary) -> None:
    for name, payload in bad_payloads(canary).items():
        with pytest.raises(codec.SerializationError):
            codec.decode(payload)
            pytest.fail(f"{name} decoded")
    assert not canary.touched


# ---------------------------------------------------------------------------------------
# Exact caches, through a LangChain model
# ---------------------------------------------------------------------------------------


@dataclass
class ExactTarget:
    """An exact LangChain cache plus a way to write raw bytes under its keys."""

    cache: LangChainCache
    write_raw: Callable[[str, bytes], None]
    raw_client: redis.Redis | None = None


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def exact_target(request: pytest.FixtureRequest, unique_prefix: str) -> Iterator[ExactTarget]:
    if request.param == "memory":
        memory = InMemoryCache(namespace=unique_prefix)
        store = memory.core().store  # shared by every loop and thread

        def write_memory(key: str, payload: bytes) -> None:
            asyncio.run(store.set(key, payload))

        yield ExactTarget(memory, write_memory)
        return
    url = request.getfixturevalue("redis_url")
    cache = RedisCache(url, prefix=unique_prefix, policy=PATIENT)
    client = redis.Redis.from_url(url)
    try:
        yield ExactTarget(cache, lambda key, payload: client.set(key, payload), client)
    finally:
        cache.close()
        for key in client.scan_iter(match=f"{unique_prefix}:*", count=1000):
            client.unlink(key)
        client.close()


def exact_key(namespace: str, chat: EchoChatModel, text: str) -> str:
    """The key under which the cache stores ``chat.invoke(text)``."""
    return ExactCache(MemoryKeyStore(), namespace=namespace).key(prompt_of(text), chat.llm_string())


@pytest.mark.parametrize("face", ["sync", "async"])
def test_bad_entries_are_counted_misses(
    exact_target: ExactTarget, face: str, unique_prefix: str, canary: Canary
) -> None:
    cache = exact_target.cache
    chat = EchoChatModel(cache=cache)
    payloads = bad_payloads(canary)
    with invoker(face, chat) as invoke:
        # The computed key is the one the cache really uses.
        assert invoke("good") == answer_to("good")
        if exact_target.raw_client is not None:
            assert exact_target.raw_client.exists(exact_key(unique_prefix, chat, "good")) == 1
        for number, (name, payload) in enumerate(payloads.items(), start=1):
            text = f"bad entry: {name}"
            exact_target.write_raw(exact_key(unique_prefix, chat, text), payload)
            calls = chat.calls
            assert invoke(text) == answer_to(text), name  # the model answered
            assert chat.calls == calls + 1, name
            assert cache.stats.decode_errors == number, name
            # The model's answer replaced the bad entry: the next call is a hit.
            assert invoke(text) == answer_to(text), name
            assert chat.calls == calls + 1, name
    stats = cache.stats
    assert stats.exact_hits == len(payloads)
    assert stats.misses == len(payloads) + 1
    assert stats.errors == 0  # bad data is not a backend failure
    assert not canary.touched


@pytest.mark.redis
@pytest.mark.parametrize("face", ["sync", "async"])
@pytest.mark.parametrize(
    "redis_type",
    [
        ("HSET", "field", "value"),
        ("RPUSH", "item"),
        ("SADD", "member"),
        ("ZADD", 1, "member"),
        ("XADD", "*", "field", "value"),
        ("VADD", "VALUES", 2, 1.0, 0.5, "element"),
    ],
    ids=lambda command: command[0],
)
def test_a_key_of_another_redis_type_is_a_counted_miss(
    redis_url: str, unique_prefix: str, face: str, redis_type: tuple[Any, ...]
) -> None:
    cache = RedisCache(redis_url, prefix=unique_prefix, policy=PATIENT)
    chat = EchoChatModel(cache=cache)
    key = exact_key(unique_prefix, chat, "typed")
    with redis.Redis.from_url(redis_url) as client:
        client.execute_command(redis_type[0], key, *redis_type[1:])
        try:
            with invoker(face, chat) as invoke:
                assert invoke("typed") == answer_to("typed")
                assert invoke("typed") == answer_to("typed")
            assert chat.calls == 1  # the write replaced the foreign key; then a hit
            assert client.type(key) == b"string"
            assert cache.stats.decode_errors == 1
            assert cache.stats.errors == 0
        finally:
            client.unlink(key)
            cache.close()


@pytest.mark.redis
async def test_many_bad_entries_never_open_the_breaker(redis_url: str, unique_prefix: str) -> None:
    cache = RedisCache(redis_url, prefix=unique_prefix, policy=PATIENT)
    chat = EchoChatModel(cache=cache)
    with redis.Redis.from_url(redis_url) as client:
        try:
            for i in range(12):
                client.hset(exact_key(unique_prefix, chat, f"p{i}"), "f", "v")
                assert await cache.alookup(prompt_of(f"p{i}"), chat.llm_string()) is None
            assert cache.stats.decode_errors == 12
            assert cache.stats.breaker_opens == 0
            assert cache.runtime.store_guard.breaker.state == "closed"
        finally:
            for key in client.scan_iter(match=f"{unique_prefix}:*"):
                client.unlink(key)


async def test_a_json_entry_under_a_langchain_key_is_not_served(unique_prefix: str) -> None:
    # Core-API JSON data written under the key LangChain reads: not generations, so
    # LangChain gets a miss (and the model is called), never the foreign value.
    cache = InMemoryCache(namespace=unique_prefix)
    chat = EchoChatModel(cache=cache)
    core = cache.core()
    await core.aupdate(prompt_of("q"), chat.llm_string(), {"lc": 1, "type": "constructor"})
    assert (await chat.ainvoke("q")).content == answer_to("q")
    assert chat.calls == 1


async def test_a_json_entry_under_a_langchain_key_counts_as_a_miss(unique_prefix: str) -> None:
    cache = InMemoryCache(namespace=unique_prefix)
    chat = EchoChatModel(cache=cache)
    await cache.core().aupdate(prompt_of("q"), chat.llm_string(), ["not", "generations"])
    assert await cache.alookup(prompt_of("q"), chat.llm_string()) is None
    assert cache.stats.hits == 0
    assert cache.stats.misses == 1


# ---------------------------------------------------------------------------------------
# Semantic caches on Redis
# ---------------------------------------------------------------------------------------

LLM = "semantic-llm"
SEMANTIC_BAD = [
    "garbage",
    "unknown-version",
    "message-class-outside-allow-list",
    "raw-pickle",
    "huge-timestamp-marked",
    "deeply-nested-metadata",
]


@pytest.fixture
def semantic_cache(
    request: pytest.FixtureRequest, redis_url: str, unique_prefix: str
) -> Iterator[RedisSemanticCache]:
    backend = request.param
    cache = RedisSemanticCache(
        ConceptEmbeddings(), redis_url, prefix=unique_prefix, name=unique_prefix,
        vector_backend=backend, policy=PATIENT,
    )  # fmt: skip
    yield cache
    with redis.Redis.from_url(redis_url) as client:
        for key in client.scan_iter(match=f"{unique_prefix}*", count=1000):
            client.unlink(key)
        if backend == "redisearch":
            client.execute_command("FT.DROPINDEX", f"{unique_prefix}:v1:ix")


def semantic_keys(cache: RedisSemanticCache, prompt: str) -> tuple[str, str]:
    """(entry key, vector-set key) of ``prompt`` under LLM: the layout of the stores."""
    root = cache.prefix  # name == prefix
    partition = keys.partition_id(root, LLM, split_prompt(prompt).context)
    entry_id = keys.prompt_id(prompt)
    if cache.vector_backend == "redisearch":
        return f"{root}:v1:s:{{{partition}}}:{entry_id}", ""
    return f"{root}:v1:vp:{{{partition}}}:{entry_id}", f"{root}:v1:vs:{{{partition}}}"


SEMANTIC_BACKENDS = [
    pytest.param("redisearch", marks=pytest.mark.redisearch),
    pytest.param("vectorset", marks=pytest.mark.vectorset),
]


@pytest.mark.parametrize("semantic_cache", SEMANTIC_BACKENDS, indirect=True)
@pytest.mark.parametrize("bad", SEMANTIC_BAD)
async def test_bad_semantic_payloads_are_counted_misses(
    semantic_cache: RedisSemanticCache, redis_url: str, canary: Canary, bad: str
) -> None:
    cache = semantic_cache
    await cache.aupdate(FRANCE, LLM, [Generation(text="Paris")])
    assert await cache.alookup(FRANCE_PARAPHRASE, LLM) == [Generation(text="Paris")]
    entry_key, _ = semantic_keys(cache, FRANCE)
    payload = bad_payloads(canary)[bad]
    with redis.Redis.from_url(redis_url) as client:
        assert client.exists(entry_key) == 1
        if cache.vector_backend == "redisearch":
            client.hset(entry_key, "payload", payload)
        else:
            client.set(entry_key, payload)
    assert await cache.alookup(FRANCE, LLM) is None  # the exact probe
    assert cache.stats.decode_errors == 1
    assert await cache.alookup(FRANCE_PARAPHRASE, LLM) is None  # the vector query
    assert cache.stats.decode_errors == 2
    assert cache.stats.errors == 0
    assert cache.stats.semantic_hits == 1
    chat = EchoChatModel(cache=cache)
    assert (await chat.ainvoke("What's the capital of France?")).content == answer_to(
        "What's the capital of France?"
    )
    assert not canary.touched


@pytest.mark.redisearch
@pytest.mark.parametrize("semantic_cache", ["redisearch"], indirect=True)
async def test_redisearch_entry_of_another_type_is_a_counted_miss(
    semantic_cache: RedisSemanticCache, redis_url: str
) -> None:
    cache = semantic_cache
    await cache.aupdate(FRANCE, LLM, [Generation(text="Paris")])
    entry_key, _ = semantic_keys(cache, FRANCE)
    with redis.Redis.from_url(redis_url) as client:
        assert client.type(entry_key) == b"hash"
        client.unlink(entry_key)
        client.set(entry_key, b"a string where a hash belongs")
    assert await cache.alookup(FRANCE, LLM) is None
    assert cache.stats.decode_errors == 1
    assert await cache.alookup(FRANCE_PARAPHRASE, LLM) is None  # not indexed: a plain miss
    assert cache.stats.errors == 0


@pytest.mark.vectorset
@pytest.mark.parametrize("exact_first", [True, False], ids=["exact-first", "vector-only"])
@pytest.mark.parametrize("wrong_key", ["payload", "vector-set"])
async def test_vector_set_keys_of_another_type_are_counted_misses(
    redis_url: str, unique_prefix: str, wrong_key: str, exact_first: bool
) -> None:
    cache = RedisSemanticCache(
        ConceptEmbeddings(), redis_url, prefix=unique_prefix, name=unique_prefix,
        vector_backend="vectorset", exact_first=exact_first, policy=PATIENT,
    )  # fmt: skip
    with redis.Redis.from_url(redis_url) as client:
        try:
            await cache.aupdate(FRANCE, LLM, [Generation(text="Paris")])
            payload_key, set_key = semantic_keys(cache, FRANCE)
            assert client.type(payload_key) == b"string"
            assert client.type(set_key) == b"vectorset"
            if wrong_key == "payload":
                client.unlink(payload_key)
                client.hset(payload_key, "f", "v")
            else:
                client.unlink(set_key)
                client.set(set_key, b"not a vector set")
            for _ in range(12):  # the vector query meets the bad key each time
                assert await cache.alookup(FRANCE_PARAPHRASE, LLM) is None
            if wrong_key == "vector-set":
                assert cache.stats.decode_errors >= 1
            # A payload key of another type met inside the search script is skipped there
            # (no error), so that the partition's other candidates can still serve.
            assert cache.stats.errors == 0
            assert cache.stats.breaker_opens == 0
        finally:
            for key in client.scan_iter(match=f"{unique_prefix}*", count=1000):
                client.unlink(key)


# ---------------------------------------------------------------------------------------
# Foreign members of a partition: ids that are not UTF-8, replies of other shapes
# ---------------------------------------------------------------------------------------

FOREIGN_ID = b"\xff\xfe-not-utf8"


def plant_foreign_member(
    client: redis.Redis, cache: RedisSemanticCache, prompt: str, *, keep_own: bool
) -> None:
    """Put a member whose id is not UTF-8 where ``prompt``'s entry is (same partition,
    same vector, a well-formed payload); remove ``prompt``'s own entry unless
    ``keep_own``."""
    entry_key, set_key = semantic_keys(cache, prompt)
    entry_id = keys.prompt_id(prompt)
    foreign_key = entry_key.encode()[: -len(entry_id)] + FOREIGN_ID
    payload = codec.encode([Generation(text="served from a foreign member")], written_at=1.0)
    if cache.vector_backend == "redisearch":
        fields = client.hgetall(entry_key)
        client.hset(foreign_key, mapping={**fields, b"payload": payload})
        if not keep_own:
            client.unlink(entry_key)
    else:
        vector = client.execute_command("VEMB", set_key, entry_id)
        client.execute_command("VADD", set_key, "VALUES", len(vector), *vector, FOREIGN_ID)
        client.set(foreign_key, payload)
        if not keep_own:
            client.execute_command("VREM", set_key, entry_id)
            client.unlink(entry_key)


@pytest.mark.parametrize("backend", SEMANTIC_BACKENDS)
@pytest.mark.parametrize("exact_first", [True, False], ids=["exact-first", "vector-only"])
async def test_a_member_id_that_is_not_utf8_is_a_counted_miss(
    redis_url: str, unique_prefix: str, backend: str, exact_first: bool
) -> None:
    # Another writer's member in our partition whose id is not UTF-8 (UnicodeDecodeError
    # out of the reply parser once): a miss counted in decode_errors, never its payload
    # served, never a backend error or an open circuit.
    cache = RedisSemanticCache(
        ConceptEmbeddings(), redis_url, prefix=unique_prefix, name=unique_prefix,
        vector_backend=backend, exact_first=exact_first, policy=PATIENT,
    )  # fmt: skip
    with redis.Redis.from_url(redis_url) as client:
        try:
            await cache.aupdate(FRANCE, LLM, [Generation(text="Paris")])
            plant_foreign_member(client, cache, FRANCE, keep_own=False)
            for number in range(1, 13):  # more than the breaker's threshold
                assert await cache.alookup(FRANCE_PARAPHRASE, LLM) is None
                assert cache.stats.decode_errors == number
            assert cache.stats.errors == 0
            assert cache.stats.breaker_opens == 0
            # Through a model: the model answers.
            chat = EchoChatModel(cache=cache)
            question = "What's the capital of France?"
            assert (await chat.ainvoke(question)).content == answer_to(question)
            assert chat.calls == 1
        finally:
            await cache.aclose()
            for key in client.scan_iter(match=f"{unique_prefix}*", count=1000):
                client.unlink(key)
            if backend == "redisearch":
                client.execute_command("FT.DROPINDEX", f"{unique_prefix}:v1:ix")


@pytest.mark.parametrize("backend", SEMANTIC_BACKENDS)
async def test_a_foreign_member_leaves_the_other_candidates_usable(
    redis_url: str, unique_prefix: str, backend: str
) -> None:
    cache = RedisSemanticCache(
        ConceptEmbeddings(), redis_url, prefix=unique_prefix, name=unique_prefix,
        vector_backend=backend, candidates=2, policy=PATIENT,
    )  # fmt: skip
    with redis.Redis.from_url(redis_url) as client:
        try:
            await cache.aupdate(FRANCE, LLM, [Generation(text="Paris")])
            plant_foreign_member(client, cache, FRANCE, keep_own=True)
            # The two are equally near: whichever comes first, ours is served.
            assert await cache.alookup(FRANCE_PARAPHRASE, LLM) == [Generation(text="Paris")]
            assert cache.stats.semantic_hits == 1
            assert cache.stats.decode_errors <= 1
            assert cache.stats.errors == 0
        finally:
            await cache.aclose()
            for key in client.scan_iter(match=f"{unique_prefix}*", count=1000):
                client.unlink(key)
            if backend == "redisearch":
                client.execute_command("FT.DROPINDEX", f"{unique_prefix}:v1:ix")


@pytest.mark.redisearch
@pytest.mark.parametrize("exact_first", [True, False], ids=["exact-first", "vector-only"])
async def test_a_foreign_index_whose_info_is_not_utf8_fails_no_lookup(
    redis_url: str, unique_prefix: str, exact_first: bool
) -> None:
    # Another tool's index under this cache's index name, with a field name that is not
    # UTF-8: its FT.INFO is unreadable (UnicodeDecodeError out of the lookup once). It is
    # an index of another schema, so a lookup is a miss, never an exception.
    cache = RedisSemanticCache(
        ConceptEmbeddings(), redis_url, prefix=unique_prefix, name=unique_prefix,
        vector_backend="redisearch", exact_first=exact_first, policy=PATIENT,
    )  # fmt: skip
    index = cache.core().store.index_name  # type: ignore[attr-defined]
    with redis.Redis.from_url(redis_url) as client:
        client.execute_command(
            "FT.CREATE", index, "ON", "HASH", "PREFIX", 1, f"{unique_prefix}:foreign:",
            "SCHEMA", b"\xff\xfe", "TEXT",
        )  # fmt: skip
        try:
            for _ in range(3):
                assert await cache.alookup(FRANCE_PARAPHRASE, LLM) is None
            assert cache.stats.exact_hits + cache.stats.semantic_hits == 0
        finally:
            await cache.aclose()
            client.execute_command("FT.DROPINDEX", index)
            for key in client.scan_iter(match=f"{unique_prefix}*", count=1000):
                client.unlink(key)


# ---------------------------------------------------------------------------------------
# `llmemo stats` reading a hostile counters hash
# ---------------------------------------------------------------------------------------


def run_cli(*argv: str) -> tuple[int, str, str]:
    """Run the ``llmemo`` command in-process; return ``(exit code, stdout, stderr)``."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stdout", out)
        patch.setattr(sys, "stderr", err)
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


HOSTILE_STATS = {
    b"exact_hits": b"5",
    b"semantic_hits": b"2",
    b"misses": b"\xff\xfe",  # not UTF-8
    b"\xfe\xffname": b"3",  # a field name that is not UTF-8
    b"writes": b"9" * 5000,  # beyond int()'s digit limit
    b"decode_errors": "\u00b2".encode(),  # "²": str.isdigit() says yes, int() says no
    b"breaker_opens": b"1.5",
    b"errors_backend": b"-2",  # counters are sums of increments
    b"writes_dropped": b"4",
    b"updated_at": b"1e400",  # infinite
}


@pytest.mark.redis
@pytest.mark.parametrize(
    "planted",
    [HOSTILE_STATS, {b"updated_at": b"soon", b"exact_hits": b"1"}, "a string, not a hash"],
    ids=["hostile-fields", "bad-timestamp", "another-type"],
)
def test_stats_prints_what_it_can_read_of_a_hostile_counters_hash(
    redis_url: str, unique_prefix: str, planted: Any
) -> None:
    cache = RedisCache(redis_url, prefix=unique_prefix, policy=PATIENT)
    stats_key = f"{unique_prefix}:v1:stats"
    with redis.Redis.from_url(redis_url) as client:
        try:
            cache.update("p", "llm", [Generation(text="x")])  # so that the cache exists
            if isinstance(planted, dict):
                client.hset(stats_key, mapping=planted)
            else:
                client.set(stats_key, planted)
            code, out, err = run_cli("stats", "--redis-url", redis_url, "--prefix", unique_prefix)
            assert code == 0, err
            assert "Traceback" not in err
            assert "entries:     1" in out  # what came before the counters is there
            if planted is HOSTILE_STATS:
                assert "lookups:     7 hits" in out  # the readable counters are shown
                assert "writes_dropped: 4" in out
                assert "unreadable" in out
                unreadable = (
                    "misses",
                    "writes",
                    "decode_errors",
                    "breaker_opens",
                    "errors_backend",
                )
                for name in unreadable:
                    assert name in out.split("unreadable", 1)[1], name
                assert "\\xfe\\xffname" in out  # named, escaped
                assert "published" not in out  # no age from an infinite timestamp
            elif isinstance(planted, dict):
                assert "lookups:     1 hits" in out
                assert "unreadable" in out and "updated_at" in out
            else:
                assert "unreadable" in out and "not a hash" in out
        finally:
            cache.close()
            for key in client.scan_iter(match=f"{unique_prefix}:*", count=1000):
                client.unlink(key)
