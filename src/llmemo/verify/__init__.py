"""Hit verifiers: semantic hits must be right, not just close.

:class:`RulesVerifier` is the default (offline rules, no model); :class:`CrossEncoderVerifier`
and :class:`LLMJudgeVerifier` wrap a model the user supplies; :class:`AllOf` and
:class:`FirstDecides` compose them. Importing this package loads no model and no
optional dependency; the verifier modules themselves load on first use of their names
(so that ``import llmemo`` stays light).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from llmemo.verify.base import Candidate, HitVerifier, Verdict

if TYPE_CHECKING:
    from llmemo.verify.compose import ABSTAIN, AllOf, FirstDecides
    from llmemo.verify.cross_encoder import CrossEncoderVerifier
    from llmemo.verify.learned import LearnedVerifier
    from llmemo.verify.llm_judge import LLMJudgeVerifier
    from llmemo.verify.rules import RulesVerifier

__all__ = [
    "ABSTAIN",
    "AllOf",
    "Candidate",
    "CrossEncoderVerifier",
    "FirstDecides",
    "HitVerifier",
    "LLMJudgeVerifier",
    "LearnedVerifier",
    "RulesVerifier",
    "Verdict",
]

_LAZY = {
    "ABSTAIN": "llmemo.verify.compose",
    "AllOf": "llmemo.verify.compose",
    "FirstDecides": "llmemo.verify.compose",
    "CrossEncoderVerifier": "llmemo.verify.cross_encoder",
    "LLMJudgeVerifier": "llmemo.verify.llm_judge",
    "LearnedVerifier": "llmemo.verify.learned",
    "RulesVerifier": "llmemo.verify.rules",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llmemo.verify' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
