"""What real clients send back: the SDKs' own answer objects in the next request.

The tool loop of the OpenAI and Anthropic docs appends the answer's message (or
content blocks, or output items) to the conversation as the SDK returned it, then
the tool's result, and calls again. Everything the door itself answered must be
accepted; genuinely unsupported input is still a precise 400.
"""

from __future__ import annotations

import json

import anthropic
import httpx
import openai
import pytest
from anthropic.types import MessageParam, ToolParam
from openai.types.chat import ChatCompletionFunctionToolParam, ChatCompletionMessageParam

from tests.support.sse import read_sse

CITY_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CITY_TOOL_ANTHROPIC: ToolParam = {
    "name": "get_weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


async def test_openai_sdk_tool_loop_with_the_completion_message(
    openai_client: openai.AsyncOpenAI,
) -> None:
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Rome"}]
    first = await openai_client.chat.completions.create(
        model="demo/tool", messages=messages, tools=[CITY_TOOL]
    )
    message = first.choices[0].message
    assert message.tool_calls
    messages.append(message)  # type: ignore[arg-type]  # what the SDK docs do
    call = message.tool_calls[0]
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "Warm, 28 C"})
    second = await openai_client.chat.completions.create(
        model="demo/tool", messages=messages, tools=[CITY_TOOL]
    )
    assert second.choices[0].message.content == "Warm, 28 C"


async def test_openai_sdk_tool_loop_with_a_streamed_final_message(
    openai_client: openai.AsyncOpenAI,
) -> None:
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Kyoto"}]
    async with openai_client.chat.completions.stream(
        model="demo/tool", messages=messages, tools=[CITY_TOOL]
    ) as stream:
        final = await stream.get_final_completion()
    message = final.choices[0].message  # a ParsedChatCompletionMessage, with `parsed`
    assert message.tool_calls
    messages.append(message)  # type: ignore[arg-type]
    messages.append({"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "Rain"})
    second = await openai_client.chat.completions.create(
        model="demo/tool", messages=messages, tools=[CITY_TOOL]
    )
    assert second.choices[0].message.content == "Rain"


async def test_upstream_assistant_fields_are_accepted(client: httpx.AsyncClient) -> None:
    """What OpenAI itself returns on an assistant message (an answer of a past upstream)."""
    assistant = {
        "role": "assistant",
        "content": "Earlier answer.",
        "refusal": None,
        "annotations": [{"type": "url_citation", "url_citation": {"url": "https://x.invalid"}}],
        "audio": None,
        "function_call": None,
        "tool_calls": None,
    }
    answer = await client.post(
        "/v1/chat/completions",
        json={
            "model": "demo/echo",
            "messages": [
                {"role": "user", "content": "q"},
                assistant,
                {"role": "user", "content": "again"},
            ],
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "again"

    spoken = {**assistant, "content": None, "audio": {"id": "audio_1", "transcript": "Said."}}
    answer = await client.post(
        "/v1/chat/completions",
        json={
            "model": "demo/echo",
            "messages": [
                {"role": "user", "content": "q"},
                spoken,
                {"role": "user", "content": "ok"},
            ],
        },
    )
    assert answer.status_code == 200, answer.text


async def test_unsupported_input_is_still_a_precise_400(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/v1/chat/completions",
        json={
            "model": "demo/echo",
            "messages": [{"role": "user", "content": "q", "surprise": 1}],
        },
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == (
        "Unrecognized request argument supplied: messages.0.surprise"
    )
    image = {"type": "image_url", "image_url": {"url": "https://x.invalid/a.png"}}
    answer = await client.post(
        "/v1/chat/completions",
        json={"model": "demo/echo", "messages": [{"role": "user", "content": [image]}]},
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "messages.0.content.0"


async def test_anthropic_sdk_tool_loop_with_the_response_content(
    anthropic_client: anthropic.AsyncAnthropic,
) -> None:
    messages: list[MessageParam] = [{"role": "user", "content": "Nice"}]
    first = await anthropic_client.messages.create(
        model="demo/tool", max_tokens=64, messages=messages, tools=[CITY_TOOL_ANTHROPIC]
    )
    tool_use = next(block for block in first.content if block.type == "tool_use")
    messages.append({"role": "assistant", "content": first.content})  # as the docs do
    messages.append(
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "Mild"}],
        }
    )
    second = await anthropic_client.messages.create(
        model="demo/tool", max_tokens=64, messages=messages, tools=[CITY_TOOL_ANTHROPIC]
    )
    assert second.content[0].type == "text" and second.content[0].text == "Mild"

    # A streamed final message's content, sent back the same way.
    async with anthropic_client.messages.stream(
        model="demo/tool", max_tokens=64, messages=messages[:1], tools=[CITY_TOOL_ANTHROPIC]
    ) as stream:
        streamed = await stream.get_final_message()
    again: list[MessageParam] = [
        messages[0],
        {"role": "assistant", "content": streamed.content},
        messages[2],
    ]
    third = await anthropic_client.messages.create(
        model="demo/tool", max_tokens=64, messages=again, tools=[CITY_TOOL_ANTHROPIC]
    )
    assert third.content[0].type == "text" and third.content[0].text == "Mild"


async def test_responses_tool_loop_with_the_output_items(
    openai_client: openai.AsyncOpenAI,
) -> None:
    tool = {
        "type": "function",
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        "strict": False,
    }
    first = await openai_client.responses.create(
        model="demo/tool",
        input="Bergen",
        tools=[tool],  # type: ignore[list-item]
    )
    call = next(item for item in first.output if item.type == "function_call")
    history: list[object] = [{"role": "user", "content": "Bergen"}, *first.output]
    history.append({"type": "function_call_output", "call_id": call.call_id, "output": "Wet"})
    second = await openai_client.responses.create(
        model="demo/tool",
        input=history,  # type: ignore[arg-type]  # the SDK's own output items, sent back
        tools=[tool],  # type: ignore[list-item]
    )
    assert json.loads(call.arguments) == {"city": "Bergen"}
    assert second.output_text == "Wet"
    # And the answer's message item sent back as the next input, as it is.
    third = await openai_client.responses.create(
        model="demo/echo",
        input=[*second.output, {"role": "user", "content": "thanks"}],  # type: ignore[list-item]
    )
    assert third.output_text == "thanks"


@pytest.mark.parametrize("format_name", ["native", "openai", "anthropic", "responses"])
async def test_reconnecting_at_the_terminal_event_is_204(
    client: httpx.AsyncClient, format_name: str
) -> None:
    created = (
        await client.post(
            "/v1/generations",
            json={"model": "demo/echo", "messages": [{"role": "user", "content": "stop now"}]},
        )
    ).json()
    url = created["events_url"]
    whole = await read_sse(client, url, params={"format": format_name})
    assert whole.closed_by_server and whole.events
    last_id = whole.events[-1].id
    assert last_id is not None

    again = await read_sse(
        client, url, params={"format": format_name}, headers={"Last-Event-ID": last_id}
    )
    assert again.status_code == 204
    by_query = await read_sse(client, url, params={"format": format_name, "last_event_id": last_id})
    assert by_query.status_code == 204
