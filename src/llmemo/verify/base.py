"""Hit verification: deciding whether a near neighbour's answer serves the new prompt.

Embeddings blur exactly what decides an answer (a negation, a number, who does what to
whom), so a semantic cache that serves the nearest entry under a distance threshold
serves wrong answers. With a :class:`HitVerifier`, the vector query returns the ``k``
nearest candidates under the threshold and the verifier accepts or rejects each one; the
first accepted candidate is the hit.

Contract:

* :meth:`HitVerifier.signature` runs at write time on the embedded text and returns what
  the verifier needs later, as compact JSON data stored inside the entry (or ``None``).
  It also runs once per lookup on the new prompt's text. It is sync and must be cheap
  (no model calls); heavy work belongs in :meth:`HitVerifier.verify`.
* :meth:`HitVerifier.verify` is async and must not block the event loop (CPU-heavy or
  sync-only work goes to a worker thread). It receives the new text, its signature and
  the candidate (with the stored signature and the cosine distance) and returns a
  :class:`Verdict`. Raising is a miss for that candidate, never a hit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["Candidate", "HitVerifier", "Verdict"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """A verifier's decision about one candidate.

    Attributes:
        accepted: Whether the candidate's answer serves the new prompt.
        verifier: Name of the verifier that decided (the innermost, for composites).
        reason: Short human-readable why (e.g. ``"numbers differ: 50 vs 30"``).
    """

    accepted: bool
    verifier: str
    reason: str


@dataclass(frozen=True, slots=True)
class Candidate:
    """A cached entry proposed by the vector query.

    Attributes:
        entry_id: The entry's id.
        distance: Cosine distance between the new prompt's and the entry's embeddings.
        signature: What :meth:`HitVerifier.signature` returned when the entry was
            written (``None`` if the entry carries none, e.g. written without a verifier).
    """

    entry_id: str
    distance: float
    signature: Mapping[str, Any] | None


@runtime_checkable
class HitVerifier(Protocol):
    """Decides, per candidate, whether a cached answer serves a new prompt."""

    name: str

    def signature(self, text: str) -> dict[str, Any] | None:
        """Return compact JSON data describing ``text`` (stored with entries), or ``None``."""
        ...

    async def verify(
        self, text: str, signature: Mapping[str, Any] | None, candidate: Candidate
    ) -> Verdict:
        """Accept or reject ``candidate`` for the new prompt ``text`` (with ``signature``)."""
        ...
