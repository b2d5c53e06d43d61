"""Deterministic test embeddings whose distances mean something.

``ConceptEmbeddings`` maps words to concept axes through a small synonym table, so a
paraphrase ("capital city of France" / "France's capital") lands on the same vector and
an unrelated question lands far away. Unknown words are hashed (stably) into extra axes.
It is a real LangChain ``Embeddings`` subclass, sync-only (LangChain's default
``aembed_*`` apply); ``AsyncConceptEmbeddings`` adds native async methods.
"""

from __future__ import annotations

import hashlib
import re
import threading

from langchain_core.embeddings import Embeddings

CONCEPTS: dict[str, int] = {}
for axis, words in enumerate(
    [
        ("capital", "capitals", "city"),
        ("france", "french", "france's"),
        ("planet", "planets"),
        ("largest", "biggest", "big", "large", "huge"),
        ("bake", "baking", "baked"),
        ("bread", "loaf", "sourdough"),
        ("germany", "german"),
        ("weather", "forecast"),
        ("solar", "sun"),
    ]
):
    for word in words:
        CONCEPTS[word] = axis

STOPWORDS = frozenset(
    "a an the of is what's what which can you tell me in our please how do i to its it".split()
)
CONCEPT_AXES = 16
HASHED_AXES = 16
DIMENSION = CONCEPT_AXES + HASHED_AXES


def concept_vector(text: str) -> list[float]:
    vector = [0.0] * DIMENSION
    for word in re.findall(r"[a-z']+", text.lower()):
        if word in STOPWORDS:
            continue
        if word in CONCEPTS:
            vector[CONCEPTS[word]] += 1.0
        else:
            digest = hashlib.sha256(word.encode()).digest()
            vector[CONCEPT_AXES + digest[0] % HASHED_AXES] += 1.0
    if not any(vector):
        vector[-1] = 1.0  # no content words: one fixed direction, never the zero vector
    return vector


class ConceptEmbeddings(Embeddings):
    """Sync-only deterministic embeddings; records the thread of every call."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.threads: list[int] = []
        self._lock = threading.Lock()

    def _record(self, texts: list[str]) -> None:
        with self._lock:
            self.calls.extend(texts)
            self.threads.append(threading.get_ident())

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self._record(texts)
        return [concept_vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        self._record([text])
        return concept_vector(text)


class AsyncConceptEmbeddings(ConceptEmbeddings):
    """The same vectors, with native async methods (no worker thread)."""

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        return self.embed_query(text)
