"""Hit verifiers: semantic hits must be right, not just close."""

from __future__ import annotations

from llmemo.verify.base import Candidate, HitVerifier, Verdict

__all__ = ["Candidate", "HitVerifier", "Verdict"]
