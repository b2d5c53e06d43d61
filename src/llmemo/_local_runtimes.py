"""The two runtimes of :class:`~llmemo.local.LocalEmbeddings`: ONNX Runtime and torch.

Each is a blocking ``encode(texts) -> float32 array [len(texts), dimension]`` of unit rows,
loaded by ``load()``. Neither is safe to call from two threads at once: the caller
(``LocalEmbeddings``) serialises calls. No import-time work: onnxruntime, tokenizers and
torch load in ``load()``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmemo.errors import ConfigurationError, MissingDependencyError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["OnnxEncoder", "TorchEncoder", "default_threads", "usable_cpus"]


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity set, capped by a cgroup v2 CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def default_threads() -> int:
    """Intra-op threads of one forward pass by default: half the usable CPUs, 1 to 4.

    Why half: the model runs beside the application (and, on a shared machine, beside
    other processes); a pass that wants every core is slowed many times over as soon as
    anything else runs (thread oversubscription), while concurrent requests are batched
    into one pass anyway. On 2 CPUs this is 1.
    """
    return max(1, min(4, usable_cpus() // 2))


def _missing(what: str, hint: str, exc: ImportError) -> MissingDependencyError:
    return MissingDependencyError(f"{what} is not importable ({exc}); {hint}")


class OnnxEncoder:
    """BERT sentence encoder on ONNX Runtime with the Hugging Face ``tokenizers`` package.

    The graph is built from the model directory's ``model.safetensors`` once and cached
    (see :mod:`llmemo._bert_onnx`); tokenisation follows the directory's
    ``tokenizer.json``, truncated at the model's ``max_seq_length``.
    """

    def __init__(
        self, model_dir: Path, *, threads: int, cache_dir: Path | None, batch_size: int, hint: str
    ) -> None:
        self.model_dir = model_dir
        self.threads = threads
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self._hint = hint
        self._session: Any = None
        self._tokenizer: Any = None

    def load(self) -> None:
        """Import the runtime, build or read the cached graph, start a session (blocking).

        Raises:
            MissingDependencyError: onnxruntime, tokenizers, onnx or safetensors is missing.
            ConfigurationError: the directory is not a model this runtime can build.
        """
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise _missing("onnxruntime/tokenizers", self._hint, exc) from exc
        from llmemo._bert_onnx import BertSpec, cached_model

        if not self.model_dir.is_dir():
            raise ConfigurationError(f"model_path is not a directory: {str(self.model_dir)!r}")
        spec = BertSpec.read(self.model_dir)
        tokenizer_file = self.model_dir / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise ConfigurationError(f"model_path has no tokenizer.json: {str(self.model_dir)!r}")
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=spec.max_tokens)
        try:
            model = cached_model(self.model_dir, self.cache_dir)
        except ImportError as exc:
            raise _missing("onnx/safetensors (to build the model graph)", self._hint, exc) from exc
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        # Idle pool threads spinning for work steal CPU from everything else on a loaded
        # machine; waking them costs microseconds against a pass of milliseconds.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = self._start(onnxruntime, model, options)
        except Exception:
            if not isinstance(model, Path):
                raise
            # A cached file that does not load (truncated by a full disk, written by a
            # broken build) is rebuilt once from the weights.
            model = cached_model(self.model_dir, self.cache_dir, rebuild=True)
            self._session = self._start(onnxruntime, model, options)
        self._tokenizer = tokenizer

    @staticmethod
    def _start(onnxruntime: Any, model: Path | bytes, options: Any) -> Any:
        return onnxruntime.InferenceSession(
            str(model) if isinstance(model, Path) else model,
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """Unit vectors for ``texts`` (``load()`` first), in order; blocking."""
        import numpy as np

        encodings = [self._tokenizer.encode(text) for text in texts]
        lengths = [len(e.ids) for e in encodings]
        out = np.empty((len(texts), 0), np.float32)
        # Padded batches cost batch x longest: group texts of similar length.
        for chunk in _chunks_by_length(lengths, self.batch_size):
            width = max(lengths[i] for i in chunk)
            ids = np.zeros((len(chunk), width), np.int64)
            mask = np.zeros((len(chunk), width), np.int64)
            for row, i in enumerate(chunk):
                ids[row, : lengths[i]] = encodings[i].ids
                mask[row, : lengths[i]] = 1
            (vectors,) = self._session.run(None, {"input_ids": ids, "attention_mask": mask})
            if out.shape[1] == 0:
                out = np.empty((len(texts), vectors.shape[1]), np.float32)
            out[chunk] = vectors
        return out


def _chunks_by_length(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indices grouped by ascending length, at most ``batch_size`` each, so that padding
    adds at most ~10 % to a group's tokens (a padded pass costs its size times its
    longest text, and one pass over many rows saves little arithmetic per row)."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    chunks: list[list[int]] = []
    tokens = 0
    for i in order:
        if (
            not chunks
            or len(chunks[-1]) >= batch_size
            or lengths[i] * (len(chunks[-1]) + 1) > 1.1 * (tokens + lengths[i]) + 2
        ):
            chunks.append([])
            tokens = 0
        chunks[-1].append(i)
        tokens += lengths[i]
    return chunks


class TorchEncoder:
    """The same model through sentence-transformers and torch (the ``local-torch`` extra).

    ``threads`` (if not ``None``) is applied with ``torch.set_num_threads``, which is
    process-wide: it changes every torch model of the process.
    """

    def __init__(
        self, model_dir: Path, *, device: str, threads: int | None, batch_size: int, hint: str
    ) -> None:
        self.model_dir = model_dir
        self.device = device
        self.threads = threads
        self.batch_size = batch_size
        self._hint = hint
        self._model: Any = None

    def load(self) -> None:
        """Import torch and sentence-transformers and load the model (seconds; blocking).

        Raises:
            MissingDependencyError: sentence-transformers (with torch) is missing.
            ConfigurationError: the directory does not exist.
        """
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise _missing("sentence-transformers (with torch)", self._hint, exc) from exc
        if not self.model_dir.is_dir():
            raise ConfigurationError(f"model_path is not a directory: {str(self.model_dir)!r}")
        if self.threads is not None:
            import torch

            torch.set_num_threads(self.threads)
        # local_files_only: a path that is not a model directory must fail here, never be
        # taken for a hub model id and downloaded.
        self._model = SentenceTransformer(
            str(self.model_dir), device=self.device, local_files_only=True
        )

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """Unit vectors for ``texts`` (``load()`` first), in order; blocking."""
        array: npt.NDArray[np.float32] = self._model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return array
