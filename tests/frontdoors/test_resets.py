"""A provider retry after partial output (`reset`), as OpenAI and Anthropic SDK clients see it.

The generations here are written with the store's own scripts, exactly as a
worker writes them, but by the test, so a reset can be placed between the events
a client has received and the ones it has not. They are never queued, so the
stack's worker does not touch them.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator

import anthropic
import httpx
import openai
import pytest
from anthropic.lib.streaming import AsyncMessageStream
from anthropic.types import RawMessageStreamEvent
from arq.connections import ArqRedis
from openai.types.chat import ChatCompletionChunk
from redis.asyncio import Redis

from api.doors.stream import wait_for_transcript
from api.formats.anthropic import message
from api.formats.openai import chat_completion
from api.metrics import ApiMetrics
from api.state import AppState
from api.streaming.hub import StreamHub
from services import keys
from services.config import Settings
from services.events import DeltaEvent, DoneEvent, Usage, encode_data
from services.generation import GenerationRequest, Message
from services.store import EventBatch, GenerationStore
from tests.frontdoors.viewers import (
    RAW_MESSAGE_STREAM_EVENT,
    anthropic_view,
    message_text,
    native_events,
    openai_view,
)
from tests.support.stack import Stack

FIRST_ATTEMPT = "Hello wor"
SECOND_ATTEMPT = "Goodbye, cruel world."


class ScriptedGeneration:
    """A generation whose events the test writes, through the worker's store calls."""

    def __init__(self, store: GenerationStore) -> None:
        self.store = store
        self.gen_id = keys.new_generation_id()
        self.token = secrets.token_hex(8)

    async def begin(self) -> None:
        request = GenerationRequest(
            model="demo/echo", messages=[Message(role="user", content="scripted")]
        )
        await self.store.create(self.gen_id, request, time.time())
        grant = await self.store.begin_attempt(self.gen_id, self.token, lease_ms=120_000)
        assert not isinstance(grant, str), grant

    async def text(self, text: str) -> None:
        batch = EventBatch(events=[("delta", encode_data(DeltaEvent(text=text)))], text_append=text)
        assert await self.store.publish(self.gen_id, self.token, batch) == "ok"

    async def reset(self) -> None:
        attempt = await self.store.restart_attempt(self.gen_id, self.token, "provider_error")
        assert isinstance(attempt, int), attempt

    async def done(self) -> None:
        done = DoneEvent(finish_reason="stop", usage=Usage(input_tokens=1, output_tokens=3))
        batch = EventBatch(
            events=[("done", encode_data(done))],
            terminal_status="completed",
            finish_reason="stop",
            usage_json=done.usage.model_dump_json() if done.usage else "",
        )
        assert await self.store.publish(self.gen_id, self.token, batch) == "ok"


@pytest.fixture()
async def store(redis_url: str) -> AsyncIterator[GenerationStore]:
    redis = Redis.from_url(redis_url, decode_responses=True)
    yield GenerationStore(redis, retention_s=600, max_stream_events=1000)
    await redis.aclose()


async def reset_event_id(client: httpx.AsyncClient, gen_id: str) -> str:
    events = await native_events(client, gen_id)
    ids = [event.id for event in events if event.event == "reset"]
    assert len(ids) == 1 and ids[0] is not None
    return ids[0]


async def test_openai_client_with_void_text_is_told_and_resumes_the_new_attempt(
    store: GenerationStore, client: httpx.AsyncClient, openai_client: openai.AsyncOpenAI
) -> None:
    generation = ScriptedGeneration(store)
    await generation.begin()
    await generation.text(FIRST_ATTEMPT)
    stream = await openai_client.get(
        f"/generations/{generation.gen_id}/events",
        cast_to=ChatCompletionChunk,
        options={"params": {"format": "openai"}},
        stream=True,
        stream_cls=openai.AsyncStream[ChatCompletionChunk],
    )
    chunks = stream.__aiter__()
    received = ""
    while received != FIRST_ATTEMPT:
        chunk = await asyncio.wait_for(anext(chunks), 30)
        received += chunk.choices[0].delta.content or ""

    await generation.reset()
    await generation.text(SECOND_ATTEMPT)
    await generation.done()

    with pytest.raises(openai.APIError) as raised:
        await asyncio.wait_for(anext(chunks), 30)
    assert not isinstance(raised.value, openai.APIStatusError)
    assert isinstance(raised.value.body, dict) and raised.value.body["type"] == "stream_reset"
    reset_id = await reset_event_id(client, generation.gen_id)
    assert reset_id in raised.value.message
    assert raised.value.body["last_event_id"] == reset_id
    assert raised.value.body["generation_id"] == generation.gen_id

    resumed = await openai_view(openai_client, generation.gen_id, last_event_id=reset_id)
    assert resumed.choices[0].message.content == SECOND_ATTEMPT
    fresh = await openai_view(openai_client, generation.gen_id)
    assert fresh.choices[0].message.content == SECOND_ATTEMPT
    assert fresh.choices[0].finish_reason == "stop"


