"""What every cache returns and counts: :class:`CacheHit` and :class:`CacheStats`."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from llmemo.verify.base import Verdict

__all__ = ["CacheHit", "CacheStats", "check_key_inputs"]


@dataclass(frozen=True, slots=True)
class CacheHit:
    """A value served from a cache, with how it matched.

    Attributes:
        value: The cached value (a ``list`` of LangChain generations for LangChain
            entries).
        kind: ``"exact"`` (same prompt) or ``"semantic"`` (a prompt within the distance
            threshold).
        distance: Cosine distance between the prompts' embeddings (``0.0`` for exact).
        entry_id: Id of the entry that served the hit.
        age: Seconds since the entry was written (by the writer's wall clock).
        verdict: The hit verifier's decision that let a semantic hit through (``None``
            for exact hits and caches without a verifier).
    """

    value: Any
    kind: Literal["exact", "semantic"]
    distance: float
    entry_id: str
    age: float
    verdict: Verdict | None = None


@dataclass(slots=True)
class CacheStats:
    """Counters of one cache object (since it was created), safe to read at any time.

    Attributes:
        exact_hits: Lookups served by an exact match.
        semantic_hits: Lookups served by a semantic match.
        misses: Lookups that found nothing usable.
        writes: Entries written.
        decode_errors: Stored entries that could not be decoded (each also a miss or a
            skipped candidate).
        embeddings: Texts sent to the embedder (memoised repeats not counted).
        verifier_accepts: Semantic candidates a hit verifier accepted.
        verifier_rejections: Semantic candidates a hit verifier rejected.
        verifier_errors: Verifier calls that raised (each counted as a rejection).
    """

    exact_hits: int = 0
    semantic_hits: int = 0
    misses: int = 0
    writes: int = 0
    decode_errors: int = 0
    embeddings: int = 0
    verifier_accepts: int = 0
    verifier_rejections: int = 0
    verifier_errors: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, counter: str, amount: int = 1) -> None:
        """Increase one counter (thread-safe)."""
        with self._lock:
            setattr(self, counter, getattr(self, counter) + amount)

    @property
    def hits(self) -> int:
        """All hits, exact and semantic."""
        return self.exact_hits + self.semantic_hits

    def as_dict(self) -> dict[str, int]:
        """A snapshot of every counter."""
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "_lock"}


def check_key_inputs(prompt: object, llm_string: object) -> None:
    """Raise ``TypeError`` naming the parameter unless both are ``str``."""
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str; got {type(prompt).__qualname__}")
    if not isinstance(llm_string, str):
        raise TypeError(f"llm_string must be a str; got {type(llm_string).__qualname__}")
