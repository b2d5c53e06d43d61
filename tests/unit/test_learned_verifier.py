"""LearnedVerifier: the rules veto hard differences, shipped weights judge the wording.

Pairs are written for these tests (never taken from the tuning files).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmemo.errors import ConfigurationError
from llmemo.verify import Candidate, HitVerifier, LearnedVerifier, RulesVerifier
from llmemo.verify.learned import FEATURES, load_weights


def decide(verifier: LearnedVerifier, cached: str, new: str, distance: float) -> tuple[bool, str]:
    stored = json.loads(json.dumps(verifier.signature(cached)))
    verdict = verifier.decide(new, verifier.signature(new), Candidate("e", distance, stored))
    return verdict.accepted, verdict.reason


def test_shipped_weights_load_and_match_the_features() -> None:
    data = load_weights()
    assert data["features"] == list(FEATURES)
    assert 0.0 < data["threshold"] < 1.0
    verifier = LearnedVerifier()
    assert isinstance(verifier, HitVerifier)
    assert verifier.name == "learned"


@pytest.mark.parametrize(
    ("cached", "new"),
    [
        ("Can I park here?", "Can't I park here?"),
        ("Should I take ibuprofen for a headache?", "Should I avoid ibuprofen for a headache?"),
        ("How much is a ticket for 2 adults?", "How much is a ticket for 3 adults?"),
        ("Is Spotify included in the bundle?", "Is Netflix included in the bundle?"),
        ("How do I convert JPG to PNG?", "How do I convert PNG to JPG?"),
    ],
)
@pytest.mark.parametrize("distance", [0.01, 0.1])
def test_hard_differences_are_vetoed_by_the_rules(cached: str, new: str, distance: float) -> None:
    accepted, reason = decide(LearnedVerifier(), cached, new, distance)
    assert not accepted, reason
    assert "model" not in reason


def test_the_model_judges_wording_by_distance() -> None:
    verifier = LearnedVerifier()
    cached, new = "Where can I leave my bike?", "Is there somewhere to lock up bicycles?"
    accepted, reason = decide(verifier, cached, new, 0.08)
    assert accepted, reason
    assert "model" in reason
    accepted, reason = decide(verifier, cached, new, 0.6)
    assert not accepted, reason
    # The model's probability falls as the distance grows.
    rules = RulesVerifier()
    _, stats = rules.assess(new, rules.signature(new), Candidate("e", 0.1, rules.signature(cached)))
    assert stats is not None
    p = [verifier.probability(d, stats, False) for d in (0.05, 0.2, 0.4, 0.6)]
    assert p == sorted(p, reverse=True)


def test_identical_content_is_served_without_the_model() -> None:
    accepted, reason = decide(
        LearnedVerifier(), "How do I reset my password?", "how do I reset my password", 0.02
    )
    assert accepted
    assert reason == "same content"


def test_threshold_one_refuses_every_reworded_pair() -> None:
    verifier = LearnedVerifier(threshold=1.0)
    accepted, _ = decide(
        verifier, "Where can I leave my bike?", "Is there somewhere to lock up bicycles?", 0.01
    )
    assert not accepted


def test_bad_weights_and_thresholds_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="threshold"):
        LearnedVerifier(threshold=1.5)
    bad = tmp_path / "w.json"
    bad.write_text(json.dumps({"features": ["distance"], "mean": [0], "scale": [1]}))
    with pytest.raises(ConfigurationError, match=str(bad)):
        LearnedVerifier(weights=bad)
    good = load_weights()
    good["features"] = ["other"] * len(FEATURES)
    with pytest.raises(ConfigurationError, match="other features"):
        LearnedVerifier(weights=good)
