"""What gets embedded: the final user turn's text; everything else is context."""

from __future__ import annotations

import pytest
from langchain_core.load import dumps
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from llmemo.text import split_prompt, standalone


def chat(*messages: BaseMessage) -> str:
    return dumps(list(messages))


def test_plain_prompt_is_embedded_whole() -> None:
    parts = split_prompt("What is the capital of France?")
    assert parts.text == "What is the capital of France?"
    assert parts.context == ""


def test_json_that_is_not_a_message_list_is_plain() -> None:
    for prompt in ['[{"a": 1}]', "[{not json", '{"lc": 1}', "[]"]:
        assert split_prompt(prompt).text == prompt
        assert split_prompt(prompt).context == ""


def test_final_user_turn_is_embedded() -> None:
    prompt = chat(
        SystemMessage("Be brief."),
        HumanMessage("Hi"),
        AIMessage("Hello"),
        HumanMessage("Capital of France?"),
    )
    parts = split_prompt(prompt)
    assert parts.text == "Capital of France?"
    assert "Be brief." in parts.context
    assert "Hello" in parts.context
    assert "Capital of France?" not in parts.context


def test_same_context_for_paraphrased_final_turn() -> None:
    a = split_prompt(chat(SystemMessage("S"), HumanMessage("capital of France?")))
    b = split_prompt(chat(SystemMessage("S"), HumanMessage("France's capital city?")))
    assert a.context == b.context
    assert a.text != b.text


def test_earlier_turn_or_system_prompt_changes_the_context() -> None:
    base = split_prompt(
        chat(SystemMessage("S"), HumanMessage("hi"), AIMessage("yo"), HumanMessage("q"))
    )
    other_system = split_prompt(
        chat(SystemMessage("T"), HumanMessage("hi"), AIMessage("yo"), HumanMessage("q"))
    )
    other_turn = split_prompt(
        chat(SystemMessage("S"), HumanMessage("bye"), AIMessage("yo"), HumanMessage("q"))
    )
    assert len({base.context, other_system.context, other_turn.context}) == 3
    assert base.text == other_system.text == other_turn.text == "q"


def test_messages_after_the_user_turn_are_context() -> None:
    tool_call = {"name": "weather", "args": {"city": "Paris"}, "id": "c1"}
    a = split_prompt(
        chat(
            HumanMessage("weather?"),
            AIMessage("", tool_calls=[tool_call]),
            ToolMessage("sunny", tool_call_id="c1"),
        )
    )
    b = split_prompt(
        chat(
            HumanMessage("weather?"),
            AIMessage("", tool_calls=[tool_call]),
            ToolMessage("rain", tool_call_id="c1"),
        )
    )
    assert a.text == b.text == "weather?"
    assert a.context != b.context


def test_text_blocks_are_embedded_and_images_are_context() -> None:
    def with_image(url: str) -> str:
        return chat(
            HumanMessage(
                content=[
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": url}},
                ]
            )
        )

    a, b = split_prompt(with_image("a.png")), split_prompt(with_image("b.png"))
    assert a.text == b.text == "What is this?"
    assert a.context != b.context


def test_image_only_turn_has_no_text() -> None:
    parts = split_prompt(
        chat(HumanMessage(content=[{"type": "image_url", "image_url": {"url": "x"}}]))
    )
    assert parts.text == ""
    assert "x" in parts.context


def test_chat_message_with_user_role_is_a_user_turn() -> None:
    parts = split_prompt(chat(ChatMessage(role="user", content="hello there")))
    assert parts.text == "hello there"


def test_chat_without_user_turn_is_embedded_whole() -> None:
    prompt = chat(SystemMessage("only a system prompt"))
    assert split_prompt(prompt).text == prompt


def test_names_and_kwargs_of_the_user_turn_are_context() -> None:
    a = split_prompt(chat(HumanMessage("q", name="alice")))
    b = split_prompt(chat(HumanMessage("q", name="bob")))
    assert a.context != b.context


def test_lone_surrogates_and_big_numbers_in_a_chat_are_handled() -> None:
    parts = split_prompt(
        chat(SystemMessage("ids: 123456789012345678901234"), HumanMessage("\ud800 x"))
    )
    assert parts.text == "\ud800 x"
    again = split_prompt(
        chat(SystemMessage("ids: 123456789012345678901234"), HumanMessage("\ud800 x"))
    )
    assert again == parts


# The tolerant context policy (issue 18): a standalone final question is served after
# any plain conversation; a final message that depends on the conversation is not.
STANDALONE = "Is PulseFit open on Christmas Day?"


def test_tolerant_context_drops_plain_history_of_a_standalone_question() -> None:
    towel = chat(
        HumanMessage("can I bring my own towel?"),
        AIMessage("Please bring your own."),
        HumanMessage(STANDALONE),
    )
    lost = chat(
        HumanMessage("is there a lost property at the Leeds club?"),
        AIMessage("Yes, reception keeps it for 30 days."),
        HumanMessage(STANDALONE),
    )
    alone = chat(HumanMessage(STANDALONE))
    tolerant = {split_prompt(p, "tolerant") for p in (towel, lost, alone)}
    assert len(tolerant) == 1
    assert tolerant.pop().text == STANDALONE
    # The default policy keeps every turn.
    assert len({split_prompt(p).context for p in (towel, lost, alone)}) == 3
    assert split_prompt(towel) == split_prompt(towel, "exact")


def test_tolerant_context_keeps_system_prompts_and_tools() -> None:
    def with_system(system: str) -> str:
        return chat(SystemMessage(system), HumanMessage("hi"), HumanMessage(STANDALONE))

    assert (
        split_prompt(with_system("Be brief."), "tolerant").context
        != split_prompt(with_system("Answer in French."), "tolerant").context
    )
    tool = chat(
        HumanMessage("hi"),
        ToolMessage("opening hours: 9-5", tool_call_id="1"),
        HumanMessage(STANDALONE),
    )
    assert (
        split_prompt(tool, "tolerant").context
        != split_prompt(chat(HumanMessage(STANDALONE)), "tolerant").context
    )


def test_tolerant_context_keeps_the_conversation_a_follow_up_depends_on() -> None:
    card = chat(
        HumanMessage("I lost my Harbour Bank debit card."),
        AIMessage("I've frozen the card."),
        HumanMessage("and if I find it again, how do I unblock it?"),
    )
    sim = chat(
        HumanMessage("I lost my Kestrel Mobile phone."),
        AIMessage("I've barred the SIM."),
        HumanMessage("and if I find it again, how do I unblock it?"),
    )
    assert split_prompt(card, "tolerant") == split_prompt(card, "exact")
    assert split_prompt(card, "tolerant").context != split_prompt(sim, "tolerant").context


def test_unknown_context_policy_is_an_error() -> None:
    with pytest.raises(ValueError, match="context"):
        split_prompt("hi", "loose")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Is PulseFit open on Christmas Day?", True),
        ("How do I get a PAC code to switch networks?", True),
        ("How long does it take?", False),
        ("yeah go ahead", False),
        ("Can I bring my dog?", False),
        ("so what do I owe in total?", False),
        ("And is Harbour Bank open on Sundays?", False),
        ("Do I need to do anything before I go?", False),
    ],
)
def test_standalone_questions(text: str, expected: bool) -> None:
    assert standalone(text) is expected
