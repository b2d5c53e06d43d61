"""Issue 15 item 15: ``llmemo stats``/``clear`` select only keys of llmemo's exact shape,
and never print a password, whatever the form of the URL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from langchain_core.outputs import Generation

from cli_runner import run
from llmemo.demo import redact_url
from llmemo.langchain import RedisCache, RedisSemanticCache

from fakes import ConceptEmbeddings

H = "0123456789abcdef0123456789abcdef"  # the shape of a partition / prompt id


def _foreign(root: str) -> list[str]:
    """Keys under ``root``'s llmemo pattern that llmemo never writes."""
    return [
        f"{root}:v1:s",  # no partition, no id
        f"{root}:v1:x",
        f"{root}:v1:s:{{123}}",  # not a partition token of llmemo's shape
        f"{root}:v1:s:{{{H}}}",  # the cluster routing key shape, never written
        f"{root}:v1:s:{{{H}}}:{H}:more",
        f"{root}:v1:x:{H}:{H}:extra",
        f"{root}:v1:x:{H}:{H.upper()}",  # upper-case hex: not llmemo's
        f"{root}:v1:x:{H}:{H[:-1]}",  # one character short
        f"{root}:v1:x:{{{H}}}:{H}",
        f"{root}:v1:vs:{{{H}}}:x",
        f"{root}:v1:vp:{{{H}}}",
        f"{root}:v1:vp:{{abc}}:{H}",
        f"{root}:v1:l:{H}:{H}",  # a lease, which expires by itself
    ]


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url) as admin:
        yield admin


@pytest.mark.redis
@pytest.mark.redisearch
def test_clear_and_stats_select_only_llmemo_shaped_keys(
    redis_url: str, unique_prefix: str, client: redis.Redis
) -> None:
    exact = RedisCache(redis_url, prefix=unique_prefix)
    semantic = RedisSemanticCache(
        ConceptEmbeddings(),
        redis_url,
        prefix=unique_prefix,
        name="sem",
        vector_backend="redisearch",
    )
    foreign = _foreign(unique_prefix) + _foreign(f"{unique_prefix}:sem")
    try:
        for key in foreign:
            client.set(key, b"foreign")
        exact.update("p", "llm", [Generation(text="x")])
        semantic.update("What is the capital of France?", "llm", [Generation(text="Paris")])
        code, out, err = run("stats", "--redis-url", redis_url, "--prefix", unique_prefix)
        assert code == 0, err
        assert "1 exact" in out or "exact:       1" in out or " 1 " in out
        code, out, err = run("clear", "--redis-url", redis_url, "--prefix", unique_prefix, "-y")
        assert code == 0, err
        code, out, err = run(
            "clear", "--redis-url", redis_url, "--prefix", unique_prefix, "--name", "sem", "-y"
        )
        assert code == 0, err
        assert exact.lookup("p", "llm") is None
        assert semantic.lookup("What is the capital of France?", "llm") is None
        assert client.mget(foreign) == [b"foreign"] * len(foreign)
        # Only foreign keys are left: none of them is counted.
        code, out, err = run("stats", "--redis-url", redis_url, "--prefix", unique_prefix)
        assert code == 0, err
        assert "keys:        0 matching" in out
    finally:
        client.delete(*foreign)
        exact.clear()
        semantic.clear()
        client.execute_command("FT.DROPINDEX", f"{unique_prefix}:sem:v1:ix")


@pytest.mark.redis
def test_clear_leaves_a_foreign_prefix_alone(redis_url: str, client: redis.Redis) -> None:
    # `cl:v1:s:{123}`-like keys of another program under a prefix llmemo is asked about.
    foreign = ["cl:v1:s:{123}", "cl:v1:x:1:2", "cl:v1:vp:{a}:b", "cl:v1:s"]
    try:
        for key in foreign:
            client.set(key, b"foreign")
        code, out, _ = run("clear", "--redis-url", redis_url, "--prefix", "cl", "-y")
        assert code == 0
        assert "deleted 0 keys" in out  # nothing of llmemo's there
        assert client.mget(foreign) == [b"foreign"] * len(foreign)
    finally:
        client.delete(*foreign)


