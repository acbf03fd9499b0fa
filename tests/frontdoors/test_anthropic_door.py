"""The official `anthropic` SDK, unchanged, against `POST /v1/messages`."""

from __future__ import annotations

import anthropic
import httpx
from anthropic.types import ToolParam

from services.providers.demo import story_tokens
from tests.support.sse import SseEvent, iter_sse
from tests.support.stack import Stack

PROMPT = "Resumable streams, shared by every viewer, one base URL away."

WEATHER_TOOL: ToolParam = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
}


async def test_non_streaming_answers_one_message(
    anthropic_client: anthropic.AsyncAnthropic,
) -> None:
    raw = await anthropic_client.messages.with_raw_response.create(
        model="demo/echo",
        max_tokens=100,
        system=[{"type": "text", "text": "Repeat after me."}],
        messages=[{"role": "user", "content": [{"type": "text", "text": PROMPT}]}],
    )
    message = await raw.parse()

    assert raw.headers["x-generation-id"].startswith("gen_")
    assert message.id == "msg_" + raw.headers["x-generation-id"].removeprefix("gen_")
    assert message.type == "message" and message.role == "assistant"
    assert message.model == "demo/echo"
    assert len(message.content) == 1 and message.content[0].type == "text"
    assert message.content[0].text == PROMPT
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == len(PROMPT.split())
    assert message.usage.input_tokens > 0


async def test_streaming_event_sequence(anthropic_client: anthropic.AsyncAnthropic) -> None:
    stream = await anthropic_client.messages.create(
        model="demo/echo",
        max_tokens=100,
        system="Repeat after me.",
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
    )
    events = [event async for event in stream]

    kinds = [event.type for event in events]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(kinds[2:-3]) == {"content_block_delta"}
    start = events[0]
    assert start.type == "message_start"
    assert start.message.usage.output_tokens == 0
    text = "".join(
        e.delta.text
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "text_delta"
    )
    assert text == PROMPT
    delta = events[-2]
    assert delta.type == "message_delta"
    assert delta.delta.stop_reason == "end_turn"
    assert delta.usage.output_tokens == len(PROMPT.split())


async def test_stream_helper_text_stream_and_final_message(
    anthropic_client: anthropic.AsyncAnthropic,
) -> None:
    async with anthropic_client.messages.stream(
        model="demo/story", max_tokens=30, messages=[{"role": "user", "content": "a story"}]
    ) as stream:
        pieces = [text async for text in stream.text_stream]
        final = await stream.get_final_message()

    expected = "".join(story_tokens("a story", 30))
    assert "".join(pieces) == expected
    assert final.content[0].type == "text" and final.content[0].text == expected
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 30
    assert final.usage.input_tokens == 2


async def test_tool_use_streams_and_round_trips(
    anthropic_client: anthropic.AsyncAnthropic,
) -> None:
    async with anthropic_client.messages.stream(
        model="demo/tool",
        max_tokens=100,
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "Paris"}],
    ) as stream:
        json_deltas = [
            event.delta.partial_json
            async for event in stream
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta"
        ]
        final = await stream.get_final_message()

    assert "".join(json_deltas) == '{"city":"Paris","days":42}'
    assert final.stop_reason == "tool_use"
    tool_use = final.content[-1]
    assert tool_use.type == "tool_use"
    assert tool_use.name == "get_weather"
    assert tool_use.input == {"city": "Paris", "days": 42}

    answer = await anthropic_client.messages.create(
        model="demo/tool",
        max_tokens=100,
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "Paris"},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": tool_use.id,
                        "name": tool_use.name,
                        "input": tool_use.input,
                    }
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": tool_use.id,
                        "content": "Sunny, 24 degrees",
                    }
                ],
            },
        ],
    )
    assert answer.content[0].type == "text"
    assert answer.content[0].text == "Sunny, 24 degrees"
    assert answer.stop_reason == "end_turn"


async def test_non_streaming_tool_use(anthropic_client: anthropic.AsyncAnthropic) -> None:
    message = await anthropic_client.messages.create(
        model="demo/tool",
        max_tokens=100,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "Oslo"}],
    )
    assert message.stop_reason == "tool_use"
    assert [block.type for block in message.content] == ["tool_use"]
    assert message.content[0].type == "tool_use"
    assert message.content[0].input == {"city": "Oslo", "days": 42}


async def test_wire_format_has_ids_pings_and_names(stack: Stack) -> None:
    body = {
        "model": "demo/echo",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": PROMPT}],
        "stream": True,
    }
    async with (
        httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http,
        http.stream("POST", "/v1/messages", json=body) as response,
    ):
        assert response.status_code == 200
        assert response.headers["x-generation-id"].startswith("gen_")
        events = [item async for item in iter_sse(response) if isinstance(item, SseEvent)]

    names = [event.event for event in events]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-1] == "message_stop"
    assert all(event.json()["type"] == event.event for event in events)
    assert all(event.id for event in events)
    keys = [tuple(map(int, str(event.id).split("-"))) for event in events]
    assert keys == sorted(keys)


async def test_max_tokens_stop_reason(anthropic_client: anthropic.AsyncAnthropic) -> None:
    message = await anthropic_client.messages.create(
        model="demo/echo", max_tokens=3, messages=[{"role": "user", "content": PROMPT}]
    )
    assert message.stop_reason == "max_tokens"
    assert message.content[0].type == "text"
    assert message.content[0].text == " ".join(PROMPT.split(" ")[:3])
