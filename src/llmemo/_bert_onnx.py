"""Build an ONNX graph of a BERT sentence encoder from its safetensors weights, without torch.

The graph computes what sentence-transformers computes for a ``Transformer -> Pooling(mean)
-> Normalize`` model: BERT (absolute positions, token type 0, erf GELU, post-norm layers),
the attention-masked mean of the last hidden states, then an L2 normalisation. Inputs are
``input_ids`` and ``attention_mask`` (int64, ``[batch, tokens]``); the output is
``sentence_embedding`` (float32, ``[batch, hidden]``, unit rows).

It uses ONNX Runtime's fused CPU operators (``com.microsoft`` ``Attention``,
``SkipLayerNormalization``, ``BiasGelu``) so that no graph optimiser is needed to get them.
Building needs the ``onnx`` and ``safetensors`` packages and takes a second or two; the
result is cached in a user cache directory (:func:`cached_model`) so that later
processes only load it. Pure functions apart from that cache; no import-time work.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmemo.errors import ConfigurationError

__all__ = ["BertSpec", "build_model_bytes", "cached_model", "default_cache_dir"]

#: Bumped whenever the graph built for the same weights changes (part of the cache key).
GRAPH_VERSION = 1


@dataclass(frozen=True)
class BertSpec:
    """What the graph and the tokenizer need to know about a model directory."""

    layers: int
    heads: int
    hidden: int
    eps: float
    max_tokens: int

    @classmethod
    def read(cls, model_dir: Path) -> BertSpec:
        """Read ``config.json`` (and the sentence-transformers configs) of ``model_dir``.

        Raises:
            ConfigurationError: the files are missing or describe a model this runtime does
                not build (not BERT, not mean pooling); use ``runtime="torch"`` for those.
        """
        try:
            config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"model_path has no readable config.json: {str(model_dir)!r} ({exc})"
            ) from exc
        if config.get("model_type") != "bert" or config.get("hidden_act", "gelu") != "gelu":
            raise ConfigurationError(
                f"the onnx runtime builds BERT models with GELU only; {str(model_dir)!r} has "
                f"model_type={config.get('model_type')!r}: use runtime='torch'"
            )
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise ConfigurationError("the onnx runtime needs absolute position embeddings")
        pooling = _read_json(model_dir / "1_Pooling" / "config.json")
        if pooling and not pooling.get("pooling_mode_mean_tokens", False):
            raise ConfigurationError(
                "the onnx runtime implements mean pooling only; use runtime='torch'"
            )
        st_config = _read_json(model_dir / "sentence_bert_config.json")
        max_tokens = int(
            st_config.get("max_seq_length") or config.get("max_position_embeddings", 512)
        )
        return cls(
            layers=int(config["num_hidden_layers"]),
            heads=int(config["num_attention_heads"]),
            hidden=int(config["hidden_size"]),
            eps=float(config.get("layer_norm_eps", 1e-12)),
            max_tokens=min(max_tokens, int(config.get("max_position_embeddings", 512))),
        )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read {str(path)!r}: {exc}") from exc
    return data if isinstance(data, dict) else {}


def build_model_bytes(model_dir: Path) -> bytes:
    """The serialized ONNX model of the BERT sentence encoder in ``model_dir``.

    Reads ``config.json`` and ``model.safetensors``; CPU-bound, about a second.

    Raises:
        ConfigurationError: see :meth:`BertSpec.read`, or the weights file is missing.
        ImportError: ``onnx`` or ``safetensors`` is not installed.
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    from safetensors.numpy import load_file

    spec = BertSpec.read(model_dir)
    weights_file = model_dir / "model.safetensors"
    if not weights_file.is_file():
        raise ConfigurationError(f"model_path has no model.safetensors: {str(model_dir)!r}")
    weights = load_file(str(weights_file))
    # Some exports prefix every name with the architecture ("bert.embeddings...").
    if "embeddings.word_embeddings.weight" not in weights:
        weights = {k.removeprefix("bert."): v for k, v in weights.items()}

    initializers: list[Any] = []
    nodes: list[Any] = []
    counter = iter(range(1_000_000))

    def const(name: str, array: Any) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def weight(name: str, key: str, *, transpose: bool = False) -> str:
        array = weights[key].astype(np.float32)
        return const(name, array.T if transpose else array)

    def node(op: str, inputs: list[str], domain: str | None = None, **attrs: Any) -> str:
        output = f"{op.lower()}_{next(counter)}"
        nodes.append(helper.make_node(op, inputs, [output], domain=domain, **attrs))
        return output

    ms = "com.microsoft"
    const("axis1", np.array([1], np.int64))
    const("axis2", np.array([2], np.int64))
    const("zero", np.array([0], np.int64))
    # Embeddings: token type is always 0, so its row is folded into the position table.
    emb = "embeddings."
    const("word_table", weights[emb + "word_embeddings.weight"].astype(np.float32))
    positions = (
        weights[emb + "position_embeddings.weight"]
        + weights[emb + "token_type_embeddings.weight"][0]
    )
    const("position_table", positions.astype(np.float32))
    tokens = node("Slice", [node("Shape", ["input_ids"]), "axis1", "axis2"])
    x = node(
        "Add",
        [
            node("Gather", ["word_table", "input_ids"]),
            node("Slice", ["position_table", "zero", tokens, "zero"]),
        ],
    )
    x = node(
        "LayerNormalization",
        [
            x,
            weight("emb_ln_g", emb + "LayerNorm.weight"),
            weight("emb_ln_b", emb + "LayerNorm.bias"),
        ],
        epsilon=spec.eps,
        axis=-1,
    )
    mask32 = node("Cast", ["attention_mask"], to=TensorProto.INT32)
    for i in range(spec.layers):
        p = f"encoder.layer.{i}."
        qkv_w = np.concatenate(
            [weights[p + f"attention.self.{k}.weight"].T for k in ("query", "key", "value")],
            axis=1,
        ).astype(np.float32)
        qkv_b = np.concatenate(
            [weights[p + f"attention.self.{k}.bias"] for k in ("query", "key", "value")]
        ).astype(np.float32)
        attn = node(
            "Attention",
            [x, const(f"l{i}_qkv_w", qkv_w), const(f"l{i}_qkv_b", qkv_b), mask32],
            domain=ms,
            num_heads=spec.heads,
        )
        attn = node(
            "MatMul",
            [attn, weight(f"l{i}_ao_w", p + "attention.output.dense.weight", transpose=True)],
        )
        x = node(
            "SkipLayerNormalization",
            [
                attn,
                x,
                weight(f"l{i}_ao_ln_g", p + "attention.output.LayerNorm.weight"),
                weight(f"l{i}_ao_ln_b", p + "attention.output.LayerNorm.bias"),
                weight(f"l{i}_ao_b", p + "attention.output.dense.bias"),
            ],
            domain=ms,
            epsilon=spec.eps,
        )
        ff = node(
            "MatMul", [x, weight(f"l{i}_in_w", p + "intermediate.dense.weight", transpose=True)]
        )
        ff = node("BiasGelu", [ff, weight(f"l{i}_in_b", p + "intermediate.dense.bias")], domain=ms)
        ff = node("MatMul", [ff, weight(f"l{i}_out_w", p + "output.dense.weight", transpose=True)])
        x = node(
            "SkipLayerNormalization",
            [
                ff,
                x,
                weight(f"l{i}_out_ln_g", p + "output.LayerNorm.weight"),
                weight(f"l{i}_out_ln_b", p + "output.LayerNorm.bias"),
                weight(f"l{i}_out_b", p + "output.dense.bias"),
            ],
            domain=ms,
            epsilon=spec.eps,
        )
    # Mean over the unmasked tokens, then L2 normalisation (sentence-transformers' eps).
    mask3 = node("Unsqueeze", [node("Cast", ["attention_mask"], to=TensorProto.FLOAT), "axis2"])
    summed = node("ReduceSum", [node("Mul", [x, mask3]), "axis1"], keepdims=0)
    count = node("ReduceSum", [mask3, "axis1"], keepdims=0)
    const("eps_count", np.array(1e-9, np.float32))
    const("eps_norm", np.array(1e-12, np.float32))
    mean = node("Div", [summed, node("Max", [count, "eps_count"])])
    norm = node("ReduceL2", [mean], axes=[1], keepdims=1)
    nodes.append(
        helper.make_node("Div", [mean, node("Max", [norm, "eps_norm"])], ["sentence_embedding"])
    )
    graph = helper.make_graph(
        nodes,
        "llmemo_sentence_encoder",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
        ],
        [
            helper.make_tensor_value_info(
                "sentence_embedding", TensorProto.FLOAT, ["batch", spec.hidden]
            )
        ],
        initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(ms, 1)]
    )
    model.ir_version = 8  # what opset 17 needs; loadable by every ONNX Runtime >= 1.12
    data: bytes = model.SerializeToString()
    return data