SECRETS = ["s3cr3t", "p@ss", "hunter2"]
URLS = [
    "redis://user:s3cr3t@127.0.0.1:1/0",
    "redis://:s3cr3t@127.0.0.1:1/0",
    "redis://user:p@ss@127.0.0.1:1/0",  # an '@' in the password
    "redis://user:p%40ss@127.0.0.1:1/0",
    "redis://127.0.0.1:1/0?password=s3cr3t",
    "redis://127.0.0.1:1/0?db=0&password=hunter2&socket_timeout=1",
    "rediss://admin:hunter2@127.0.0.1:1",
    "unix:///tmp/llmemo-no-such.sock?password=s3cr3t",
    "unix://user:hunter2@/tmp/llmemo-no-such.sock",
    "redis://s3cr3t@127.0.0.1:1/0",  # a bare user-info: could be the password
]


@pytest.mark.parametrize("url", URLS)
def test_redact_url_hides_every_password(url: str) -> None:
    shown = redact_url(url)
    for secret in [*SECRETS, "p%40ss", "ss@"]:
        assert secret not in shown, shown
    assert "***" in shown
    assert shown.split(":", 1)[0] == url.split(":", 1)[0]  # still says which server


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("command", ["stats", "clear"])
def test_the_cli_never_prints_a_password(url: str, command: str) -> None:
    argv = [command, "--redis-url", url, "--prefix", "p", "--timeout", "0.5"]
    if command == "clear":
        argv.append("-y")
    code, out, err = run(*argv)
    assert code != 0
    for secret in [*SECRETS, "p%40ss"]:
        assert secret not in out + err, out + err


@pytest.mark.redis
def test_a_wrong_password_on_a_real_server_is_not_printed(redis_url: str) -> None:
    # The server has no password: the default user accepts any, an unknown user none.
    for url in (f"{redis_url}?password=hunter2", redis_url.replace("//", "//u:p@ss@", 1)):
        code, out, err = run("stats", "--redis-url", url, "--prefix", "p")
        assert code == (1 if "u:p@ss" in url else 0), err
        assert "hunter2" not in out + err and "p@ss" not in out + err, err
        if code:
            assert "authentication failed" in err


@pytest.mark.redis
@pytest.mark.redisearch
def test_clear_drop_index_drops_the_older_layout_index_but_never_a_foreign_one(
    redis_url: str, unique_prefix: str, client: redis.Redis
) -> None:
    # llmemo up to this change named a cache's index after its root; the keys are the same.
    schema = (
        "SCHEMA",
        "vec",
        "VECTOR",
        "HNSW",
        6,
        "TYPE",
        "FLOAT32",
        "DIM",
        32,
        "DISTANCE_METRIC",
        "COSINE",
        "partition",
        "TAG",
        "CASESENSITIVE",
    )
    root = unique_prefix
    foreign_root = f"{unique_prefix}-foreign"
    client.execute_command("FT.CREATE", root, "ON", "HASH", "PREFIX", 1, f"{root}:v1:s:", *schema)
    # Another tool's index named like a cache root, over its own prefix.
    client.execute_command(
        "FT.CREATE", foreign_root, "ON", "HASH", "PREFIX", 1, foreign_root, *schema
    )
    semantic = RedisSemanticCache(
        ConceptEmbeddings(), redis_url, prefix=root, name=root, vector_backend="redisearch"
    )
    try:
        semantic.update("What is the capital of France?", "llm", [Generation(text="Paris")])
        code, out, err = run("stats", "--redis-url", redis_url, "--prefix", root)
        assert code == 0, err
        code, out, err = run(
            "clear", "--redis-url", redis_url, "--prefix", root, "--drop-index", "-y"
        )
        assert code == 0, err
        assert f"older {root!r}" in out
        listed = {name.decode() for name in client.execute_command("FT._LIST")}
        assert root not in listed and f"{root}:v1:ix" not in listed
        code, out, err = run(
            "clear", "--redis-url", redis_url, "--prefix", foreign_root, "--drop-index", "-y"
        )
        assert code == 0  # nothing of llmemo's there: the foreign index is not llmemo's
        assert "deleted 0 keys" in out and "dropped" not in out
        assert foreign_root in {name.decode() for name in client.execute_command("FT._LIST")}
    finally:
        semantic.clear()
        for name in (root, f"{root}:v1:ix", foreign_root):
            try:
                client.execute_command("FT.DROPINDEX", name)
            except redis.ResponseError:
                pass
