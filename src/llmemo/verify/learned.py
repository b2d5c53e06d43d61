"""A learned hit verifier: the rules veto, a small logistic model judges the wording.

:class:`RulesVerifier` decides a pair in two stages. Hard checks (quantities, polarity,
entities, roles) find differences that change the answer whatever the wording; after
them, the pair is judged by how much of its wording aligns: every content word matched
("same content"), a minimal contrast with unmatched words ("details differ"), or a
reworded pair accepted only close in embedding space. That second stage is counting
rules with hand-set thresholds (``min_overlap``, ``short_prompt_words``,
``reworded_max_distance``, ...), and it is where most served-wrong and refused-right
pairs of the tuning sets fall.

:class:`LearnedVerifier` keeps the first stage and the "same content" verdict as they
are, and replaces the counting rules by a logistic regression over the same
measurements (:data:`llmemo.verify.rules.WORDING_STATS`) and the embedding distance.
The weights are a small JSON file shipped with llmemo (``learned_weights.json``),
trained by ``scripts/train_learned_verifier.py`` on the tuning pairs whose licence
allows derived artefacts (fow-cache's support-desk pairs, CC BY 4.0 © 2026 Mabon ap
Gwyn; GPTCache's mock paraphrases, MIT); the script reports cross-validated figures per
file. Scoring is a dot product of ~14 numbers in pure Python (a few microseconds on top
of the rules), so the verifier runs inline on the event loop like the rules.

Signatures are the rules' signatures: entries written with ``RulesVerifier`` are read
by ``LearnedVerifier`` and back, as long as their ``store_text``/``hash_key`` agree.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from llmemo.errors import ConfigurationError
from llmemo.verify.base import Candidate, Verdict
from llmemo.verify.rules import WORDING_STATS, RulesVerifier

__all__ = ["FEATURES", "LearnedVerifier", "features", "load_weights"]

#: Names of the model's inputs, in order (see :func:`features`).
FEATURES = (
    "distance",
    "distance_sq",
    "overlap",
    "unmatched",
    "unmatched_share",
    "substitution",
    "unmatched_max",
    "log_content_min",
    "log_content_max",
    "length_ratio",
    "minimal_contrast",
    "distance_x_overlap",
    "distance_x_minimal",
    "distance_x_unmatched",
    "rules_accept",
)

_WEIGHTS_FILE = "learned_weights.json"


def features(distance: float, stats: Sequence[float], rules_accept: bool) -> list[float]:
    """The model's inputs for a pair: its cosine distance and the rules' measurements.

    Args:
        distance: Cosine distance of the two prompts' embeddings.
        stats: :meth:`RulesVerifier.assess`'s measurements (:data:`WORDING_STATS`).
        rules_accept: The rules' own verdict on the wording.

    Raises:
        ValueError: ``stats`` has the wrong length.
    """
    if len(stats) != len(WORDING_STATS):
        raise ValueError(f"expected {len(WORDING_STATS)} wording stats, got {len(stats)}")
    overlap, un_a, un_b, content_a, content_b, words_a, words_b, minimal = stats
    unmatched = un_a + un_b
    content = max(1.0, content_a + content_b)
    d = max(0.0, distance)
    return [
        d,
        d * d,
        overlap,
        unmatched,
        unmatched / content,
        1.0 if un_a and un_b else 0.0,
        max(un_a, un_b),
        math.log1p(min(content_a, content_b)),
        math.log1p(max(content_a, content_b)),
        abs(math.log((words_a + 1.0) / (words_b + 1.0))),
        minimal,
        d * overlap,
        d * minimal,
        d * unmatched,
        1.0 if rules_accept else 0.0,
    ]


def load_weights(path: str | Path | None = None) -> dict[str, Any]:
    """Read a weights file (default: the one shipped with llmemo) and check its shape.

    Raises:
        ConfigurationError: the file is malformed or was made for other features.
        OSError: the file cannot be read.
    """
    if path is None:
        text = resources.files("llmemo.verify").joinpath(_WEIGHTS_FILE).read_text("utf-8")
        where = f"llmemo/verify/{_WEIGHTS_FILE}"
    else:
        text = Path(path).read_text("utf-8")
        where = str(path)
    try:
        data = json.loads(text)
        names = list(data["features"])
        mean = [float(x) for x in data["mean"]]
        scale = [float(x) for x in data["scale"]]
        coef = [float(x) for x in data["coef"]]
        float(data["intercept"])
        float(data["threshold"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(f"{where}: not a learned-verifier weights file ({exc})") from exc
    if names != list(FEATURES) or not (len(mean) == len(scale) == len(coef) == len(FEATURES)):
        raise ConfigurationError(f"{where}: weights are for other features ({names})")
    if any(s <= 0 for s in scale):
        raise ConfigurationError(f"{where}: scales must be positive")
    return dict(data)


class LearnedVerifier:
    """Rules for hard differences, a logistic model for the wording.

    A candidate is refused when the rules find a hard difference (quantities, polarity,
    entities, roles) or cannot read its signature; accepted when every content word
    aligns; otherwise accepted when the model's probability that one answer serves both
    is at least ``threshold``.

    Thread safety: as :class:`RulesVerifier` (the weights are read once, at
    construction, and never change). ``verify`` does no blocking work.
    """

    def __init__(
        self,
        *,
        name: str = "learned",
        rules: RulesVerifier | None = None,
        weights: str | Path | Mapping[str, Any] | None = None,
        threshold: float | None = None,
    ) -> None:
        """Load the weights (a small file read once; no model, no network).

        Args:
            name: Verifier name, reported in verdicts and used by composites.
            rules: The rules whose hard checks veto and whose measurements feed the
                model (default ``RulesVerifier()``; pass one with ``store_text=False``
                and a ``hash_key`` for signatures without prompt text).
            weights: A weights file or its parsed content (default: shipped with llmemo).
            threshold: Probability from which the wording is accepted (default: the
                one chosen by cross-validation, stored with the weights). Higher is
                stricter.

        Raises:
            ConfigurationError: bad weights or a threshold outside [0, 1].
            OSError: the weights file cannot be read.
        """
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"name must be a non-empty string; got {name!r}")
        data = (
            load_weights(weights) if weights is None or isinstance(weights, (str, Path)) else None
        )
        if data is None:
            data = dict(weights)  # type: ignore[arg-type]
            if list(data.get("features", ())) != list(FEATURES):
                raise ConfigurationError("weights are for other features")
        chosen = float(data["threshold"]) if threshold is None else threshold
        if not 0.0 <= chosen <= 1.0:
            raise ConfigurationError(f"threshold must be in [0, 1]; got {threshold!r}")
        self.name = name
        self.rules = rules if rules is not None else RulesVerifier()
        self.threshold = chosen
        self._mean = [float(x) for x in data["mean"]]
        self._scale = [float(x) for x in data["scale"]]
        self._coef = [float(x) for x in data["coef"]]
        self._intercept = float(data["intercept"])

    def __repr__(self) -> str:
        return f"LearnedVerifier(name={self.name!r}, threshold={self.threshold:g})"

    def signature(self, text: str) -> dict[str, Any]:
        """The rules' signature of ``text`` (see :meth:`RulesVerifier.signature`)."""
        return self.rules.signature(text)

    def probability(self, distance: float, stats: Sequence[float], rules_accept: bool) -> float:
        """The model's probability that one answer serves both prompts."""
        z = self._intercept
        x_all = features(distance, stats, rules_accept)
        for x, m, s, w in zip(x_all, self._mean, self._scale, self._coef, strict=True):
            z += w * (x - m) / s
        if z < -40:
            return 0.0
        return 1.0 / (1.0 + math.exp(-z))

    async def verify(
        self, text: str, signature: Mapping[str, Any] | None, candidate: Candidate
    ) -> Verdict:
        """Accept ``candidate`` unless the rules veto it or the model doubts the wording."""
        return self.decide(text, signature, candidate)

    def decide(
        self, text: str, signature: Mapping[str, Any] | None, candidate: Candidate
    ) -> Verdict:
        """The synchronous body of :meth:`verify` (used by evaluation loops)."""
        verdict, stats = self.rules.assess(text, signature, candidate)
        if stats is None:
            return Verdict(verdict.accepted, self.name, verdict.reason)
        p = self.probability(candidate.distance, stats, verdict.accepted)
        accepted = p >= self.threshold
        word = "accepted" if accepted else "refused"
        return Verdict(accepted, self.name, f"wording {word} by the model (p={p:.2f})")
