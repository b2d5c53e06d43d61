"""Embedders: LangChain ``Embeddings`` as an async :class:`~llmemo.stores.base.Embedder`."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

__all__ = ["LangChainEmbedder"]


class LangChainEmbedder:
    """Adapts any LangChain ``Embeddings`` to the async ``Embedder`` protocol.

    Embeddings with a native async implementation are awaited (``aembed_query`` for one
    text, ``aembed_documents`` for several). Sync-only embeddings (those that inherit
    LangChain's default ``aembed_*``, duck-typed objects with only ``embed_query`` and
    ``embed_documents``, mocks) run in an anyio worker thread, never on the event
    loop. One text is always embedded with the *query* method, on both the lookup and the
    write path, so the two sides of a comparison are embedded the same way.

    With ``inline=True`` the sync methods are called directly, blocking: only for cores
    driven without an event loop by llmemo's sync faces.
    """

    def __init__(self, embeddings: Embeddings, *, inline: bool = False) -> None:
        """Wrap ``embeddings``; does no I/O.

        Raises:
            TypeError: ``embeddings`` has no ``embed_query``/``embed_documents``.
        """
        if not callable(getattr(embeddings, "embed_query", None)) or not callable(
            getattr(embeddings, "embed_documents", None)
        ):
            raise TypeError(
                "embeddings must be a LangChain Embeddings (with embed_query and "
                f"embed_documents); got {type(embeddings).__qualname__}"
            )
        self.embeddings = embeddings
        self.inline = inline
        self._native_async = self._has_native_async(embeddings)

    @staticmethod
    def _has_native_async(embeddings: Embeddings) -> bool:
        """Whether the class of ``embeddings`` implements both async methods itself.

        Duck-typed classes without them and mocks (``Mock(spec=Embeddings)``, whose
        class has no ``aembed_*``) use their sync methods in a worker thread, as
        LangChain's default ``aembed_*`` would.
        """
        try:
            from langchain_core.embeddings import Embeddings
        except ImportError:  # pragma: no cover - langchain-core is a dependency
            return False
        kind = type(embeddings)
        query = getattr(kind, "aembed_query", None)
        documents = getattr(kind, "aembed_documents", None)
        if not (inspect.iscoroutinefunction(query) and inspect.iscoroutinefunction(documents)):
            return False
        return query is not Embeddings.aembed_query

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Return one vector per text, in order, without blocking the loop."""
        items = list(texts)
        if self.inline:
            if len(items) == 1:
                return [list(self.embeddings.embed_query(items[0]))]
            return [list(v) for v in self.embeddings.embed_documents(items)]
        import anyio.to_thread  # loaded on first use: keeps `import llmemo` light

        if self._native_async:
            if len(items) == 1:
                return [list(await self.embeddings.aembed_query(items[0]))]
            return [list(v) for v in await self.embeddings.aembed_documents(items)]
        if len(items) == 1:
            one = functools.partial(self.embeddings.embed_query, items[0])
            return [list(await anyio.to_thread.run_sync(one))]
        many = functools.partial(self.embeddings.embed_documents, items)
        return [list(v) for v in await anyio.to_thread.run_sync(many)]
