"""``llmemo demo``: the story runs end to end and its output says what happened.

The demo runs in-process (``run_demo``) with the real all-MiniLM-L6-v2 model, loaded once
for this module, and a simulated model latency of 10 ms; once as ``python -m llmemo demo``.
On Redis, the server's keys and indexes are compared before and after the run.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
import sys
from typing import Any

import pytest
import redis
from langchain_core.embeddings import Embeddings

from llmemo import demo
from llmemo.cli import main
from llmemo.demo import DemoOptions, make_chat_model, run_demo, simulated_answer
from llmemo.errors import ConfigurationError, MissingDependencyError
from llmemo.local import LocalEmbeddings

from redis_server import RedisServer

SERVED = "served"
MODEL = "model"

# (question, how it is answered), in the order the demo asks.
EXPECTED_CALLS = [
    (demo.FRANCE, MODEL),  # 1. exact
    (demo.FRANCE, SERVED),
    (demo.FRANCE, MODEL),  # 2. semantic (new cache)
    (demo.FRANCE_PARAPHRASE, SERVED),
    (demo.OTHER_QUESTION, MODEL),
    (demo.TTL_QUESTION, MODEL),  # 3. TTL
    (demo.TTL_QUESTION, SERVED),
    (demo.TTL_QUESTION, MODEL),  # after expiry
    (demo.PLANET, MODEL),  # 4. custom semantic cache
    (demo.PLANET_PARAPHRASE, SERVED),
]


@pytest.fixture(scope="session")
def demo_embeddings(local_embeddings: LocalEmbeddings) -> LocalEmbeddings:
    return local_embeddings


def calls(output: str) -> list[tuple[str, str, str]]:
    """``(question, "served" | "model", line)`` for every call line of the output."""
    found = []
    for line in output.splitlines():
        text = line.strip()
        if text.startswith(demo.SERVED):
            how = SERVED
        elif text.startswith(demo.MODEL_CALL):
            how = MODEL
        else:
            continue
        question = next(q for q, _ in EXPECTED_CALLS if repr(q) in text)
        found.append((question, how, text))
    return found


def check_story(output: str) -> None:
    found = calls(output)
    assert [(q, how) for q, how, _ in found] == EXPECTED_CALLS, output
    lines = [line for _, _, line in found]
    assert "(exact match)" in lines[1]
    assert "semantic match, cosine distance 0.0" in lines[3]  # France pair: ~0.08
    assert "above threshold 0.2" in lines[4]
    assert "(exact match; before expiry)" in lines[6]
    assert "after expiry" in lines[7]
    assert "semantic match, cosine distance 0.0" in lines[9]  # planet pair: ~0.055
    assert "speed-up:" in output
    assert "entry gone after expiry" in output
    assert "SIMULATED" in output
    assert "Summary: 10 questions, 6 simulated model calls, 4 served from cache" in output


def options(**overrides: Any) -> DemoOptions:
    values: dict[str, Any] = {"latency": 0.01, "ttl": 0.5, "llm": "simulated"}
    values.update(overrides)
    return DemoOptions(**values)


@pytest.mark.model
async def test_demo_in_memory(demo_embeddings: LocalEmbeddings) -> None:
    out = io.StringIO()
    await run_demo(options(), embeddings=demo_embeddings, out=out)
    output = out.getvalue()
    check_story(output)
    assert "caches in process memory" in output
    assert "cleared 4 caches (process memory)" in output


def _server_state(url: str) -> tuple[set[bytes], set[bytes]]:
    client = redis.Redis.from_url(url)
    try:
        keys = set(client.scan_iter(count=1000))
        try:
            indexes = set(client.execute_command("FT._LIST"))
        except redis.ResponseError:
            indexes = set()
        return keys, indexes
    finally:
        client.close()


@pytest.mark.model
@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("redisearch", marks=pytest.mark.redisearch),
        pytest.param("vectorset", marks=pytest.mark.vectorset),
    ],
)
async def test_demo_on_redis_leaves_nothing_behind(
    backend: str, redis_url: str, demo_embeddings: LocalEmbeddings
) -> None:
    keys_before, indexes_before = _server_state(redis_url)
    out = io.StringIO()
    await run_demo(
        options(redis_url=redis_url, vector_backend=backend),
        embeddings=demo_embeddings,
        out=out,
    )
    output = out.getvalue()
    check_story(output)
    assert f"vector backend: {backend}" in output
    assert "after the demo: 0" in output
    keys_after, indexes_after = _server_state(redis_url)
    # Keys of other tests may expire meanwhile; the demo must not have added any.
    assert keys_after <= keys_before
    assert indexes_after == indexes_before
    if backend == "redisearch":
        assert "dropped RediSearch index(es)" in output


@pytest.mark.model
async def test_a_strict_threshold_refuses_the_paraphrase(demo_embeddings: LocalEmbeddings) -> None:
    out = io.StringIO()
    await run_demo(options(distance_threshold=0.01), embeddings=demo_embeddings, out=out)
    paraphrase = [how for q, how, _ in calls(out.getvalue()) if q == demo.FRANCE_PARAPHRASE]
    assert paraphrase == [MODEL]


@pytest.mark.model
@pytest.mark.slow
def test_python_dash_m_llmemo_demo() -> None:
    env = {**os.environ}
    env.pop("OPENAI_API_KEY", None)
    result = subprocess.run(
        [sys.executable, "-m", "llmemo", "demo", "--latency", "0.01", "--ttl", "0.5"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    check_story(result.stdout)
    assert "loading the embedding model all-MiniLM-L6-v2" in result.stdout
    assert "embedding model ready in" in result.stdout
    # Third-party progress bars (transformers' "Loading weights", tqdm) stay out of it.
    assert "Loading weights" not in result.stderr, result.stderr
    assert "it/s]" not in result.stderr, result.stderr


# -- without the embedding model -----------------------------------------------------------


def test_unreachable_redis_is_one_line_and_exit_1(
    closed_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["demo", "--llm", "simulated", "--redis-url", f"redis://127.0.0.1:{closed_port}"])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("llmemo: error: cannot reach Redis at redis://127.0.0.1:")


@pytest.mark.parametrize(
    "argv",
    [
        ["--distance-threshold", "2.5"],
        ["--ttl", "0"],
        ["--latency", "-1"],
        ["--redis-url", "http://example.invalid"],
        ["--vector-backend", "faiss"],
    ],
)
def test_bad_options_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--llm", "simulated", *argv]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err


def test_openai_is_used_only_when_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    _, description, simulated = make_chat_model(options(llm="auto"))
    assert simulated and description.startswith("SIMULATED")
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        make_chat_model(options(llm="openai"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    monkeypatch.setitem(sys.modules, "langchain_openai", None)  # not installed
    _, _, simulated = make_chat_model(options(llm="auto"))
    assert simulated
    with pytest.raises(MissingDependencyError, match="langchain-openai"):
        make_chat_model(options(llm="openai"))


async def test_simulated_model_answers_by_topic_after_its_latency() -> None:
    model, _, _ = make_chat_model(options(latency=0.0))
    assert (await model.ainvoke(demo.FRANCE_PARAPHRASE)).content == simulated_answer(demo.FRANCE)
    assert "Berlin" in str((await model.ainvoke(demo.OTHER_QUESTION)).content)
    assert "Jupiter" in str(model.invoke(demo.PLANET_PARAPHRASE).content)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- timings and warm-up ----------------------------------------------------------------------

PROGRESS_BAR = "\rLoading weights: 100%|##########| 103/103 [00:00<00:00, 11313.10it/s]"


class SlowEmbeddings(Embeddings):
    """The real model behind a fixed extra delay per embedding call, with a warm-up that
    draws a progress bar on stderr as transformers does (and prints one real warning)."""

    def __init__(self, inner: LocalEmbeddings, delay: float) -> None:
        self.inner = inner
        self.delay = delay
        self.warm_ups = 0

    def warm_up(self) -> None:
        self.warm_ups += 1
        self.inner.warm_up()
        sys.stderr.write(PROGRESS_BAR)
        sys.stderr.write("\n")
        sys.stderr.write("a warning that is not a progress bar\n")

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        await asyncio.sleep(self.delay)
        return await self.inner.aembed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        await asyncio.sleep(self.delay)
        return await self.inner.aembed_query(text)


@pytest.mark.model
async def test_demo_warms_up_first_and_keeps_embedding_out_of_model_time(
    demo_embeddings: LocalEmbeddings, capsys: pytest.CaptureFixture[str]
) -> None:
    delay, latency = 0.4, 0.1
    embeddings = SlowEmbeddings(demo_embeddings, delay)
    out = io.StringIO()
    await run_demo(options(latency=latency), embeddings=embeddings, out=out)
    output = out.getvalue()
    check_story(output)
    # Warmed up once, before the story.
    assert embeddings.warm_ups == 1
    assert output.index("embedding model ready in") < output.index("== 1. Exact cache")
    # A semantic hit says how long its embedding and its lookup took, apart.
    semantic_hits = [line for _, how, line in calls(output) if "semantic match" in line]
    assert len(semantic_hits) == 2
    for line in semantic_hits:
        match = re.search(r"embedding ([\d,.]+) ms, lookup ([\d,.]+) ms", line)
        assert match, line
        assert float(match.group(1).replace(",", "")) >= delay * 1000
    # Time saved counts the model's time only: with embedding mixed in, each of the 4
    # answers served would count at least ~latency + delay/2.
    saved = re.search(r"model time saved: about ([\d.]+) s", output)
    assert saved, output
    assert float(saved.group(1)) / 4 < latency + delay / 2
    assert "embedding excluded" in output
    # The progress bar of the warm-up is gone; other output of it is not.
    err = capsys.readouterr().err
    assert "Loading weights" not in err and "it/s]" not in err
    assert "a warning that is not a progress bar" in err


# -- a server without the vector search asked for ----------------------------------------------


@pytest.fixture(scope="module")
def plain_redis_url() -> Any:
    """A throwaway Redis 8 without modules: vector sets, no RediSearch (stopped by pid)."""
    server = RedisServer(modules=False).start()
    try:
        yield server.url
    finally:
        server.stop()


def test_redisearch_on_a_server_without_it_exits_1_before_the_story(
    plain_redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["demo", "--llm", "simulated", "--redis-url", plain_redis_url]
    code = main([*argv, "--vector-backend", "redisearch"])
    captured = capsys.readouterr()
    assert code == 1
    assert "== 1." not in captured.out  # no story told on a server that cannot run it
    err = captured.err.strip()
    assert len(err.splitlines()) == 1, err
    assert "RediSearch" in err and "--vector-backend" in err