async def test_anthropic_client_with_void_text_is_told_and_resumes_the_new_attempt(
    store: GenerationStore,
    client: httpx.AsyncClient,
    anthropic_client: anthropic.AsyncAnthropic,
) -> None:
    generation = ScriptedGeneration(store)
    await generation.begin()
    await generation.text(FIRST_ATTEMPT)
    raw = await anthropic_client.get(
        f"/v1/generations/{generation.gen_id}/events",
        cast_to=RAW_MESSAGE_STREAM_EVENT,
        options={"params": {"format": "anthropic"}},
        stream=True,
        stream_cls=anthropic.AsyncStream[RawMessageStreamEvent],
    )
    stream: AsyncMessageStream[None] = AsyncMessageStream(raw, anthropic.NOT_GIVEN)
    texts = stream.text_stream.__aiter__()
    received = ""
    while received != FIRST_ATTEMPT:
        received += await asyncio.wait_for(anext(texts), 30)

    await generation.reset()
    await generation.text(SECOND_ATTEMPT)
    await generation.done()

    with pytest.raises(anthropic.APIStatusError) as raised:
        await asyncio.wait_for(anext(texts), 30)
    body = raised.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    reset_id = await reset_event_id(client, generation.gen_id)
    assert reset_id in body["error"]["message"]
    assert body["error"]["last_event_id"] == reset_id

    resumed = await anthropic_view(anthropic_client, generation.gen_id, last_event_id=reset_id)
    assert message_text(resumed) == SECOND_ATTEMPT
    fresh = await anthropic_view(anthropic_client, generation.gen_id)
    assert message_text(fresh) == SECOND_ATTEMPT
    assert [block.type for block in fresh.content] == ["text"]


async def test_resuming_at_a_reset_skips_attempts_voided_since(
    store: GenerationStore, client: httpx.AsyncClient, openai_client: openai.AsyncOpenAI
) -> None:
    generation = ScriptedGeneration(store)
    await generation.begin()
    await generation.text(FIRST_ATTEMPT)
    await generation.reset()
    await generation.text("also void")
    await generation.reset()
    await generation.text(SECOND_ATTEMPT)
    await generation.done()
    events = await native_events(client, generation.gen_id)
    first_reset = next(event.id for event in events if event.event == "reset")
    first_delta = next(event.id for event in events if event.event == "delta")

    # A client that had the first attempt's text is told once, at the first reset...
    with pytest.raises(openai.APIError) as raised:
        await openai_view(openai_client, generation.gen_id, last_event_id=first_delta)
    assert isinstance(raised.value.body, dict)
    assert raised.value.body["last_event_id"] == first_reset
    # ...and resuming there reads the final attempt, not the one voided after it.
    resumed = await openai_view(openai_client, generation.gen_id, last_event_id=first_reset)
    assert resumed.choices[0].message.content == SECOND_ATTEMPT


async def test_reset_before_any_output_is_invisible(
    store: GenerationStore,
    openai_client: openai.AsyncOpenAI,
    anthropic_client: anthropic.AsyncAnthropic,
) -> None:
    generation = ScriptedGeneration(store)
    await generation.begin()
    viewers = asyncio.gather(
        openai_view(openai_client, generation.gen_id),
        anthropic_view(anthropic_client, generation.gen_id),
    )
    await generation.reset()
    await generation.text(SECOND_ATTEMPT)
    await generation.done()

    completion, message = await asyncio.wait_for(viewers, 60)
    assert completion.choices[0].message.content == SECOND_ATTEMPT
    assert message_text(message) == SECOND_ATTEMPT


async def test_openai_sdk_reads_through_heartbeats(
    stack: Stack,
    store: GenerationStore,
    client: httpx.AsyncClient,
    openai_client: openai.AsyncOpenAI,
    anthropic_client: anthropic.AsyncAnthropic,
) -> None:
    generation = ScriptedGeneration(store)
    await generation.begin()
    viewers = asyncio.gather(
        openai_view(openai_client, generation.gen_id),
        anthropic_view(anthropic_client, generation.gen_id),
    )
    # Wait until a heartbeat has gone out on a connection opened after the viewers'.
    async with client.stream(
        "GET", f"/v1/generations/{generation.gen_id}/events", params={"format": "openai"}
    ) as response:
        async for line in response.aiter_lines():
            if line.startswith(": ping"):
                break
    await generation.text(SECOND_ATTEMPT)
    await generation.done()

    completion, message = await asyncio.wait_for(viewers, 60)
    assert completion.choices[0].message.content == SECOND_ATTEMPT
    assert message_text(message) == SECOND_ATTEMPT


async def test_non_streaming_answers_are_built_from_the_final_attempt(
    store: GenerationStore, redis_url: str
) -> None:
    generation = ScriptedGeneration(store)
    await generation.begin()
    await generation.text(FIRST_ATTEMPT)
    await generation.reset()
    await generation.text(SECOND_ATTEMPT)
    await generation.done()
    queue = ArqRedis.from_url(redis_url)
    reader = Redis.from_url(redis_url, decode_responses=True, single_connection_client=True)
    metrics = ApiMetrics()
    hub = StreamHub(store, reader, metrics)
    await hub.start()
    state = AppState(
        settings=Settings(redis_url=redis_url, heartbeat_s=1),
        redis=store.control,
        queue=queue,
        store=store,
        hub=hub,
        metrics=metrics,
    )
    try:
        transcript = await asyncio.wait_for(wait_for_transcript(state, generation.gen_id), 30)
    finally:
        await hub.stop()
        await reader.aclose()
        await queue.aclose()

    completion = chat_completion(transcript, generation.gen_id, "demo/echo", time.time())
    assert completion["choices"][0]["message"]["content"] == SECOND_ATTEMPT
    assert completion["usage"]["completion_tokens"] == 3
    anthropic_message = message(transcript, generation.gen_id, "demo/echo")
    assert anthropic_message["content"] == [{"type": "text", "text": SECOND_ATTEMPT}]
