"""A hit verifier around a sentence-transformers ``CrossEncoder`` the user supplies.

A cross-encoder reads both prompts together and scores how well they match, which
catches far more than a distance between two separate embeddings; it costs one model
call per candidate. llmemo ships no such model (none is installable offline here): pass
any loaded ``sentence_transformers.CrossEncoder`` (a paraphrase/duplicate-question or
STS model), or any object with the same ``predict(pairs) -> scores`` method.

The verifier needs the cached prompt's text, so its signature stores it: ``{"t": text}``.
Prediction runs in an anyio worker thread (never on the event loop), one call at a time
per verifier, since model objects are not generally safe to share between threads.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from llmemo.errors import ConfigurationError
from llmemo.verify.base import Candidate, Verdict

__all__ = ["CrossEncoderLike", "CrossEncoderVerifier"]


@runtime_checkable
class CrossEncoderLike(Protocol):
    """What is used of a sentence-transformers ``CrossEncoder``."""

    def predict(self, sentences: Any, *args: Any, **kwargs: Any) -> Any:
        """Return one score per ``(text_a, text_b)`` pair."""
        ...


def _to_float(score: Any) -> float:
    # Scores come as numpy scalars, 1-element arrays, torch tensors or floats; a
    # multi-class output (e.g. NLI logits) must be reduced by the caller.
    if hasattr(score, "tolist"):
        score = score.tolist()
    while isinstance(score, list) and len(score) == 1:
        score = score[0]
    if isinstance(score, list):
        raise ConfigurationError(
            "the cross-encoder returned several scores per pair; pass score_index= to pick one"
        )
    return float(score)


class CrossEncoderVerifier:
    """Accept a candidate when a cross-encoder scores the pair at or above ``threshold``.

    Thread and loop affinity: :meth:`verify` awaits ``anyio.to_thread.run_sync``; the model
    is called from worker threads, one call at a time per verifier (a lock serializes
    them). :meth:`signature` is cheap (it stores the text).
    """

    def __init__(
        self,
        model: CrossEncoderLike,
        *,
        threshold: float = 0.5,
        name: str = "cross-encoder",
        score_index: int | None = None,
        apply_sigmoid: bool = False,
        symmetric: bool = False,
    ) -> None:
        """Wrap ``model``; does no I/O and calls nothing.

        Args:
            model: A loaded ``CrossEncoder`` (or anything with ``predict``).
            threshold: Lowest score accepted (in the model's scale, after
                ``apply_sigmoid``).
            name: Verifier name (key of its signature inside composites).
            score_index: For models returning several scores per pair (NLI), which one
                to use (e.g. the "entailment" column).
            apply_sigmoid: Map raw logits to (0, 1) before comparing.
            symmetric: Score both orders and use the lower score (some models are
                asymmetric; costs a second pair in the same call).

        Raises:
            ConfigurationError: ``model`` has no ``predict``, or a bad threshold.
        """
        if not isinstance(model, CrossEncoderLike):
            raise ConfigurationError(f"model must have a predict() method; got {model!r}")
        if not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
            raise ConfigurationError(f"threshold must be a finite number; got {threshold!r}")
        self.model = model
        self.threshold = float(threshold)
        self.name = name
        self.score_index = score_index
        self.apply_sigmoid = apply_sigmoid
        self.symmetric = symmetric
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CrossEncoderVerifier(threshold={self.threshold}, name={self.name!r})"

    def signature(self, text: str) -> dict[str, Any]:
        """``{"t": text}``: the cross-encoder needs the cached prompt's text."""
        return {"t": text}

    def score(self, text_a: str, text_b: str) -> float:
        """The pair's score (blocking; runs the model in the calling thread)."""
        pairs: Sequence[tuple[str, str]] = [(text_a, text_b)]
        if self.symmetric:
            pairs = [(text_a, text_b), (text_b, text_a)]
        with self._lock:
            raw = self.model.predict(list(pairs))
        values = list(raw.tolist() if hasattr(raw, "tolist") else raw)
        scores = []
        for value in values:
            if self.score_index is not None:
                if hasattr(value, "tolist"):
                    value = value.tolist()
                value = value[self.score_index]
            number = _to_float(value)
            if self.apply_sigmoid:
                number = 1.0 / (1.0 + math.exp(-number))
            scores.append(number)
        if not scores:
            raise ConfigurationError("the cross-encoder returned no score")
        return min(scores)

    async def verify(
        self, text: str, signature: Mapping[str, Any] | None, candidate: Candidate
    ) -> Verdict:
        """Score (cached text, new text) in a worker thread; accept at or above threshold.

        A candidate stored without text (no signature of this verifier) is rejected.
        """
        import anyio.to_thread

        stored = candidate.signature
        cached = stored.get("t") if stored is not None else None
        if not isinstance(cached, str):
            return Verdict(False, self.name, "entry has no stored text")
        value = await anyio.to_thread.run_sync(self.score, cached, text)
        if value >= self.threshold:
            return Verdict(True, self.name, f"score {value:.3f} >= {self.threshold:g}")
        return Verdict(False, self.name, f"score {value:.3f} < {self.threshold:g}")
