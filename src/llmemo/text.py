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
from dataclasses import dataclass
from typing import Any

from llmemo._json import fast_loads

__all__ = ["PromptParts", "split_prompt"]

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


def split_prompt(prompt: str) -> PromptParts:
    """Split a prompt into the text to embed and the context to match exactly.

    Args:
        prompt: A plain prompt, or LangChain's ``dumps()`` of a message list.

    Returns:
        For a serialized message list with a user turn: the text of the final user turn
        and the canonical JSON of everything else. For anything else (plain text, JSON
        that is not a message list, a chat with no user turn): the whole prompt as text,
        no context.
    """
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
    redacted = [*messages[:index], redacted_turn, *messages[index + 1 :]]
    context = json.dumps(redacted, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return PromptParts(text, context)
