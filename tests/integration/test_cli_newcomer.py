"""The ``llmemo`` command as a newcomer meets it (issue 17): ``--version``, idempotent
``clear``, ``stats`` of an emptied cache, a cluster node without ``--cluster``, a wrong
password, ``eval``'s help, exit codes for bad input files and a missing matplotlib.

Against the session's real Redis (and a throwaway one with a password, started and
stopped here by pid); caches are filled through the real LangChain adapters.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from langchain_core.outputs import Generation

import llmemo
from cli_runner import run
from llmemo.langchain import RedisCache

from redis_server import RedisServer

TESTS = Path(__file__).resolve().parents[1]


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("llmemo: error: ")
    return lines[0]


def test_version() -> None:
    code, out, _ = run("--version")
    assert code == 0
    assert out.strip() == f"llmemo {llmemo.__version__}"


# -- clear and stats on an empty cache -------------------------------------------------------


@pytest.mark.redis
def test_clear_twice_and_stats_of_the_emptied_cache_exit_0(
    redis_url: str, unique_prefix: str
) -> None:
    cache = RedisCache(redis_url=redis_url, prefix=unique_prefix)
    try:
        cache.update("p", "llm", [Generation(text="x")])
    finally:
        cache.close()
    url = ("--redis-url", redis_url, "--prefix", unique_prefix)
    code, out, err = run("clear", *url, "--yes")
    assert (code, err) == (0, "")
    assert "deleted 1 keys" in out
    code, out, err = run("clear", *url, "--yes")
    assert (code, err) == (0, "")
    assert f"deleted 0 keys of cache {unique_prefix!r}" in out
    code, out, err = run("stats", *url)
    assert (code, err) == (0, "")
    assert "keys:        0 matching" in out
    assert "entries:     0" in out
    assert "check --prefix/--name" in out  # an empty cache and a mistyped name look alike


@pytest.mark.redis
def test_clear_on_a_terminal_does_not_ask_to_delete_nothing(
    redis_url: str, unique_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal(""))
    code, out, err = run("clear", "--redis-url", redis_url, "--prefix", unique_prefix)
    assert code == 0, err
    assert "[y/N]" not in err
    assert "deleted 0 keys" in out


@pytest.mark.redis
def test_clear_and_stats_agree_about_the_published_counters(
    redis_url: str, unique_prefix: str
) -> None:
    cache = RedisCache(redis_url=redis_url, prefix=unique_prefix, publish_stats=True)
    try:
        cache.update("p", "llm", [Generation(text="x")])
        assert cache.lookup("p", "llm") is not None
    finally:
        cache.close()
    client = redis.Redis.from_url(redis_url)
    stats_key = f"{unique_prefix}:v1:stats"
    try:
        assert client.exists(stats_key)
        url = ("--redis-url", redis_url, "--prefix", unique_prefix)
        code, out, err = run("stats", *url)
        assert code == 0, err
        assert "keys:        2 matching" in out  # the entry and the counters' hash
        assert "entries:     1" in out
        code, out, err = run("clear", *url, "--yes")
        assert code == 0, err
        assert "deleted 2 keys" in out  # what stats counted, clear deletes
        assert not client.exists(stats_key)
        code, out, err = run("stats", *url)
        assert code == 0, err
        assert "keys:        0 matching" in out
        assert "counters:    none published" in out
    finally:
        client.delete(stats_key)
        client.close()


# -- which server ------------------------------------------------------------------------------


@pytest.mark.cluster
@pytest.mark.parametrize("command", ["stats", "clear"])
def test_a_cluster_node_without_cluster_flag_is_named(
    command: str, redis_cluster_url: str, unique_prefix: str
) -> None:
    extra = ["--yes"] if command == "clear" else []
    code, out, err = run(
        command, "--redis-url", redis_cluster_url, "--prefix", unique_prefix, *extra
    )
    assert code == 2
    assert out == ""
    line = one_error_line(err)
    assert "is a node of a Redis Cluster" in line
    assert "--cluster" in line


@pytest.fixture(scope="module")
def password_server() -> Iterator[tuple[str, str]]:
    """A throwaway server that requires a password: ``(host:port, password)``."""
    server = RedisServer(modules=False).start()
    try:
        client = redis.Redis(host=server.host, port=server.port)
        client.config_set("requirepass", "s3cret-pw")
        client.close()
        yield f"{server.host}:{server.port}", "s3cret-pw"
    finally:
        server.stop()


@pytest.mark.parametrize("command", ["stats", "clear"])
@pytest.mark.parametrize("auth", [":wrong-pw@", ""])
def test_a_wrong_or_missing_password_says_authentication_failed(
    command: str, auth: str, password_server: tuple[str, str]
) -> None:
    address, password = password_server
    url = f"redis://{auth}{address}"
    extra = ["--yes"] if command == "clear" else []
    code, out, err = run(command, "--redis-url", url, "--prefix", "p", *extra)
    assert code == 1
    assert out == ""
    line = one_error_line(err)
    assert "authentication failed" in line
    assert "wrong-pw" not in line and password not in line
    # The right password works (and an empty cache is not an error).
    code, _, err = run(
        command, "--redis-url", f"redis://:{password}@{address}", "--prefix", "p", *extra
    )
    assert code == 0, err


# -- eval ----------------------------------------------------------------------------------------


def test_eval_help_shows_the_pair_format() -> None:
    code, out, _ = run("eval", "--help")
    assert code == 0
    assert '{"a": "cached prompt", "b": "new prompt", "same": true' in out
    assert "a_messages" in out
    assert "exit codes: 0 ok, 1 runtime error, 2 usage error" in out


@pytest.fixture
def pairs_file(tmp_path: Path) -> Path:
    path = tmp_path / "pairs.jsonl"
    rows = [
        {"a": "capital of France", "b": "capital of France please", "same": True},
        {"a": "capital of France", "b": "largest planet", "same": False},
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("content", [None, "not json\n"])
def test_eval_missing_and_malformed_files_have_one_exit_code(
    tmp_path: Path, content: str | None
) -> None:
    path = tmp_path / "pairs.jsonl"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    code, _, err = run("eval", str(path), "--no-plot", "--embeddings", "fakes:ConceptEmbeddings")
    assert code == 2
    assert str(path) in one_error_line(err)


def test_eval_without_matplotlib_skips_the_chart_with_a_note(
    pairs_file: Path, tmp_path: Path
) -> None:
    chart = tmp_path / "chart.png"
    code = (
        "import sys; sys.modules['matplotlib'] = None; "  # matplotlib is not importable
        "from llmemo.cli import main; "
        f"raise SystemExit(main(['eval', {str(pairs_file)!r}, '--plot', {str(chart)!r}, "
        "'--embeddings', 'fakes:ConceptEmbeddings', '--verifier', 'none']))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), _src()])}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "recall at false hits" in result.stdout  # the report is all there
    assert "chart skipped" in result.stderr
    assert "pip install matplotlib" in result.stderr
    assert "Traceback" not in result.stderr
    assert not chart.exists()


def _src() -> str:
    """The directory the llmemo under test is imported from (the worktree's src)."""
    return str(Path(llmemo.__file__).resolve().parents[1])


def test_the_demo_says_authentication_failed_too(password_server: tuple[str, str]) -> None:
    address, _ = password_server
    url = f"redis://:wrong-pw@{address}"
    code, out, err = run("demo", "--llm", "simulated", "--redis-url", url)
    assert code == 1
    assert "== 1." not in out
    line = one_error_line(err)
    assert "authentication failed at Redis redis://:***@" in line
    assert "wrong-pw" not in line


@pytest.mark.cluster
def test_the_demo_refuses_a_cluster_node_without_cluster_flag(redis_cluster_url: str) -> None:
    code, out, err = run("demo", "--llm", "simulated", "--redis-url", redis_cluster_url)
    assert code == 2
    assert "== 1." not in out
    assert "is a node of a Redis Cluster: pass --cluster" in one_error_line(err)
