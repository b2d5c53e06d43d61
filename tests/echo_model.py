"""A real LangChain chat model for cache tests: answers ``echo: <last message>`` and counts
its calls, so a test can tell a cached answer (no call) from a model answer (one call)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import PrivateAttr

__all__ = ["EchoChatModel", "answer_to", "invoker", "prompt_of"]


def answer_to(text: str) -> str:
    """What :class:`EchoChatModel` answers to a one-message prompt ``text``."""
    return f"echo: {text}"


def prompt_of(text: str) -> str:
    """The ``prompt`` LangChain passes to the cache for ``chat.invoke(text)``."""
    return dumps([HumanMessage(content=text)])


class EchoChatModel(BaseChatModel):
    """Answers ``echo: <content of the last message>``; ``calls`` counts model calls."""

    calls: int = 0
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "echo"

    def llm_string(self) -> str:
        """The ``llm_string`` LangChain passes to the cache for a plain ``invoke``."""
        return self._get_llm_string()

    def _answer(self, messages: list[BaseMessage]) -> ChatResult:
        with self._lock:
            self.calls += 1
        content = messages[-1].content
        return ChatResult(
            generations=[ChatGeneration(message=AIMessage(content=answer_to(str(content))))]
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._answer(messages)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        await asyncio.sleep(0)
        return self._answer(messages)


@contextlib.contextmanager
def invoker(face: str, chat: BaseChatModel) -> Iterator[Callable[[str], str]]:
    """``invoke(text) -> answer content`` on the chosen face, for sync test functions.

    ``"sync"``: ``chat.invoke`` from this (loop-free) thread. ``"async"``:
    ``chat.ainvoke`` on one event loop kept for the whole block (so per-loop clients live
    through it), shut down properly at the end (which closes them).
    """
    if face == "sync":
        yield lambda text: str(chat.invoke(text).content)
        return
    loop = asyncio.new_event_loop()
    try:
        yield lambda text: str(loop.run_until_complete(chat.ainvoke(text)).content)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
