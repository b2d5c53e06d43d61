"""A hit verifier that asks a LangChain chat model a short yes/no question.

The judge sees the cached prompt and the new one and answers whether one correct answer
serves both. It is the strongest and the slowest verifier (one model call per candidate
not yet judged), so it keeps its own bounded, in-process cache of verdicts keyed by the
ordered pair of texts, and it is best placed last in an
:class:`~llmemo.verify.compose.AllOf` after the cheap rules.

The model is any LangChain chat model the user supplies; it is called with
``ainvoke`` (native async). A copy of the model with ``cache=False`` is used when the
model has no cache of its own set, so that the judge's calls never go through a global
LLM cache (which could be this very cache).

The signature stores the prompt's text (``{"t": text}``): the judge needs it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from llmemo import keys
from llmemo._lru import LRU
from llmemo.errors import ConfigurationError
from llmemo.verify.base import Candidate, Verdict

__all__ = ["DEFAULT_INSTRUCTIONS", "DEFAULT_QUESTION", "LLMJudgeVerifier"]

#: System message of the judge.
DEFAULT_INSTRUCTIONS = (
    "You check whether a cached answer may be reused for a new request. Two requests "
    "match only if one correct answer serves both: the same numbers, amounts, dates, "
    "names, negation and direction; wording may differ. Reply with one word: yes or no."
)
#: The question; ``{cached}`` and ``{new}`` are replaced by the two prompts.
DEFAULT_QUESTION = (
    "Request A (cached): {cached}\n"
    "Request B (new): {new}\n"
    "Does a correct answer to A also correctly and fully answer B?"
)

_WORD = re.compile(r"[a-z]+")


def _answer_text(message: Any) -> str:
    content = getattr(message, "content", message)
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks
        parts = [
            block if isinstance(block, str) else str(block.get("text", ""))
            for block in content
            if isinstance(block, (str, dict))
        ]
        return " ".join(parts)
    return str(content)


def parse_yes_no(answer: str) -> bool | None:
    """``True`` for yes, ``False`` for no, ``None`` when the first word is neither."""
    match = _WORD.search(answer.lower())
    if match is None:
        return None
    word = match.group(0)
    if word in {"yes", "y", "true"}:
        return True
    if word in {"no", "n", "false"}:
        return False
    return None


class LLMJudgeVerifier:
    """Accept a candidate when a chat model answers "yes" to a short match question.

    Verdicts are cached in process (``cache_size`` pairs, LRU). An answer that is
    neither yes nor no rejects the candidate and is not cached. Model errors and
    timeouts propagate (the cache counts a raising verifier as a miss).

    Loop affinity: :meth:`verify` awaits the model's ``ainvoke`` on the running loop.
    """

    def __init__(
        self,
        model: Any,
        *,
        name: str = "llm-judge",
        instructions: str = DEFAULT_INSTRUCTIONS,
        question: str = DEFAULT_QUESTION,
        cache_size: int = 4096,
        timeout: float | None = 30.0,
    ) -> None:
        """Wrap a LangChain chat model; calls nothing.

        Args:
            model: A LangChain chat model (``ainvoke`` taking a message list).
            name: Verifier name (key of its signature inside composites).
            instructions: The system message.
            question: The question, with ``{cached}`` and ``{new}`` placeholders.
            cache_size: Verdicts kept in process (0 disables the cache).
            timeout: Seconds to wait for the model (``None``: no limit); on timeout
                ``TimeoutError`` is raised.

        Raises:
            ConfigurationError: ``model`` has no ``ainvoke``, a bad placeholder set, or
                bad sizes.
        """
        if not hasattr(model, "ainvoke"):
            raise ConfigurationError(f"model must be a LangChain chat model; got {model!r}")
        if "{cached}" not in question or "{new}" not in question:
            raise ConfigurationError("question must contain {cached} and {new}")
        if not isinstance(cache_size, int) or cache_size < 0:
            raise ConfigurationError(f"cache_size must be an integer >= 0; got {cache_size!r}")
        if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
            raise ConfigurationError(f"timeout must be > 0 seconds or None; got {timeout!r}")
        # The judge's own calls must not go through a global LLM cache (possibly this one).
        if getattr(model, "cache", True) is None and hasattr(model, "model_copy"):
            model = model.model_copy(update={"cache": False})
        self.model = model
        self.name = name
        self.instructions = instructions
        self.question = question
        self.timeout = timeout
        self._verdicts = LRU[bool](cache_size)
        self.calls = 0  # model calls made (cache misses), for stats and tests

    def __repr__(self) -> str:
        return f"LLMJudgeVerifier(model={type(self.model).__name__}, name={self.name!r})"

    def signature(self, text: str) -> dict[str, Any]:
        """``{"t": text}``: the judge needs the cached prompt's text."""
        return {"t": text}

    def messages(self, cached: str, new: str) -> list[Any]:
        """The messages sent to the model for one pair."""
        from langchain_core.messages import HumanMessage, SystemMessage

        question = self.question.replace("{cached}", cached).replace("{new}", new)
        return [SystemMessage(content=self.instructions), HumanMessage(content=question)]

    async def verify(
        self, text: str, signature: Mapping[str, Any] | None, candidate: Candidate
    ) -> Verdict:
        """Ask the model (or the verdict cache) whether the cached answer serves ``text``.

        Raises:
            TimeoutError: the model took longer than ``timeout``.
            Exception: whatever the model raises.
        """
        import anyio

        stored = candidate.signature
        cached = stored.get("t") if stored is not None else None
        if not isinstance(cached, str):
            return Verdict(False, self.name, "entry has no stored text")
        key = keys.field_hash("llm-judge", self.instructions, self.question, cached, text)
        known = self._verdicts.get(key)
        if known is not None:
            return Verdict(known, self.name, f"judge said {'yes' if known else 'no'} (cached)")
        with anyio.fail_after(self.timeout):
            reply = await self.model.ainvoke(self.messages(cached, text))
        self.calls += 1
        answer = _answer_text(reply)
        decision = parse_yes_no(answer)
        if decision is None:
            return Verdict(False, self.name, f"unclear answer: {answer[:60]!r}")
        self._verdicts.put(key, decision)
        return Verdict(decision, self.name, f"judge said {'yes' if decision else 'no'}")
