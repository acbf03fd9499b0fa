"""Request translation edge cases, as pure functions (the common cases are
asserted end to end on what the fake upstreams received)."""

from __future__ import annotations

import pytest

from services.errors import ProviderError
from services.generation import GenerationRequest, Message, MessageToolCall
from services.providers.anthropic import anthropic_messages, messages_params
from services.providers.openai import chat_params


def request(**fields: object) -> GenerationRequest:
    return GenerationRequest.model_validate(
        {"model": "x/m", "messages": [{"role": "user", "content": "hi"}], **fields}
    )


def test_anthropic_joins_system_turns_and_merges_consecutive_roles() -> None:
    system, turns = anthropic_messages(
        [
            Message(role="system", content="One."),
            Message(role="user", content="a"),
            Message(role="system", content="Two."),
            Message(role="user", content="b"),
            Message(role="assistant", content=""),
            Message(role="assistant", content="c"),
        ]
    )
    assert system == "One.\n\nTwo."
    assert turns == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "c"}]},
    ]


def test_anthropic_refuses_tool_call_arguments_that_are_not_json() -> None:
    bad = MessageToolCall(id="t1", name="f", arguments="{not json")
    with pytest.raises(ProviderError) as raised:
        anthropic_messages([Message(role="assistant", content="", tool_calls=[bad])])
    assert raised.value.error_type == "invalid_request_error"
    assert raised.value.retryable is False


def test_anthropic_max_tokens_default_and_explicit() -> None:
    assert messages_params(request(), default_max_tokens=4096)["max_tokens"] == 4096
    assert messages_params(request(max_tokens=7), default_max_tokens=4096)["max_tokens"] == 7
    tool = {"type": "function", "function": {"name": "f"}}
    params = messages_params(request(tools=[tool], tool_choice="f"), default_max_tokens=1)
    assert params["tools"] == [{"name": "f", "input_schema": {"type": "object", "properties": {}}}]
    assert params["tool_choice"] == {"type": "tool", "name": "f"}


def test_tool_choice_without_tools_is_not_sent() -> None:
    assert "tool_choice" not in chat_params(
        request(tool_choice="auto"), include_usage=True, max_tokens_field="max_tokens"
    )
    assert "tool_choice" not in messages_params(request(tool_choice="auto"), default_max_tokens=1)


def test_openai_usage_request_can_be_turned_off() -> None:
    params = chat_params(request(max_tokens=5), include_usage=False, max_tokens_field="max_tokens")
    assert "stream_options" not in params
    assert params["max_tokens"] == 5
    official = chat_params(
        request(max_tokens=5), include_usage=True, max_tokens_field="max_completion_tokens"
    )
    assert official["max_completion_tokens"] == 5 and "max_tokens" not in official
