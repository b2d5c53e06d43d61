"""What the docs tell a newcomer holds: the recipes of docs/quickstart.md run as written."""

from __future__ import annotations

from langchain_core.globals import get_llm_cache, set_llm_cache
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.load import dumps
from langchain_core.messages import HumanMessage

from llmemo.langchain import InMemoryCache


def test_lookup_hit_with_the_documented_prompt_of_a_chat_model() -> None:
    previous = get_llm_cache()
    cache = InMemoryCache()
    set_llm_cache(cache)
    try:
        model = FakeListChatModel(responses=["Paris."])
        question = "What is the capital of France?"
        model.invoke(question)
        # docs/quickstart.md, "Hit information": the question text itself is not the prompt.
        assert cache.lookup_hit(question, model._get_llm_string()) is None
        hit = cache.lookup_hit(dumps([HumanMessage(question)]), model._get_llm_string())
        assert hit is not None
        assert hit.kind == "exact"
        assert hit.value[0].text == "Paris."
    finally:
        set_llm_cache(previous)
