"""Front-door requests to `GenerationRequest`: every role, tool turns both ways, and refusals."""

from __future__ import annotations

from typing import Any

import pytest

from api.doors import anthropic_requests, openai_requests
from api.doors.translation import InvalidDoorRequest
from services.generation import GenerationRequest, Message, MessageToolCall


def from_openai(**body: Any) -> GenerationRequest:
    body.setdefault("model", "demo/echo")
    return openai_requests.to_generation_request(openai_requests.parse_chat_request(body))


def from_anthropic(**body: Any) -> GenerationRequest:
    body.setdefault("model", "demo/echo")
    body.setdefault("max_tokens", 50)
    return anthropic_requests.to_generation_request(anthropic_requests.parse_messages_request(body))


def test_openai_roles_and_tool_turns() -> None:
    request = from_openai(
        messages=[
            {"role": "developer", "content": "be brief"},
            {"role": "system", "content": [{"type": "text", "text": "and kind"}]},
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"x":1}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "42"},
        ],
        max_completion_tokens=7,
        stop="END",
        user="u-1",
        metadata={"team": "x"},
        tool_choice={"type": "function", "function": {"name": "f"}},
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        seed=3,
    )
    assert request.messages == [
        Message(role="system", content="be brief"),
        Message(role="system", content="and kind"),
        Message(role="user", content="a\nb"),
        Message(
            role="assistant",
            content="",
            tool_calls=[MessageToolCall(id="call_1", name="f", arguments='{"x":1}')],
        ),
        Message(role="tool", content="42", tool_call_id="call_1"),
    ]
    assert request.max_tokens == 7
    assert request.stop == ["END"]
    assert request.metadata == {"team": "x", "user": "u-1"}
    assert request.tool_choice == "f"
    assert request.tools is not None and request.tools[0].function.name == "f"


def test_bare_model_names_go_to_the_doors_provider() -> None:
    assert from_openai(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]).model == (
        "openai/gpt-4o-mini"
    )
    anthropic_request = from_anthropic(
        model="claude-x", messages=[{"role": "user", "content": "x"}]
    )
    assert anthropic_request.model == "anthropic/claude-x"
    assert from_anthropic(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "x"}]
    ).model == ("openai/gpt-4o")


def test_anthropic_blocks_and_tool_turns() -> None:
    request = from_anthropic(
        system=[{"type": "text", "text": "sys1"}, {"type": "text", "text": "sys2"}],
        messages=[
            {"role": "user", "content": "what is 6*7?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "text", "text": "Let me compute."},
                    {"type": "tool_use", "id": "toolu_1", "name": "calc", "input": {"e": "6*7"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "42"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "is_error": True,
                        "content": [{"type": "text", "text": "boom"}],
                    },
                    {"type": "text", "text": "thanks"},
                ],
            },
        ],
        tools=[{"name": "calc", "description": "math", "input_schema": {"type": "object"}}],
        tool_choice={"type": "any"},
        stop_sequences=["\n\n"],
        metadata={"user_id": "u-2"},
        top_k=5,
    )
    assert request.messages == [
        Message(role="system", content="sys1\nsys2"),
        Message(role="user", content="what is 6*7?"),
        Message(
            role="assistant",
            content="Let me compute.",
            tool_calls=[MessageToolCall(id="toolu_1", name="calc", arguments='{"e":"6*7"}')],
        ),
        Message(role="tool", content="42", tool_call_id="toolu_1"),
        Message(role="tool", content="Error: boom", tool_call_id="toolu_2"),
        Message(role="user", content="thanks"),
    ]
    assert request.tool_choice == "required"
    assert request.stop == ["\n\n"]
    assert request.metadata == {"user_id": "u-2"}
    assert request.tools is not None and request.tools[0].function.description == "math"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "json_object"},
            },
            "response_format",
        ),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "stream_options": {"include_usage": True},
            },
            "stream_options",
        ),
        ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages.0"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0.tool_call_id"),
        (
            {"messages": [{"role": "user", "content": "x"}], "tool_choice": "sometimes"},
            "tool_choice",
        ),
        ({"messages": [{"role": "user", "content": "x"}], "bogus": 1}, "bogus"),
    ],
)
def test_openai_refusals_name_the_parameter(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidDoorRequest) as refused:
        from_openai(**body)
    assert refused.value.param == param


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]},
            "messages.0.content.0",
        ),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "web_search_20250305", "name": "w"}],
            },
            "tools.0",
        ),
        (
            {"messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "tool"}},
            "tool_choice",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_result"}]}]},
            "messages.0.content.0.tool_use_id",
        ),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": "x"}], "temperature": 1.5}, "temperature"),
    ],
)
def test_anthropic_refusals_name_the_parameter(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidDoorRequest) as refused:
        from_anthropic(**body)
    assert refused.value.param == param


def test_an_unknown_argument_is_named_as_openai_names_it() -> None:
    """Apps and SDKs match on this wording to report a typo in a parameter name."""
    with pytest.raises(InvalidDoorRequest, match="Unrecognized request argument supplied: bogus"):
        from_openai(messages=[{"role": "user", "content": "x"}], bogus=1)
    with pytest.raises(InvalidDoorRequest, match="messages: Field required"):
        from_openai()


def test_anthropic_error_results_and_thinking_blocks() -> None:
    """A failed tool's result keeps its failure visible to the model; the thinking
    of earlier turns is the provider's own and is not sent on."""
    request = from_anthropic(
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hm", "signature": "s"},
                    {"type": "tool_use", "id": "t1", "name": "w", "input": {"c": "P"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": "down",
                        "is_error": True,
                    }
                ],
            },
        ]
    )
    assert request.messages[1] == Message(
        role="assistant",
        content="",
        tool_calls=[MessageToolCall(id="t1", name="w", arguments='{"c":"P"}')],
    )
    assert request.messages[2] == Message(role="tool", content="Error: down", tool_call_id="t1")
