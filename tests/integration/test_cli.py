"""``llmemo stats`` / ``llmemo clear`` against the test Redis, and their error paths.

Caches are filled through the real LangChain adapters (deterministic fake embeddings for
the semantic one); every test works under its own ``unique_prefix``.
"""

from __future__ import annotations

import io
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from langchain_core.outputs import Generation

from cli_runner import run
from llmemo import cli
from llmemo.cli import Progress
from llmemo.langchain import RedisCache, RedisSemanticCache

from fakes import AsyncConceptEmbeddings


@dataclass
class Filled:
    """What :func:`filled` wrote: an exact and a semantic cache under one prefix, and an
    exact cache under a neighbouring prefix that no command here may touch."""

    url: str
    prefix: str
    name: str
    other: str
    client: redis.Redis

    def keys(self, pattern: str) -> set[bytes]:
        return set(self.client.scan_iter(match=pattern, count=1000))

    def index_exists(self, name: str) -> bool:
        return name.encode() in set(self.client.execute_command("FT._LIST"))


def _fill(url: str, prefix: str, other: str, name: str, *, backend: str) -> None:
    exact = RedisCache(redis_url=url, prefix=prefix)
    neighbour = RedisCache(redis_url=url, prefix=other)
    semantic = RedisSemanticCache(
        AsyncConceptEmbeddings(),
        redis_url=url,
        prefix=prefix,
        name=name,
        vector_backend=backend,  # type: ignore[arg-type]
    )
    try:
        for i in range(3):
            exact.update(f"prompt {i}", "llm", [Generation(text="x" * 200)])
            neighbour.update(f"prompt {i}", "llm", [Generation(text="y")])
        for question in ("capital of France", "largest planet"):
            semantic.update(question, "llm", [Generation(text="z")])
    finally:
        for cache in (exact, neighbour, semantic):
            cache.close()


@pytest.fixture
def filled(redis_url: str, unique_prefix: str) -> Iterator[Filled]:
    other = f"{unique_prefix}-other"
    _fill(redis_url, unique_prefix, other, "sem", backend="redisearch")
    client = redis.Redis.from_url(redis_url)
    try:
        yield Filled(redis_url, unique_prefix, "sem", other, client)
    finally:
        for pattern in (f"{unique_prefix}:*", f"{other}:*"):
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.unlink(*keys)
        for index in client.execute_command("FT._LIST"):
            if index.decode().startswith(unique_prefix):
                client.execute_command("FT.DROPINDEX", index)
        client.close()


