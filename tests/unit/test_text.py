"""What gets embedded: the final user turn's text; everything else is context."""

from __future__ import annotations

from langchain_core.load import dumps
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from llmemo.text import split_prompt


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
