"""Composite verifiers: several :class:`~llmemo.verify.base.HitVerifier` as one.

* :class:`AllOf` — every verifier must accept; the first rejection decides (cheap
  verifiers first: ``AllOf(RulesVerifier(), CrossEncoderVerifier(...))`` only runs the
  model on candidates the rules let through).
* :class:`FirstDecides` — verifiers are asked in order and each may *abstain*; the first
  that does not abstain decides. A verifier abstains when it returns a verdict whose
  ``reason`` starts with :data:`ABSTAIN`, or when it raises (with ``on_error="abstain"``).
  If all abstain, the candidate is rejected.

The signature of a composite is a dict namespaced by member name: ``{"rules": {...},
"cross-encoder": {...}}`` (a member whose signature is ``None`` is left out), and each
member receives its own part back. Member names must therefore be unique.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llmemo.errors import ConfigurationError
from llmemo.verify.base import Candidate, HitVerifier, Verdict

__all__ = ["ABSTAIN", "AllOf", "FirstDecides"]

#: Prefix of a verdict reason that means "no opinion" to :class:`FirstDecides`.
ABSTAIN = "abstain:"


def _check_members(verifiers: Sequence[HitVerifier], kind: str) -> tuple[HitVerifier, ...]:
    members = tuple(verifiers)
    if not members:
        raise ConfigurationError(f"{kind} needs at least one verifier")
    for member in members:
        if not isinstance(member, HitVerifier):
            raise ConfigurationError(f"{kind}: {member!r} is not a HitVerifier")
    names = [m.name for m in members]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigurationError(f"{kind}: verifier names must be unique; repeated {duplicates}")
    return members


class _Composite:
    name: str
    verifiers: tuple[HitVerifier, ...]

    def signature(self, text: str) -> dict[str, Any] | None:
        """Each member's signature under its name (members returning ``None`` omitted)."""
        merged: dict[str, Any] = {}
        for member in self.verifiers:
            part = member.signature(text)
            if part is not None:
                merged[member.name] = part
        return merged or None

    def _parts(
        self, member: HitVerifier, signature: Mapping[str, Any] | None, candidate: Candidate
    ) -> tuple[Mapping[str, Any] | None, Candidate]:
        mine = signature.get(member.name) if signature is not None else None
        stored = candidate.signature.get(member.name) if candidate.signature else None
        return (
            mine if isinstance(mine, Mapping) else None,
            Candidate(
                candidate.entry_id,
                candidate.distance,
                stored if isinstance(stored, Mapping) else None,
            ),
        )

    def __repr__(self) -> str:
        members = ", ".join(repr(m) for m in self.verifiers)
        return f"{type(self).__name__}({members}, name={self.name!r})"


class AllOf(_Composite):
    """Accept only if every member accepts; members run in order, stopping at a rejection.

    A member that raises rejects (the cache's rule: raising is a miss, never a hit).
    The verdict of a rejection is the rejecting member's; an acceptance names the last
    member and joins the members' reasons.
    """

    def __init__(self, *verifiers: HitVerifier, name: str = "all-of") -> None:
        """Compose ``verifiers`` (at least one, unique names).

        Raises:
            ConfigurationError: no verifiers, a non-verifier, or repeated names.
        """
        self.verifiers = _check_members(verifiers, "AllOf")
        self.name = name

    async def verify(
        self, text: str, signature: Mapping[str, Any] | None, candidate: Candidate
    ) -> Verdict:
        """Run members in order; the first rejection (or exception) decides."""
        reasons: list[str] = []
        last = self.verifiers[-1].name
        for member in self.verifiers:
            mine, stored = self._parts(member, signature, candidate)
            try:
                verdict = await member.verify(text, mine, stored)
            except Exception as exc:  # raising is a miss for this candidate
                return Verdict(False, member.name, f"raised {type(exc).__name__}: {exc}")
            if not verdict.accepted:
                return verdict
            reasons.append(f"{member.name}: {verdict.reason}")
        return Verdict(True, last, "; ".join(reasons))


class FirstDecides(_Composite):
    """Ask members in order; the first that does not abstain decides.

    Useful to let a cheap verifier settle the clear cases and defer the rest, e.g. a
    judge that abstains when unsure, followed by a stricter one.
    """

    def __init__(
        self, *verifiers: HitVerifier, name: str = "first-decides", on_error: str = "reject"
    ) -> None:
        """Compose ``verifiers`` (at least one, unique names).

        Args:
            verifiers: Asked in this order.
            name: This composite's name.
            on_error: ``"reject"`` (a raising member rejects the candidate) or
                ``"abstain"`` (the next member is asked).

        Raises:
            ConfigurationError: no verifiers, a non-verifier, repeated names, or a bad
                ``on_error``.
        """
        if on_error not in {"reject", "abstain"}:
            raise ConfigurationError(f"on_error must be 'reject' or 'abstain'; got {on_error!r}")
        self.verifiers = _check_members(verifiers, "FirstDecides")
        self.name = name
        self.on_error = on_error

    async def verify(
        self, text: str, signature: Mapping[str, Any] | None, candidate: Candidate
    ) -> Verdict:
        """The first non-abstaining member's verdict; rejection if all abstain."""
        for member in self.verifiers:
            mine, stored = self._parts(member, signature, candidate)
            try:
                verdict = await member.verify(text, mine, stored)
            except Exception as exc:
                if self.on_error == "abstain":
                    continue
                return Verdict(False, member.name, f"raised {type(exc).__name__}: {exc}")
            if verdict.reason.startswith(ABSTAIN):
                continue
            return verdict
        return Verdict(False, self.name, "every verifier abstained")
