"""The official `openai` SDK, unchanged, against `POST /v1/chat/completions`."""

from __future__ import annotations

import json

import httpx
import openai
from openai.types.chat import ChatCompletionFunctionToolParam

from services.providers.demo import story_tokens
from tests.support.sse import iter_sse
from tests.support.stack import Stack

PROMPT = "Resumable streams, shared by every viewer, one base URL away."

WEATHER_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}


async def test_non_streaming_answers_one_chat_completion(openai_client: openai.AsyncOpenAI) -> None:
    raw = await openai_client.chat.completions.with_raw_response.create(
        model="demo/echo",
        messages=[
            {"role": "developer", "content": "Repeat after me."},
            {"role": "user", "content": PROMPT},
        ],
    )
    completion = raw.parse()

    assert raw.headers["x-generation-id"].startswith("gen_")
    assert completion.id == "chatcmpl-" + raw.headers["x-generation-id"].removeprefix("gen_")
    assert completion.object == "chat.completion"
    assert completion.model == "demo/echo"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == PROMPT
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == len(PROMPT.split())
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


async def test_streaming_chunks_with_usage(openai_client: openai.AsyncOpenAI) -> None:
    stream = await openai_client.chat.completions.create(
        model="demo/echo",
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]

    assert {chunk.id for chunk in chunks} == {chunks[0].id}
    assert {chunk.created for chunk in chunks} == {chunks[0].created}
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == PROMPT
    choice_chunks = [c for c in chunks if c.choices]
    assert [c.choices[0].finish_reason for c in choice_chunks][-1] == "stop"
    assert all(c.choices[0].finish_reason is None for c in choice_chunks[:-1])
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage is not None
    assert usage_chunk.usage.completion_tokens == len(PROMPT.split())


async def test_streaming_without_include_usage_has_no_usage_chunk(
    openai_client: openai.AsyncOpenAI,
) -> None:
    stream = await openai_client.chat.completions.create(
        model="demo/story",
        messages=[{"role": "user", "content": "a story"}],
        max_tokens=20,
        stream=True,
    )
    chunks = [chunk async for chunk in stream]

    assert all(chunk.choices for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "".join(story_tokens("a story", 20))


async def test_wire_format_has_ids_and_done(stack: Stack) -> None:
    body = {
        "model": "demo/echo",
        "messages": [{"role": "user", "content": PROMPT}],
        "stream": True,
    }
    async with (
        httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-generation-id"].startswith("gen_")
        events = [item async for item in iter_sse(response) if not isinstance(item, str | int)]

    assert events[-1].data == "[DONE]"
    assert all(event.id for event in events)
    keys = [tuple(map(int, str(event.id).split("-"))) for event in events]
    assert keys == sorted(keys)
    chunks = [json.loads(event.data) for event in events[:-1]]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)


async def test_stream_helper_assembles_the_answer(openai_client: openai.AsyncOpenAI) -> None:
    async with openai_client.chat.completions.stream(
        model="demo/echo", messages=[{"role": "user", "content": PROMPT}]
    ) as stream:
        deltas = [event.delta async for event in stream if event.type == "content.delta"]
        final = await stream.get_final_completion()

    assert "".join(deltas) == PROMPT
    assert final.choices[0].message.content == PROMPT
    assert final.choices[0].finish_reason == "stop"


async def test_tool_call_streams_and_round_trips(openai_client: openai.AsyncOpenAI) -> None:
    question = "Paris"
    async with openai_client.chat.completions.stream(
        model="demo/tool",
        messages=[{"role": "user", "content": question}],
        tools=[WEATHER_TOOL],
    ) as stream:
        final = await stream.get_final_completion()

    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "days": 42}
    assert call.id.startswith("call_")

    answer = await openai_client.chat.completions.create(
        model="demo/tool",
        messages=[
            {"role": "user", "content": question},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": call.function.arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 24 degrees"},
        ],
        tools=[WEATHER_TOOL],
    )
    assert answer.choices[0].message.content == "Sunny, 24 degrees"
    assert answer.choices[0].finish_reason == "stop"


async def test_non_streaming_tool_call(openai_client: openai.AsyncOpenAI) -> None:
    completion = await openai_client.chat.completions.create(
        model="demo/tool",
        messages=[{"role": "user", "content": "Oslo"}],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls"
    assert message.content is None
    assert message.tool_calls is not None
    call = message.tool_calls[0]
    assert call.type == "function"
    assert json.loads(call.function.arguments) == {"city": "Oslo", "days": 42}


async def test_length_limit_through_max_completion_tokens(
    openai_client: openai.AsyncOpenAI,
) -> None:
    completion = await openai_client.chat.completions.create(
        model="demo/echo",
        messages=[{"role": "user", "content": PROMPT}],
        max_completion_tokens=3,
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.choices[0].message.content == " ".join(PROMPT.split(" ")[:3])