class FakeTerminal(io.StringIO):
    """Standard input that claims to be a terminal and holds the user's answer."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- stats ---------------------------------------------------------------------------------


@pytest.mark.redisearch
def test_stats_of_an_exact_cache(filled: Filled) -> None:
    code, out, err = run("stats", "--redis-url", filled.url, "--prefix", filled.prefix)
    assert code == 0, err
    assert f"cache {filled.prefix!r} on {filled.url}" in out
    assert "entries:     3" in out
    assert "exact:                 3" in out
    assert "MEMORY USAGE summed over 3 keys" in out
    assert f"no RediSearch index {filled.prefix + ':v1:ix'!r}" in out
    assert "counters:    none published" in out  # publish_stats is off by default


@pytest.mark.redis
def test_stats_shows_the_counters_caches_publish(redis_url: str, unique_prefix: str) -> None:
    cache = RedisCache(redis_url=redis_url, prefix=unique_prefix, publish_stats=True)
    try:
        cache.update("p", "llm", [Generation(text="x")])
        assert cache.lookup("p", "llm") is not None
        cache.close()  # publishes what the interval held back
        code, out, err = run("stats", "--redis-url", redis_url, "--prefix", unique_prefix)
        assert code == 0, err
        assert "lookups:     1 hits, 0 misses (100% hit rate)" in out
        assert "writes: 1" in out
        assert "counters published" in out
    finally:
        code, _, err = run("clear", "--redis-url", redis_url, "--prefix", unique_prefix, "--yes")
        assert code == 0, err
        cache.close()


@pytest.mark.redisearch
def test_stats_of_a_semantic_cache(filled: Filled) -> None:
    root = f"{filled.prefix}:{filled.name}"
    code, out, err = run(
        "stats", "--redis-url", filled.url, "--prefix", filled.prefix, "--name", filled.name
    )
    assert code == 0, err
    assert f"cache {root!r}" in out
    assert "entries:     2" in out
    assert "semantic (RediSearch): 2" in out
    assert f"RediSearch {root + ':v1:ix'!r}, 2 documents" in out


@pytest.mark.vectorset
def test_stats_of_a_vector_set_cache(redis_url: str, unique_prefix: str) -> None:
    _fill(redis_url, unique_prefix, f"{unique_prefix}-other", "vs", backend="vectorset")
    try:
        code, out, err = run(
            "stats", "--redis-url", redis_url, "--prefix", unique_prefix, "--name", "vs"
        )
        assert code == 0, err
        assert "entries:     2" in out
        assert "semantic (vector sets): 2 in 1 vector sets" in out
        code, out, err = run(
            "clear", "--redis-url", redis_url, "--prefix", unique_prefix, "--name", "vs", "--yes"
        )
        assert code == 0, err
        assert "deleted 3 keys" in out  # two payloads and the partition's vector set
    finally:
        run("clear", "--redis-url", redis_url, "--prefix", unique_prefix, "--yes")
        run("clear", "--redis-url", redis_url, "--prefix", f"{unique_prefix}-other", "--yes")


@pytest.mark.redisearch
def test_stats_kind_exact_leaves_out_semantic_lines(filled: Filled) -> None:
    code, out, _ = run(
        "stats", "--redis-url", filled.url, "--prefix", filled.prefix, "--kind", "exact"
    )
    assert code == 0
    assert "(exact entries only)" in out
    assert "semantic" not in out.replace("exact entries only", "")


@pytest.mark.redis
def test_stats_samples_memory_and_reports_progress(
    redis_url: str, unique_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        with client.pipeline(transaction=False) as pipe:
            for i in range(2500):
                pipe.set(f"{unique_prefix}:v1:x:{'0' * 32}:{i:032x}", b"v" * 64)
            pipe.execute()
        monkeypatch.setattr(cli, "PROGRESS_AFTER_S", 0.0)
        monkeypatch.setattr(cli, "PROGRESS_EVERY_S", 0.0)
        code, out, err = run(
            "stats", "--redis-url", redis_url, "--prefix", unique_prefix, "--sample", "100"
        )
        assert code == 0, err
        assert "entries:     2,500" in out
        assert "estimated: MEMORY USAGE of 100 sampled keys of 2,500" in out
        assert f"scanning {unique_prefix}:v1:*:" in err
        assert "keys found" in err
    finally:
        keys = list(client.scan_iter(match=f"{unique_prefix}:*", count=1000))
        if keys:
            client.unlink(*keys)
        client.close()


def test_progress_stays_quiet_for_quick_work() -> None:
    now = [0.0]
    stream = io.StringIO()
    progress = Progress("scanning", stream=stream, after=1.0, every=1.0, clock=lambda: now[0])
    progress.update("10 keys")
    now[0] = 0.9
    progress.update("20 keys")
    progress.done("20 keys")
    assert stream.getvalue() == ""
    now[0] = 1.5
    progress.update("30 keys")
    now[0] = 2.0
    progress.update("40 keys")  # less than `every` after the last line
    now[0] = 2.6
    progress.update("50 keys")
    progress.done("60 keys")
    assert stream.getvalue().splitlines() == [
        "scanning: 30 keys ...",
        "scanning: 50 keys ...",
        "scanning: 60 keys (2.6 s)",
    ]


# -- clear ---------------------------------------------------------------------------------


@pytest.mark.redisearch
def test_clear_removes_only_the_named_semantic_cache(filled: Filled) -> None:
    exact_before = filled.keys(f"{filled.prefix}:v1:*")
    other_before = filled.keys(f"{filled.other}:*")
    root = f"{filled.prefix}:{filled.name}"
    code, out, err = run(
        "clear", "--redis-url", filled.url, "--prefix", filled.prefix, "--name", filled.name, "-y"
    )
    assert code == 0, err
    assert f"deleted 2 keys of cache {root!r}" in out
    assert filled.keys(f"{root}:*") == set()
    assert filled.keys(f"{filled.prefix}:v1:*") == exact_before
    assert filled.keys(f"{filled.other}:*") == other_before
    assert filled.index_exists(f"{root}:v1:ix")  # kept, empty, as after cache.clear()


@pytest.mark.redisearch
def test_clear_an_exact_cache_keeps_its_neighbours(filled: Filled) -> None:
    semantic_before = filled.keys(f"{filled.prefix}:{filled.name}:*")
    other_before = filled.keys(f"{filled.other}:*")
    code, out, err = run("clear", "--redis-url", filled.url, "--prefix", filled.prefix, "--yes")
    assert code == 0, err
    assert "deleted 3 keys" in out
    assert filled.keys(f"{filled.prefix}:v1:*") == set()
    assert filled.keys(f"{filled.prefix}:{filled.name}:*") == semantic_before
    assert filled.keys(f"{filled.other}:*") == other_before
    # The cache is empty now: a second clear succeeds and says so.
    code, out, err = run("clear", "--redis-url", filled.url, "--prefix", filled.prefix, "--yes")
    assert code == 0, err
    assert "deleted 0 keys" in out


@pytest.mark.redisearch
def test_clear_drop_index(filled: Filled) -> None:
    root = f"{filled.prefix}:{filled.name}"
    code, out, _ = run(
        "clear",
        *("--redis-url", filled.url, "--prefix", filled.prefix, "--name", filled.name),
        *("--yes", "--drop-index"),
    )
    assert code == 0
    assert f"dropped RediSearch index {root + ':v1:ix'!r}" in out
    assert not filled.index_exists(f"{root}:v1:ix")


@pytest.mark.redisearch
def test_clear_without_yes_and_without_a_terminal_refuses(
    filled: Filled, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))  # not a TTY
    before = filled.keys(f"{filled.prefix}:*")
    code, _, err = run("clear", "--redis-url", filled.url, "--prefix", filled.prefix)
    assert code == 2
    assert "pass --yes" in err
    assert filled.keys(f"{filled.prefix}:*") == before


@pytest.mark.redisearch
@pytest.mark.parametrize(("answer", "expected_code"), [("n\n", 1), ("\n", 1), ("yes\n", 0)])
def test_clear_asks_on_a_terminal(
    filled: Filled, monkeypatch: pytest.MonkeyPatch, answer: str, expected_code: int
) -> None:
    monkeypatch.setattr(sys, "stdin", FakeTerminal(answer))
    code, _, err = run("clear", "--redis-url", filled.url, "--prefix", filled.prefix)
    assert code == expected_code
    assert f"delete 3 entries (3 keys) of cache {filled.prefix!r}" in err
    remaining = filled.keys(f"{filled.prefix}:v1:*")
    if expected_code == 0:
        assert remaining == set()
    else:
        assert len(remaining) == 3
        assert "aborted: nothing deleted" in err


# -- errors --------------------------------------------------------------------------------


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("llmemo: error: ")
    return lines[0]


@pytest.mark.parametrize("command", ["stats", "clear"])
def test_unreachable_server(command: str, closed_port: int) -> None:
    url = f"redis://127.0.0.1:{closed_port}"
    extra = ["--yes"] if command == "clear" else []
    code, out, err = run(command, "--redis-url", url, "--prefix", "x", *extra)
    assert code == 1
    assert out == ""
    assert f"cannot reach Redis at {url}" in _one_error_line(err)


@pytest.mark.redis
@pytest.mark.parametrize("command", ["stats", "clear"])
def test_unknown_cache(command: str, redis_url: str, unique_prefix: str) -> None:
    # Redis cannot tell a name never used from an emptied cache: both are "no keys", exit 0,
    # with a hint to check the name.
    extra = ["--yes"] if command == "clear" else []
    code, out, err = run(command, "--redis-url", redis_url, "--name", unique_prefix, *extra)
    assert (code, err) == (0, "")
    assert f"cache 'llmcache:{unique_prefix}'" in out
    assert "no keys: an empty cache, or no cache of that name here (check --prefix/--name)" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--redis-url", "http://localhost:6379", "--prefix", "p"], "is not a Redis URL"),
        (["--redis-url", "redis://localhost:notaport", "--prefix", "p"], "is not a Redis URL"),
        (["--redis-url", "redis://u:secret@localhost:bad", "--prefix", "p"], "u:***@"),
        (["--prefix", "a*b"], "--prefix must be"),
        (["--prefix", "p", "--name", "v1"], "--name may not contain"),
        ([], "say which cache"),
    ],
)
def test_usage_errors(argv: list[str], message: str) -> None:
    code, _, err = run("stats", *argv)
    assert code == 2
    line = _one_error_line(err)
    assert message in line
    assert "secret" not in line


def test_argparse_errors_and_help() -> None:
    assert run("stats", "--sample", "0", "--prefix", "p")[0] == 2
    assert run("frobnicate")[0] == 2
    assert run()[0] == 2
    for argv in (["--help"], ["demo", "--help"], ["stats", "--help"], ["clear", "--help"]):
        code, out, _ = run(*argv)
        assert code == 0
        assert "exit codes: 0 ok, 1 runtime error, 2 usage error" in out


def test_console_entry_point_prints_no_traceback(closed_port: int) -> None:
    url = f"redis://127.0.0.1:{closed_port}"
    result = subprocess.run(
        [sys.executable, "-m", "llmemo", "stats", "--redis-url", url, "--prefix", "x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert f"cannot reach Redis at {url}" in _one_error_line(result.stderr)
