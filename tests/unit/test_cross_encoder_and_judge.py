"""CrossEncoderVerifier with a fake model; LLMJudgeVerifier with LangChain's fake chat model."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from llmemo.errors import ConfigurationError
from llmemo.verify import Candidate, CrossEncoderVerifier, HitVerifier, LLMJudgeVerifier
from llmemo.verify.llm_judge import parse_yes_no


class FakeCrossEncoder:
    """Scores pairs from a table; records the thread of every call."""

    def __init__(self, scores: dict[tuple[str, str], Any]) -> None:
        self.scores = scores
        self.threads: list[int] = []
        self.calls: list[list[tuple[str, str]]] = []

    def predict(self, sentences: list[tuple[str, str]], *args: Any, **kwargs: Any) -> list[Any]:
        self.threads.append(threading.get_ident())
        self.calls.append(list(sentences))
        return [self.scores[pair] for pair in sentences]


def stored(verifier: Any, text: str, distance: float = 0.1) -> Candidate:
    return Candidate("e", distance, verifier.signature(text))


async def test_cross_encoder_accepts_at_threshold_in_a_worker_thread() -> None:
    model = FakeCrossEncoder({("old", "new"): 0.8, ("old", "other"): 0.2})
    verifier = CrossEncoderVerifier(model, threshold=0.5)
    assert isinstance(verifier, HitVerifier)
    assert verifier.signature("old") == {"t": "old"}
    verdict = await verifier.verify("new", verifier.signature("new"), stored(verifier, "old"))
    assert verdict.accepted and verdict.verifier == "cross-encoder"
    assert "0.800" in verdict.reason
    verdict = await verifier.verify("other", None, stored(verifier, "old"))
    assert not verdict.accepted
    assert threading.get_ident() not in model.threads
    assert model.calls[0] == [("old", "new")]


async def test_cross_encoder_without_stored_text_rejects() -> None:
    model = FakeCrossEncoder({})
    verifier = CrossEncoderVerifier(model)
    verdict = await verifier.verify("new", None, Candidate("e", 0.1, None))
    assert not verdict.accepted
    assert model.calls == []


async def test_cross_encoder_options() -> None:
    model = FakeCrossEncoder(
        {("a", "b"): [0.1, 0.7, 0.2], ("b", "a"): [0.1, 0.4, 0.5], ("c", "d"): 2.0}
    )
    symmetric = CrossEncoderVerifier(model, threshold=0.5, score_index=1, symmetric=True)
    verdict = await symmetric.verify("b", None, stored(symmetric, "a"))
    assert not verdict.accepted  # min(0.7, 0.4) < 0.5
    one_way = CrossEncoderVerifier(model, threshold=0.5, score_index=1)
    assert (await one_way.verify("b", None, stored(one_way, "a"))).accepted
    sigmoid = CrossEncoderVerifier(model, threshold=0.8, apply_sigmoid=True)
    assert sigmoid.score("c", "d") == pytest.approx(0.8807970779778823)


def test_cross_encoder_needs_a_predict_method() -> None:
    with pytest.raises(ConfigurationError):
        CrossEncoderVerifier(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        CrossEncoderVerifier(FakeCrossEncoder({}), threshold=float("nan"))


async def test_judge_asks_once_per_pair_and_caches_the_verdict() -> None:
    model = FakeListChatModel(responses=["Yes.", "no"])
    judge = LLMJudgeVerifier(model)
    assert isinstance(judge, HitVerifier)
    first = await judge.verify("Where is my parcel?", None, stored(judge, "Where's my package?"))
    assert first.accepted and first.reason == "judge said yes"
    again = await judge.verify("Where is my parcel?", None, stored(judge, "Where's my package?"))
    assert again.accepted and "(cached)" in again.reason
    assert judge.calls == 1
    other = await judge.verify("Is it raining?", None, stored(judge, "Where's my package?"))
    assert not other.accepted and other.reason == "judge said no"
    assert judge.calls == 2


async def test_judge_question_contains_both_prompts() -> None:
    judge = LLMJudgeVerifier(FakeListChatModel(responses=["yes"]))
    messages = judge.messages("cached prompt", "new prompt")
    assert messages[0].type == "system"
    assert "cached prompt" in messages[1].content and "new prompt" in messages[1].content


async def test_judge_unclear_answer_rejects_and_is_not_cached() -> None:
    judge = LLMJudgeVerifier(FakeListChatModel(responses=["Maybe?", "yes"]))
    verdict = await judge.verify("b", None, stored(judge, "a"))
    assert not verdict.accepted and "unclear" in verdict.reason
    verdict = await judge.verify("b", None, stored(judge, "a"))
    assert verdict.accepted
    assert judge.calls == 2


async def test_judge_times_out() -> None:
    judge = LLMJudgeVerifier(FakeListChatModel(responses=["yes"], sleep=2.0), timeout=0.05)
    with pytest.raises(TimeoutError):
        await judge.verify("b", None, stored(judge, "a"))


async def test_judge_without_stored_text_rejects() -> None:
    judge = LLMJudgeVerifier(FakeListChatModel(responses=["yes"]))
    verdict = await judge.verify("b", None, Candidate("e", 0.1, None))
    assert not verdict.accepted
    assert judge.calls == 0


def test_judge_bypasses_a_global_llm_cache() -> None:
    model = FakeListChatModel(responses=["yes"])
    assert model.cache is None
    judge = LLMJudgeVerifier(model)
    assert judge.model.cache is False
    assert model.cache is None  # the user's model is not modified


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Yes", True),
        ("yes, they match", True),
        ("No.", False),
        ("  NO", False),
        ("maybe", None),
        ("", None),
    ],
)
def test_parse_yes_no(answer: str, expected: bool | None) -> None:
    assert parse_yes_no(answer) is expected


def test_judge_bad_options() -> None:
    model = FakeListChatModel(responses=["yes"])
    with pytest.raises(ConfigurationError):
        LLMJudgeVerifier(object())
    with pytest.raises(ConfigurationError):
        LLMJudgeVerifier(model, question="no placeholders")
    with pytest.raises(ConfigurationError):
        LLMJudgeVerifier(model, cache_size=-1)
    with pytest.raises(ConfigurationError):
        LLMJudgeVerifier(model, timeout=0)
