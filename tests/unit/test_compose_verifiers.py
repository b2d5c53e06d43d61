"""AllOf and FirstDecides: order, short-circuit, abstention, namespaced signatures."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from llmemo.errors import ConfigurationError
from llmemo.verify import (
    ABSTAIN,
    AllOf,
    Candidate,
    FirstDecides,
    HitVerifier,
    RulesVerifier,
    Verdict,
)


class Recording:
    """A verifier with a fixed answer that records what it was given."""

    def __init__(self, name: str, answer: bool | None, *, raises: bool = False) -> None:
        self.name = name
        self.answer = answer  # None: abstain
        self.raises = raises
        self.calls: list[tuple[str, Mapping[str, Any] | None, Candidate]] = []

    def signature(self, text: str) -> dict[str, Any] | None:
        return None if self.name == "silent" else {"len": len(text), "who": self.name}

    async def verify(
        self, text: str, signature: Mapping[str, Any] | None, candidate: Candidate
    ) -> Verdict:
        self.calls.append((text, signature, candidate))
        if self.raises:
            raise RuntimeError("boom")
        if self.answer is None:
            return Verdict(False, self.name, f"{ABSTAIN} not sure")
        return Verdict(self.answer, self.name, "yes" if self.answer else "no")


def candidate_for(composite: Any, cached: str, distance: float = 0.1) -> Candidate:
    return Candidate("entry-1", distance, composite.signature(cached))


def test_composites_are_hit_verifiers() -> None:
    assert isinstance(AllOf(Recording("a", True)), HitVerifier)
    assert isinstance(FirstDecides(Recording("a", True)), HitVerifier)


def test_signature_is_namespaced_per_member() -> None:
    composite = AllOf(Recording("a", True), Recording("silent", True), Recording("b", True))
    assert composite.signature("hello") == {
        "a": {"len": 5, "who": "a"},
        "b": {"len": 5, "who": "b"},
    }
    assert AllOf(Recording("silent", True)).signature("x") is None


async def test_all_of_passes_each_member_its_own_parts() -> None:
    a, b = Recording("a", True), Recording("b", True)
    composite = AllOf(a, b)
    verdict = await composite.verify(
        "new!", composite.signature("new!"), candidate_for(composite, "old")
    )
    assert verdict.accepted
    assert verdict.verifier == "b"
    assert "a: yes" in verdict.reason and "b: yes" in verdict.reason
    text, signature, candidate = a.calls[0]
    assert text == "new!"
    assert signature == {"len": 4, "who": "a"}
    assert candidate.signature == {"len": 3, "who": "a"}
    assert candidate.entry_id == "entry-1" and candidate.distance == 0.1
    assert b.calls[0][2].signature == {"len": 3, "who": "b"}


async def test_all_of_stops_at_the_first_rejection() -> None:
    a, b, c = Recording("a", True), Recording("b", False), Recording("c", True)
    composite = AllOf(a, b, c)
    verdict = await composite.verify("x", None, candidate_for(composite, "y"))
    assert not verdict.accepted
    assert verdict.verifier == "b"
    assert len(c.calls) == 0


async def test_all_of_treats_a_raising_member_as_a_rejection() -> None:
    composite = AllOf(Recording("a", True, raises=True), Recording("b", True))
    verdict = await composite.verify("x", None, candidate_for(composite, "y"))
    assert not verdict.accepted
    assert verdict.verifier == "a"
    assert "boom" in verdict.reason


async def test_members_see_missing_signatures_as_none() -> None:
    a = Recording("a", True)
    composite = AllOf(a)
    await composite.verify("x", None, Candidate("e", 0.1, None))
    assert a.calls[0][1] is None
    assert a.calls[0][2].signature is None


async def test_first_decides_skips_abstentions() -> None:
    a, b, c = Recording("a", None), Recording("b", False), Recording("c", True)
    composite = FirstDecides(a, b, c)
    verdict = await composite.verify("x", None, candidate_for(composite, "y"))
    assert verdict.verifier == "b"
    assert not verdict.accepted
    assert len(c.calls) == 0


async def test_first_decides_rejects_when_all_abstain() -> None:
    composite = FirstDecides(Recording("a", None), Recording("b", None), name="chain")
    verdict = await composite.verify("x", None, candidate_for(composite, "y"))
    assert not verdict.accepted
    assert verdict.verifier == "chain"


async def test_first_decides_on_error() -> None:
    rejecting = FirstDecides(Recording("a", True, raises=True), Recording("b", True))
    verdict = await rejecting.verify("x", None, candidate_for(rejecting, "y"))
    assert not verdict.accepted and verdict.verifier == "a"
    skipping = FirstDecides(
        Recording("a", True, raises=True), Recording("b", True), on_error="abstain"
    )
    verdict = await skipping.verify("x", None, candidate_for(skipping, "y"))
    assert verdict.accepted and verdict.verifier == "b"


async def test_rules_inside_a_composite() -> None:
    composite = AllOf(RulesVerifier(), Recording("judge", True))
    cached = composite.signature("Is the pool open on Monday?")
    verdict = await composite.verify(
        "Is the pool open on Tuesday?",
        composite.signature("Is the pool open on Tuesday?"),
        Candidate("e", 0.05, cached),
    )
    assert not verdict.accepted and verdict.verifier == "rules"
    verdict = await composite.verify(
        "Is the pool open on a Monday?",
        composite.signature("Is the pool open on a Monday?"),
        Candidate("e", 0.05, cached),
    )
    assert verdict.accepted


@pytest.mark.parametrize("kind", [AllOf, FirstDecides])
def test_bad_members_are_configuration_errors(kind: Any) -> None:
    with pytest.raises(ConfigurationError):
        kind()
    with pytest.raises(ConfigurationError, match="unique"):
        kind(Recording("a", True), Recording("a", False))
    with pytest.raises(ConfigurationError):
        kind(object())


def test_first_decides_rejects_an_unknown_error_policy() -> None:
    with pytest.raises(ConfigurationError):
        FirstDecides(Recording("a", True), on_error="ignore")