def default_cache_dir() -> Path:
    """``$LLMEMO_CACHE_DIR``, else ``$XDG_CACHE_HOME/llmemo``, else ``~/.cache/llmemo``.

    Read when called (never at import).
    """
    explicit = os.environ.get("LLMEMO_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "llmemo"


def cache_key(model_dir: Path) -> str:
    """A file name that changes with the weights file and the graph builder.

    The weights are identified by their path, size and modification time (hashing 90 MB
    would cost every cold start ~0.2 s); a reinstalled package gets a new key.
    """
    import hashlib

    weights = (model_dir / "model.safetensors").resolve()
    stat = weights.stat()
    ident = f"{GRAPH_VERSION}\0{weights}\0{stat.st_size}\0{stat.st_mtime_ns}"
    return f"sentence-encoder-{hashlib.sha256(ident.encode()).hexdigest()[:20]}.onnx"


def cached_model(model_dir: Path, cache_dir: Path | None, *, rebuild: bool = False) -> Path | bytes:
    """The ONNX model for ``model_dir``: its file in ``cache_dir`` (built and stored there
    the first time), or the model itself when the cache directory cannot be written (it
    is then built in memory on every load: slower, still correct).

    The write is atomic (a temporary file renamed into place), so concurrent first loads
    in several processes are safe. ``cache_dir=None`` means :func:`default_cache_dir`;
    ``rebuild=True`` replaces a cached file (one that failed to load).

    Raises:
        ConfigurationError: see :func:`build_model_bytes`.
        ImportError: building is needed and ``onnx``/``safetensors`` is missing.
    """
    if not (model_dir / "model.safetensors").is_file():
        raise ConfigurationError(f"model_path has no model.safetensors: {str(model_dir)!r}")
    directory = default_cache_dir() if cache_dir is None else cache_dir
    target = directory / cache_key(model_dir)
    if target.is_file() and not rebuild:
        return target
    data = build_model_bytes(model_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=directory, prefix=".building-", suffix=".onnx")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
    except OSError:
        return data
    return target
