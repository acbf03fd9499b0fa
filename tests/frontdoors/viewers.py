"""Viewers of a generation through the official SDKs' own streaming machinery.

A joiner or a resuming client is what an app would write: the SDK's low-level
`get` with `format=` and a `Last-Event-ID` header, parsed by the SDK's `Stream`
and accumulated by its own helpers (`ChatCompletionStreamState`,
`AsyncMessageStream`), so every connection must be a stream those parse alone.
"""

from __future__ import annotations

from typing import Any, cast

import anthropic
import httpx
import openai
from anthropic.lib.streaming import AsyncMessageStream
from anthropic.types import Message, RawMessageStreamEvent
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk, ParsedChatCompletion

from tests.support.sse import SseEvent, read_sse


def _options(format_name: str, last_event_id: str | None) -> Any:
    """SDK request options (the SDKs' `RequestOptions` TypedDict) for the events URL."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    return {"params": {"format": format_name}, "headers": headers}


# The SDKs cast stream events to this union at runtime; mypy sees a type alias, not a class.
RAW_MESSAGE_STREAM_EVENT: Any = cast(Any, RawMessageStreamEvent)


async def openai_view(
    client: openai.AsyncOpenAI, gen_id: str, last_event_id: str | None = None
) -> ParsedChatCompletion[None]:
    stream = await client.get(
        f"/generations/{gen_id}/events",
        cast_to=ChatCompletionChunk,
        options=_options("openai", last_event_id),
        stream=True,
        stream_cls=openai.AsyncStream[ChatCompletionChunk],
    )
    state: ChatCompletionStreamState[None] = ChatCompletionStreamState()
    async for chunk in stream:
        state.handle_chunk(chunk)
    return state.get_final_completion()


async def anthropic_view(
    client: anthropic.AsyncAnthropic, gen_id: str, last_event_id: str | None = None
) -> Message:
    raw = await client.get(
        f"/v1/generations/{gen_id}/events",
        cast_to=RAW_MESSAGE_STREAM_EVENT,
        options=_options("anthropic", last_event_id),
        stream=True,
        stream_cls=anthropic.AsyncStream[RawMessageStreamEvent],
    )
    stream: AsyncMessageStream[None] = AsyncMessageStream(raw, anthropic.NOT_GIVEN)
    async for _event in stream:
        pass
    return await stream.get_final_message()


def message_text(message: Message) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


async def native_events(http: httpx.AsyncClient, gen_id: str) -> list[SseEvent]:
    """The stored events of a generation, as the native format sends them."""
    reading = await read_sse(http, f"/v1/generations/{gen_id}/events")
    assert reading.closed_by_server
    return reading.events


def native_text_through(events: list[SseEvent], last_id: str) -> str:
    """The text a client has once it has every event up to and including `last_id`."""
    text = ""
    for event in events:
        if event.event == "delta":
            text += event.json().get("text") or ""
        elif event.event == "reset":
            text = ""
        if event.id == last_id:
            break
    return text
