"""One generation, many SDK clients: joining mid-stream and resuming from any event."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anthropic
import httpx
import openai

from services.providers.demo import story_tokens
from tests.frontdoors.viewers import (
    anthropic_view,
    message_text,
    native_events,
    native_text_through,
    openai_view,
)
from tests.support.sse import SseEvent, iter_sse
from tests.support.stack import Stack


async def create_story(http: httpx.AsyncClient, prompt: str, tokens: int) -> str:
    body = {"model": "demo/story", "messages": [{"role": "user", "content": prompt}]}
    response = await http.post("/v1/generations", json={**body, "max_tokens": tokens})
    assert response.status_code == 202, response.text
    gen_id: str = response.json()["id"]
    return gen_id


async def test_openai_resume_from_every_event(
    client: httpx.AsyncClient, openai_client: openai.AsyncOpenAI
) -> None:
    gen_id = await create_story(client, "resume me", 40)
    events = await native_events(client, gen_id)
    full = "".join(story_tokens("resume me", 40))

    for event in events[:-1]:
        assert event.id is not None
        resumed = await openai_view(openai_client, gen_id, last_event_id=event.id)
        before = native_text_through(events, event.id)
        assert before + (resumed.choices[0].message.content or "") == full, event
        assert resumed.choices[0].finish_reason == "stop"
        assert resumed.id == "chatcmpl-" + gen_id.removeprefix("gen_")
    await assert_stops_at_the_end(client, gen_id, "openai", events[-1].id)


async def assert_stops_at_the_end(
    client: httpx.AsyncClient, gen_id: str, format_name: str, terminal_id: str | None
) -> None:
    """A client that has the terminal event is told to stop reconnecting: 204."""
    answer = await client.get(
        f"/v1/generations/{gen_id}/events",
        params={"format": format_name},
        headers={"Last-Event-ID": terminal_id or ""},
    )
    assert answer.status_code == 204


async def test_anthropic_resume_from_every_event(
    client: httpx.AsyncClient, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    gen_id = await create_story(client, "resume me too", 40)
    events = await native_events(client, gen_id)
    full = "".join(story_tokens("resume me too", 40))

    for event in events[:-1]:
        assert event.id is not None
        resumed = await anthropic_view(anthropic_client, gen_id, last_event_id=event.id)
        before = native_text_through(events, event.id)
        assert before + message_text(resumed) == full, event
        assert resumed.stop_reason == "end_turn"
        assert resumed.usage.output_tokens == 40
    await assert_stops_at_the_end(client, gen_id, "anthropic", events[-1].id)


async def read_some(
    stack: Stack, path: str, body: dict[str, Any], count: int
) -> tuple[str, list[SseEvent]]:
    """Open a streaming POST, read `count` events, and drop the connection."""
    events: list[SseEvent] = []
    async with (
        httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http,
        http.stream("POST", path, json=body) as response,
    ):
        assert response.status_code == 200
        gen_id = response.headers["x-generation-id"]
        async for item in iter_sse(response):
            if isinstance(item, SseEvent):
                events.append(item)
                if len(events) == count:
                    break
    return gen_id, events


async def test_openai_clients_join_and_resume_live(
    stack: Stack, openai_client: openai.AsyncOpenAI
) -> None:
    prompt, tokens = "three viewers", 300
    body = {
        "model": "demo/story",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": tokens,
        "stream": True,
    }
    gen_id, first_part = await read_some(stack, "/v1/chat/completions", body, count=4)
    seen = "".join(
        json.loads(e.data)["choices"][0]["delta"].get("content") or "" for e in first_part
    )
    assert first_part[-1].id is not None

    joined, resumed = await asyncio.gather(
        openai_view(openai_client, gen_id),
        openai_view(openai_client, gen_id, last_event_id=first_part[-1].id),
    )

    full = "".join(story_tokens(prompt, tokens))
    assert joined.choices[0].message.content == full
    assert seen + (resumed.choices[0].message.content or "") == full


async def test_anthropic_clients_join_and_resume_live(
    stack: Stack, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    prompt, tokens = "three more viewers", 300
    body = {
        "model": "demo/story",
        "max_tokens": tokens,
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
    }
    gen_id, first_part = await read_some(stack, "/v1/messages", body, count=6)
    seen = "".join(
        e.json()["delta"].get("text", "") for e in first_part if e.event == "content_block_delta"
    )
    assert first_part[-1].id is not None

    async with anthropic_client.messages.stream(
        model="demo/story", max_tokens=tokens, messages=[{"role": "user", "content": prompt}]
    ) as own_stream:
        joined, resumed, own = await asyncio.gather(
            anthropic_view(anthropic_client, gen_id),
            anthropic_view(anthropic_client, gen_id, last_event_id=first_part[-1].id),
            own_stream.get_final_message(),
        )

    full = "".join(story_tokens(prompt, tokens))
    assert message_text(own) == full
    assert message_text(joined) == full
    assert seen + message_text(resumed) == full


async def test_tool_call_resumes_from_every_event(
    stack: Stack,
    client: httpx.AsyncClient,
    openai_client: openai.AsyncOpenAI,
    anthropic_client: anthropic.AsyncAnthropic,
) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    }
    created = await client.post(
        "/v1/generations",
        json={
            "model": "demo/tool",
            "messages": [{"role": "user", "content": "a long enough query to fragment"}],
            "tools": [tool],
        },
    )
    gen_id = created.json()["id"]
    events = await native_events(client, gen_id)
    full_arguments = json.dumps({"query": "a long enough query to fragment"}, separators=(",", ":"))

    for format_name in ("openai", "anthropic"):
        await assert_stops_at_the_end(client, gen_id, format_name, events[-1].id)
    for event in events[:-1]:
        assert event.id is not None
        before = ""
        for earlier in events:
            if earlier.event == "delta":
                before += earlier.json()["tool_call"]["arguments"]
            if earlier.id == event.id:
                break
        completion = await openai_view(openai_client, gen_id, last_event_id=event.id)
        calls = completion.choices[0].message.tool_calls or []
        assert completion.choices[0].finish_reason == "tool_calls"
        assert [call.function.name for call in calls] == ["lookup"]
        assert before + calls[0].function.arguments == full_arguments

        message = await anthropic_view(anthropic_client, gen_id, last_event_id=event.id)
        assert message.stop_reason == "tool_use"
        assert [block.type for block in message.content] == ["tool_use"]
        block = message.content[0]
        assert block.type == "tool_use" and block.name == "lookup"
        assert block.id == calls[0].id
        # Anthropic restarts the open tool call's input on a resumed connection.
        assert block.input == {"query": "a long enough query to fragment"}
