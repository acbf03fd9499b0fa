"""Any model through either door, and one generation read through both formats."""

from __future__ import annotations

import json

import anthropic
import httpx
import openai
import pytest
from anthropic.types import MessageParam, ToolParam
from openai.types.chat import ChatCompletionChunk, ChatCompletionFunctionToolParam

from services.providers.demo import story_tokens
from tests.frontdoors.viewers import anthropic_view, message_text, openai_view

TOOL_OPENAI: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "search",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    },
}
TOOL_ANTHROPIC: ToolParam = {
    "name": "search",
    "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
}


async def test_openai_created_generation_read_as_anthropic(
    openai_client: openai.AsyncOpenAI, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    raw = await openai_client.chat.completions.with_raw_response.create(
        model="demo/story",
        messages=[{"role": "user", "content": "crossing over"}],
        max_tokens=25,
        stream=True,
    )
    gen_id = raw.headers["x-generation-id"]
    stream = raw.parse()
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    as_anthropic = await anthropic_view(anthropic_client, gen_id)

    assert text == "".join(story_tokens("crossing over", 25))
    assert message_text(as_anthropic) == text
    assert as_anthropic.id == "msg_" + gen_id.removeprefix("gen_")


async def test_anthropic_tool_use_read_as_openai(
    openai_client: openai.AsyncOpenAI, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    raw = await anthropic_client.messages.with_raw_response.create(
        model="demo/tool",
        max_tokens=50,
        tools=[TOOL_ANTHROPIC],
        messages=[{"role": "user", "content": "tokenrelay"}],
    )
    message = await raw.parse()
    gen_id = raw.headers["x-generation-id"]

    as_openai = await openai_view(openai_client, gen_id)

    tool_use = message.content[0]
    assert tool_use.type == "tool_use" and tool_use.input == {"q": "tokenrelay"}
    calls = as_openai.choices[0].message.tool_calls or []
    assert [(c.id, c.function.name) for c in calls] == [(tool_use.id, "search")]
    assert json.loads(calls[0].function.arguments) == tool_use.input
    assert as_openai.choices[0].finish_reason == "tool_calls"


async def test_conversation_with_tool_turns_crosses_doors(
    openai_client: openai.AsyncOpenAI, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    """A tool call made through one door, answered through the other."""
    completion = await openai_client.chat.completions.create(
        model="demo/tool",
        messages=[{"role": "user", "content": "weather"}],
        tools=[TOOL_OPENAI],
    )
    call = (completion.choices[0].message.tool_calls or [])[0]
    assert call.type == "function"

    conversation: list[MessageParam] = [
        {"role": "user", "content": "weather"},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": call.id,
                    "name": call.function.name,
                    "input": json.loads(call.function.arguments),
                }
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": call.id,
                    "content": [{"type": "text", "text": "rain"}],
                }
            ],
        },
    ]
    answer = await anthropic_client.messages.create(
        model="demo/tool", max_tokens=50, tools=[TOOL_ANTHROPIC], messages=conversation
    )
    assert answer.content[0].type == "text" and answer.content[0].text == "rain"


async def test_joiners_get_the_usage_chunk_the_creator_asked_for(
    client: httpx.AsyncClient, openai_client: openai.AsyncOpenAI
) -> None:
    raw = await openai_client.chat.completions.with_raw_response.create(
        model="demo/echo",
        messages=[{"role": "user", "content": "count me"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    gen_id = raw.headers["x-generation-id"]
    chunks = [chunk async for chunk in raw.parse()]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None

    stream = await openai_client.get(
        f"/generations/{gen_id}/events",
        cast_to=ChatCompletionChunk,
        options={"params": {"format": "openai"}},
        stream=True,
        stream_cls=openai.AsyncStream[ChatCompletionChunk],
    )
    joined = [chunk async for chunk in stream]
    assert joined[-1].choices == []
    assert joined[-1].usage == chunks[-1].usage


@pytest.mark.parametrize("door", ["openai", "anthropic"])
async def test_cancel_ends_the_door_streams_with_an_error(
    door: str,
    client: httpx.AsyncClient,
    openai_client: openai.AsyncOpenAI,
    anthropic_client: anthropic.AsyncAnthropic,
) -> None:
    created = await client.post(
        "/v1/generations",
        json={
            "model": "demo/story",
            "messages": [{"role": "user", "content": "a long one"}],
            "max_tokens": 5000,
        },
    )
    gen_id = created.json()["id"]
    cancelled = await client.post(f"/v1/generations/{gen_id}/cancel")
    assert cancelled.status_code == 202

    if door == "openai":
        with pytest.raises(openai.APIError) as openai_error:
            await openai_view(openai_client, gen_id)
        assert "cancelled" in openai_error.value.message
    else:
        with pytest.raises(anthropic.APIStatusError) as anthropic_error:
            await anthropic_view(anthropic_client, gen_id)
        assert "cancelled" in str(anthropic_error.value)
