"""llmemo in one minute: an exact and a semantic cache hit through ``set_llm_cache``.

Runs on the embedded default (in-process memory, no server). The chat model is
LangChain's own fake model with a simulated one-second latency, and the embeddings are a
tiny word-overlap embedder defined below, so nothing is downloaded: the cache timings are
real, the model and the embedder are stand-ins (``llmemo demo`` will use a real local
embedding model).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from typing import Any, ClassVar

from langchain_core.embeddings import Embeddings
from langchain_core.globals import set_llm_cache
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.load import dumps
from langchain_core.messages import HumanMessage

from llmemo.langchain import InMemoryCache, InMemorySemanticCache

SIMULATED_LATENCY_S = 1.0  # replaced by --latency


class SlowFakeChatModel(FakeListChatModel):
    """LangChain's FakeListChatModel, sleeping like a remote model would."""

    calls: int = 0

    def _call(self, *args: Any, **kwargs: Any) -> str:
        self.calls += 1
        time.sleep(SIMULATED_LATENCY_S)
        return super()._call(*args, **kwargs)


class WordOverlapEmbeddings(Embeddings):
    """A toy embedder: one axis per content word, with a few synonyms folded together."""

    SYNONYMS: ClassVar[dict[str, str]] = {
        "city": "capital",
        "biggest": "largest",
        "planets": "planet",
    }
    STOP: ClassVar[frozenset[str]] = frozenset(
        "a an the of is what what's which can you tell me in our please".split()
    )

    def __init__(self) -> None:
        self.axes: dict[str, int] = {}

    def embed_query(self, text: str) -> list[float]:
        vector = [0.0] * 64
        for word in re.findall(r"[a-z]+", text.lower()):
            if word not in self.STOP:
                word = self.SYNONYMS.get(word, word)
                vector[self.axes.setdefault(word, len(self.axes) % 64)] += 1.0
        return vector if any(vector) else [1.0] + [0.0] * 63

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]


def timed(model: FakeListChatModel, prompt: str) -> tuple[str, float]:
    start = time.perf_counter()
    answer = model.invoke(prompt).content
    return str(answer), time.perf_counter() - start


def main() -> None:
    global SIMULATED_LATENCY_S
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=1.0, help="simulated model seconds")
    SIMULATED_LATENCY_S = parser.parse_args().latency
    print(f"(chat model: simulated, {SIMULATED_LATENCY_S:.1f} s per call)")

    print("\n== Exact cache ==")
    set_llm_cache(InMemoryCache(ttl=3600))
    model = SlowFakeChatModel(responses=["Paris is the capital of France."])
    prompt = "What is the capital of France?"
    first, t1 = timed(model, prompt)
    second, t2 = timed(model, prompt)
    print(f"first call : {t1 * 1000:8.1f} ms  {first}")
    print(f"second call: {t2 * 1000:8.3f} ms  {second}  (served from cache)")
    print(f"speed-up   : {t1 / t2:,.0f}x")

    print("\n== Semantic cache ==")
    semantic = InMemorySemanticCache(WordOverlapEmbeddings(), distance_threshold=0.2)
    set_llm_cache(semantic)
    model = SlowFakeChatModel(responses=["Paris.", "Jupiter is the largest planet."])
    for question in (
        "What is the capital of France?",
        "Can you tell me the capital city of France?",
        "What's the largest planet in our solar system?",
    ):
        # Peek first, with the prompt string LangChain builds for a chat model, to show
        # the distance of the entry that will serve the call.
        prompt = dumps([HumanMessage(question)])
        hit = asyncio.run(semantic.alookup_hit(prompt, model._get_llm_string()))
        answer, seconds = timed(model, question)
        how = "model call" if hit is None else f"cache hit, cosine distance {hit.distance:.3f}"
        print(f"{seconds * 1000:8.1f} ms  {question!r} -> {answer!r} ({how})")
    print(f"\nmodel calls: {model.calls} for 3 questions")
    set_llm_cache(None)


if __name__ == "__main__":
    main()
