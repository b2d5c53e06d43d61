"""Which text of a prompt gets embedded, and which part must match exactly.

For chat models LangChain passes ``dumps()`` of the whole message list as the prompt.
Only the text of the final user turn carries the question whose meaning we compare;
everything else (system prompt, earlier turns, tool results, images, names) changes the
right answer and therefore goes into the *context*, which is hashed into the partition
and must match exactly. A plain string prompt is embedded as it is, with no context.

Pure functions, no I/O, no LangChain import (the JSON is read as data, never loaded into
objects).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from llmemo._json import fast_loads

__all__ = ["CONTEXT_POLICIES", "PromptParts", "split_prompt", "standalone"]

#: How much of a chat prompt must match exactly (see :func:`split_prompt`).
CONTEXT_POLICIES = ("exact", "tolerant")

# Class names (last element of the serialized "id") that are a user's turn.
_USER_MESSAGE_CLASSES = frozenset({"HumanMessage", "HumanMessageChunk"})
_CHAT_MESSAGE_CLASSES = frozenset({"ChatMessage", "ChatMessageChunk"})
_USER_ROLES = frozenset({"user", "human"})
# Stands in for the embedded text inside the context, so that the context records that
# a text was there without depending on it.
_EMBEDDED = "\x00llmemo:embedded\x00"


@dataclass(frozen=True, slots=True)
class PromptParts:
    """A prompt split for semantic caching.

    Attributes:
        text: What to embed (may be empty, e.g. an image-only user turn).
        context: What must match exactly (canonical JSON; empty for plain prompts).
    """

    text: str
    context: str


def _is_serialized_message(item: Any) -> bool:
    return (
        isinstance(item, dict)
        and item.get("lc") == 1
        and item.get("type") == "constructor"
        and isinstance(item.get("id"), list)
        and bool(item["id"])
        and isinstance(item["id"][-1], str)
        and isinstance(item.get("kwargs"), dict)
    )


def _is_user_turn(message: dict[str, Any]) -> bool:
    class_name = message["id"][-1]
    if class_name in _USER_MESSAGE_CLASSES:
        return True
    return class_name in _CHAT_MESSAGE_CLASSES and message["kwargs"].get("role") in _USER_ROLES


def _take_text(content: Any) -> tuple[str, Any]:
    """Return (text of the content, content with its text replaced by a placeholder)."""
    if isinstance(content, str):
        return content, _EMBEDDED
    if not isinstance(content, list):
        return "", content
    texts: list[str] = []
    rest: list[Any] = []
    for block in content:
        if isinstance(block, str):
            texts.append(block)
            rest.append(_EMBEDDED)
        elif (
            isinstance(block, dict)
            and block.get("type") == "text"
            and isinstance(block.get("text"), str)
            and set(block) <= {"type", "text"}
        ):
            texts.append(block["text"])
            rest.append(_EMBEDDED)
        else:
            # Images, files, annotated text: not embedded, must match exactly.
            rest.append(block)
    return "\n".join(texts), rest


def _loads(text: str) -> Any:
    # Message JSON holds no integers beyond 64 bits that matter here (orjson would read
    # one as the same float for the same prompt, in the context either way).
    fast = fast_loads()
    if fast is not None:
        try:
            return fast(text)
        except ValueError:
            pass  # e.g. lone surrogates: let the stdlib decide
    return json.loads(text)


def split_prompt(prompt: str, context: str = "exact") -> PromptParts:
    """Split a prompt into the text to embed and the context to match exactly.

    Args:
        prompt: A plain prompt, or LangChain's ``dumps()`` of a message list.
        context: The policy for chat prompts. ``"exact"``: everything but the final
            user turn's text must match exactly. ``"tolerant"``: when the final message
            reads as a question of its own (:func:`standalone`: it names what it is
            about and points back at nothing), the earlier user and assistant turns
            whose content is plain text are left out of the context, so that the same
            question asked after an unrelated conversation is served; system prompts,
            tool calls and results, images, names and extra fields must still match
            exactly. A final message that depends on the conversation ("how do I
            unblock it?", "go ahead") keeps the whole conversation in its context, as
            with ``"exact"``: comparing conversations by meaning was measured to serve
            wrong answers (an offer's order swapped, a card vs a SIM) on the tuning
            set, so it is not done.

    Returns:
        For a serialized message list with a user turn: the text to embed and the
        canonical JSON of what must match exactly. For anything else (plain text, JSON
        that is not a message list, a chat with no user turn): the whole prompt as text,
        no context.

    Raises:
        ValueError: ``context`` is not one of :data:`CONTEXT_POLICIES`.
    """
    if context not in CONTEXT_POLICIES:
        raise ValueError(f"context must be one of {CONTEXT_POLICIES}; got {context!r}")
    if not prompt.startswith("[{"):
        return PromptParts(prompt, "")
    try:
        messages = _loads(prompt)
    except ValueError:
        return PromptParts(prompt, "")
    if not isinstance(messages, list) or not all(_is_serialized_message(m) for m in messages):
        return PromptParts(prompt, "")
    for index in range(len(messages) - 1, -1, -1):
        if _is_user_turn(messages[index]):
            break
    else:
        return PromptParts(prompt, "")
    final_turn = messages[index]
    text, rest = _take_text(final_turn["kwargs"].get("content"))
    redacted_turn = {**final_turn, "kwargs": {**final_turn["kwargs"], "content": rest}}
    earlier = messages[:index]
    marker: list[Any] = []
    if context == "tolerant" and text and standalone(text):
        # The conversation so far does not decide what a standalone question asks:
        # only what is not plain user/assistant text must match.
        earlier = [m for m in earlier if _plain_turn(m) is None]
        marker = [_STANDALONE]
    redacted = [*marker, *earlier, redacted_turn, *messages[index + 1 :]]
    exact = json.dumps(redacted, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return PromptParts(text, exact)


# Heads a tolerant context whose conversation was left out: such an entry never meets
# one whose context holds its conversation.
_STANDALONE = "\x00llmemo:standalone\x00"
# Fields a plain text turn may carry (empty or, for metadata, not about the meaning).
_PLAIN_KWARGS = frozenset(
    {"content", "type", "additional_kwargs", "response_metadata", "id"}
    | {"tool_calls", "invalid_tool_calls", "usage_metadata"}
)
_PLAIN_CLASSES = _USER_MESSAGE_CLASSES | frozenset({"AIMessage", "AIMessageChunk"})


def _plain_turn(message: dict[str, Any]) -> str | None:
    """The text of a user or assistant turn that is nothing but text, else ``None``."""
    kwargs = message["kwargs"]
    class_name = message["id"][-1]
    plain = class_name in _PLAIN_CLASSES or (
        class_name in _CHAT_MESSAGE_CLASSES and kwargs.get("role") in {"user", "assistant"}
    )
    extra = set(kwargs) - _PLAIN_KWARGS - {"role"}
    calls = kwargs.get("tool_calls") or kwargs.get("invalid_tool_calls")
    if not plain or extra or kwargs.get("additional_kwargs") or calls:
        return None
    text, rest = _take_text(kwargs.get("content"))
    if not isinstance(rest, (str, list)) or any(r != _EMBEDDED for r in _as_list(rest)):
        return None  # images or files: part of the context
    return text


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# Words that point back into the conversation ("how do I unblock *it*?", "and *those*?").
_ANAPHORA = frozenset(
    """
    it its itself this that these those them they their theirs he him his she her
    one ones same such above previous former latter again instead else another other
    """.split()
)
_RIGHT_QUOTE = "\u2019"  # typographic apostrophe
_WORD = re.compile(r"[^\W\d_][\w'\u2019-]*")


def standalone(text: str) -> bool:
    """Whether a final message reads as a question of its own, without the conversation.

    True when it names what it is about (a capitalised name or an acronym that does not
    merely open a sentence: "Is PulseFit open on Christmas Day?"), has at least two
    words that are neither function words nor frame words ("how", "need", "get"),
    does not open as a follow-up ("and ...", "so ...", "ok ...") and has no word
    pointing back ("it", "that", "those", "same", ...). "How long does it take?",
    "Can I bring my dog?" (where?), "so what do I owe in total?" and "Go ahead" are
    not. A heuristic that errs towards "not standalone", whose only cost is a miss.
    """
    from llmemo.verify import _lexicon as lex  # word lists only

    content = 0
    named = False
    sentence_start = True
    first = True
    for match in _WORD.finditer(text):
        word = match.group()
        low = word.lower().replace(_RIGHT_QUOTE, "'")
        if first and low in _FOLLOW_UP:
            return False
        first = False
        if low in _ANAPHORA or low.partition("'")[0] in _ANAPHORA:
            return False
        if low not in lex.STOPWORDS and low not in lex.LIGHT_WORDS and len(low) > 2:
            content += 1
        capitalised = word[:1].isupper() and not sentence_start and low != "i"
        mixed = any(c.isupper() for c in word[1:]) and any(c.islower() for c in word)
        acronym = len(word) > 1 and word.isupper()
        if (capitalised or mixed or acronym) and low not in lex.STOPWORDS:
            named = True
        end = text[match.end() : match.end() + 2].lstrip(" ")
        sentence_start = end[:1] in {".", "?", "!", ":"}
    return named and content >= 2


# Openings of a follow-up message ("and data?", "so can you book me in?", "ok go ahead").
_FOLLOW_UP = frozenset("and so ok okay cool great yes yeah yep no nope but also then right".split())
