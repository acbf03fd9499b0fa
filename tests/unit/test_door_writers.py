"""The SSE bytes each format writes for representative generations, and what SDKs make of them.

The recorded bodies under tests/unit/fixtures/ (`<case>.<format>.sse`) are the
exact bytes the native, OpenAI and Anthropic writers produce for the cases in
tests/unit/transcripts.py, as the anthropic SDK's tests keep recorded streams.
Any change to a writer's output fails here, byte for byte, so a change to the
wire is always a deliberate one. To re-record after such a change, run

    TOKENRELAY_RECORD_FIXTURES=1 .venv/bin/pytest tests/unit/test_door_writers.py

and review the diff of tests/unit/fixtures/ like any other change to the contract.

The recorded bodies are then parsed by the official `openai` and `anthropic`
SDKs' own stream classes (over an in-memory response, no network), which proves
they are streams those SDKs accept and assemble into the right answer.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from anthropic.lib.streaming import MessageStream
from anthropic.types import RawMessageStreamEvent
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from api.formats.anthropic import AnthropicEventFormat
from api.formats.anthropic import message as anthropic_message
from api.formats.native import NativeFormat
from api.formats.openai import OpenAIChunkFormat, chat_completion
from api.formats.transcript import Transcript
from services.events import StoredEvent
from services.generation import GenerationStatus
from tests.support.sse import SseEvent, iter_sse
from tests.unit.transcripts import (
    CASES,
    CREATED_AT,
    FORMATS,
    GEN_ID,
    MODEL,
    Case,
    door_writer,
    render,
)

FIXTURES = Path(__file__).parent / "fixtures"
RECORD = os.environ.get("TOKENRELAY_RECORD_FIXTURES") == "1"
PING = b": ping\n\n"


def fixture_path(case: str, format_name: str) -> Path:
    return FIXTURES / f"{case}.{format_name}.sse"


@pytest.mark.parametrize("format_name", FORMATS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_writer_output_matches_the_recorded_stream(case: str, format_name: str) -> None:
    body = render(format_name, CASES[case])
    path = fixture_path(case, format_name)
    if RECORD:
        FIXTURES.mkdir(exist_ok=True)
        path.write_bytes(body)
    assert path.exists(), f"{path.name} is not recorded: run with TOKENRELAY_RECORD_FIXTURES=1"
    assert body == path.read_bytes()


# --- what the SDKs make of the recorded streams -------------------------------------


def wire(format_name: str, case: str) -> bytes:
    """The recorded body as a connection carries it: the API's `retry:` first and a
    heartbeat after every event, each chunk passed through the writer's transport."""
    writer = door_writer(format_name)
    frames = fixture_path(case, format_name).read_bytes().split(b"\n\n")[:-1]
    chunks: list[bytes] = [b"retry: 3000\n\n"]
    for frame in frames:
        chunks += [frame + b"\n\n", PING]
    return b"".join(writer.transport(chunk) for chunk in chunks)


def sdk_response(body: bytes) -> httpx2.Response:
    request = httpx2.Request("POST", "http://relay.invalid/v1/stream")
    return httpx2.Response(
        200, content=body, headers={"content-type": "text/event-stream"}, request=request
    )


def openai_chunks(body: bytes) -> openai.Stream[ChatCompletionChunk]:
    client = openai.OpenAI(api_key="unused", base_url="http://relay.invalid/v1", max_retries=0)
    return openai.Stream(cast_to=ChatCompletionChunk, response=sdk_response(body), client=client)


def openai_completion(body: bytes) -> ChatCompletion:
    """What the openai SDK's own accumulator builds from a stream of chunks."""
    state = ChatCompletionStreamState()
    for chunk in openai_chunks(body):
        state.handle_chunk(chunk)
    return state.get_final_completion()


def anthropic_events(body: bytes) -> anthropic.Stream[RawMessageStreamEvent]:
    client = anthropic.Anthropic(api_key="unused", base_url="http://relay.invalid", max_retries=0)
    return anthropic.Stream(
        cast_to=RawMessageStreamEvent,  # type: ignore[arg-type]  # a union, as the SDK passes it
        response=sdk_response(body),
        client=client,
    )


def anthropic_message_of(body: bytes) -> anthropic.types.Message:
    """What the anthropic SDK's `MessageStream` assembles from the events."""
    return MessageStream(
        anthropic_events(body), output_format=anthropic.NOT_GIVEN
    ).get_final_message()


def test_openai_sdk_assembles_text_and_usage() -> None:
    completion = openai_completion(wire("openai", "text"))
    assert completion.id == "chatcmpl-0123456789abcdef0123456789abcdef"
    assert completion.model == MODEL
    assert completion.created == int(CREATED_AT)
    choice = completion.choices[0]
    assert choice.message.content == "Hello, wörld — “quoted”"
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (12, 5)


def test_openai_sdk_assembles_tool_calls_with_stable_ids() -> None:
    message = openai_completion(wire("openai", "tool_call")).choices[0].message
    assert message.content == "Let me check."
    calls = [
        (call.id, call.function.name, call.function.arguments)
        for call in message.tool_calls or []
        if call.type == "function"
    ]
    assert calls == [
        ("call_weather", "get_weather", '{"city": "Paris"}'),
        ("call_0123456789abcdef01234567_1", "get_time", "{}"),
    ]


def test_anthropic_sdk_assembles_text_and_usage() -> None:
    message = anthropic_message_of(wire("anthropic", "text"))
    assert message.id == "msg_0123456789abcdef0123456789abcdef"
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "Hello, wörld — “quoted”"  # type: ignore[union-attr]  # a content block union; the case puts this kind here
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 5)


def test_anthropic_sdk_assembles_tool_use_blocks() -> None:
    message = anthropic_message_of(wire("anthropic", "tool_call"))
    assert message.stop_reason == "tool_use"
    assert [
        block.model_dump(include={"type", "id", "name", "input"}) for block in message.content
    ] == [
        {"type": "text"},
        {
            "type": "tool_use",
            "id": "call_weather",
            "name": "get_weather",
            "input": {"city": "Paris"},
        },
        {
            "type": "tool_use",
            "id": "toolu_0123456789abcdef01234567_2",
            "name": "get_time",
            "input": {},
        },
    ]


def test_a_resumed_anthropic_connection_parses_alone_with_the_open_tool_input_whole() -> None:
    """SDKs parse every connection from scratch, so the input of a tool call open at
    the cursor is sent again from its start: `input_json_delta` cannot be parsed from
    its middle."""
    message = anthropic_message_of(wire("anthropic", "resumed_in_tool_call"))
    assert [block.type for block in message.content] == ["text", "tool_use"]
    assert message.content[0].text == ""  # type: ignore[union-attr]  # re-announced, not repeated
    assert message.content[1].input == {"city": "Paris"}  # type: ignore[union-attr]  # a content block union; the case puts this kind here


def test_a_reset_before_any_output_is_invisible_to_both_sdks() -> None:
    """Nothing of the void attempt reached the client, so there is nothing to take back."""
    chunks = list(openai_chunks(wire("openai", "reset_before_output")))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Fresh answer."
    )
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    message = anthropic_message_of(wire("anthropic", "reset_before_output"))
    assert message.content[0].text == "Fresh answer."  # type: ignore[union-attr]  # a content block union; the case puts this kind here
    assert message.stop_reason == "max_tokens"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("error", "upstream answered 500"),
        ("cancelled", "the generation was cancelled"),
        ("reset_mid_stream", "discard the partial text received so far"),
    ],
)
def test_failures_cancels_and_resets_raise_in_the_openai_sdk(case: str, message: str) -> None:
    """A program using the SDK learns the answer is not whole: it gets an exception,
    never a stream that merely ends."""
    with pytest.raises(openai.APIError, match=message):
        list(openai_chunks(wire("openai", case)))


@pytest.mark.parametrize(
    ("case", "error_type", "message"),
    [
        ("error", "api_error", "upstream answered 500"),
        ("cancelled", "api_error", "the generation was cancelled"),
        ("reset_mid_stream", "api_error", "discard the partial text received so far"),
    ],
)
def test_failures_cancels_and_resets_raise_in_the_anthropic_sdk(
    case: str, error_type: str, message: str
) -> None:
    with pytest.raises(anthropic.APIStatusError, match=message) as raised:
        list(anthropic_events(wire("anthropic", case)))
    assert isinstance(raised.value.body, dict)
    assert raised.value.body["error"]["type"] == error_type


# --- ids, resets and resumes ---------------------------------------------------------


def parse(body: bytes) -> list[SseEvent]:
    async def collect() -> list[SseEvent]:
        response = httpx.Response(200, content=body)
        return [item async for item in iter_sse(response) if isinstance(item, SseEvent)]

    return asyncio.run(collect())


@pytest.mark.parametrize("format_name", ["openai", "anthropic"])
def test_only_the_last_frame_of_a_stored_event_carries_its_id(format_name: str) -> None:
    """So a client's Last-Event-ID names a stored event whose output it has in full."""
    events = CASES["tool_call"].events
    writer = door_writer(format_name)
    previous = events[0].id
    for event in events:
        frames = parse(writer.encode(event))
        if not frames:
            continue
        assert frames[-1].id == event.id
        assert all(frame.id == previous for frame in frames[:-1])
        previous = event.id


@pytest.mark.parametrize("format_name", ["openai", "anthropic"])
def test_after_a_reset_the_writer_closes_and_the_resume_is_a_fresh_answer(format_name: str) -> None:
    events = CASES["reset_mid_stream"].events
    reset = next(event for event in events if event.type == "reset")
    live = door_writer(format_name)
    for event in events[:3]:
        live.encode(event)
    assert live.closed
    assert all(live.encode(event) == b"" for event in events[3:])

    resumed = door_writer(format_name)  # what door_stream serves from the reset's id
    for event in events[: events.index(reset) + 1]:
        resumed.absorb(event)
    body = resumed.opening() + b"".join(resumed.encode(event) for event in events[3:])
    if format_name == "openai":
        assert openai_completion(body).choices[0].message.content == "Once upon a time."
    else:
        assert anthropic_message_of(body).content[0].text == "Once upon a time."  # type: ignore[union-attr]  # a content block union; the case puts this kind here


def text_of(format_name: str, body: bytes) -> str:
    texts = []
    for frame in parse(body):
        payload: Any = None if frame.data == "[DONE]" else frame.json()
        if format_name == "openai" and payload and payload.get("choices"):
            texts.append(payload["choices"][0]["delta"].get("content") or "")
        elif format_name == "anthropic" and frame.event == "content_block_delta":
            texts.append(payload["delta"].get("text", ""))
    return "".join(texts)


@pytest.mark.parametrize("format_name", ["openai", "anthropic"])
def test_resuming_at_any_cursor_neither_skips_nor_repeats_text(format_name: str) -> None:
    events = CASES["text"].events
    whole = text_of(format_name, render(format_name, Case(events)))
    assert whole == "Hello, wörld — “quoted”"
    for cursor in range(1, len(events)):
        first = render(format_name, Case(events[:cursor]))
        second = render(format_name, Case(events, cursor=cursor))
        assert text_of(format_name, first) + text_of(format_name, second) == whole, cursor


@pytest.mark.parametrize("format_name", ["openai", "anthropic"])
def test_a_connection_cut_by_shutdown_says_where_to_resume(format_name: str) -> None:
    events = CASES["text"].events
    writer = door_writer(format_name)
    body = b"".join(writer.encode(event) for event in events[:2]) + writer.interrupted()
    last = parse(body)[-1]
    error = last.json()["error"]
    assert error["generation_id"] == GEN_ID
    assert error["last_event_id"] == events[1].id
    assert f"format={format_name}" in error["message"]
    assert writer.closed


def snapshot() -> GenerationStatus:
    return GenerationStatus(
        id=GEN_ID,
        status="running",
        model=MODEL,
        content="Hello",
        tool_calls=[],
        finish_reason=None,
        usage=None,
        error=None,
        attempt=1,
        created_at=CREATED_AT,
        started_at=CREATED_AT,
        finished_at=None,
        last_event_id="1732435200002-0",
    )


def test_resync_in_the_native_format_carries_the_snapshot_to_rebuild_from() -> None:
    (event,) = parse(NativeFormat().resync(snapshot()))
    assert (event.id, event.event) == ("1732435200002-0", "resync")
    assert event.json()["content"] == "Hello"


@pytest.mark.parametrize("format_name", ["openai", "anthropic"])
def test_resync_in_a_door_format_is_an_error_pointing_at_the_status(format_name: str) -> None:
    writer = door_writer(format_name)
    (event,) = parse(writer.resync(snapshot()))
    assert event.id == "1732435200002-0"
    assert f"GET /v1/generations/{GEN_ID}" in event.json()["error"]["message"]
    assert writer.closed


def test_openai_transport_keeps_comments_and_retry_out_of_the_sdk_event_boundaries() -> None:
    """The openai SDK fails on an event with no data once it has seen an `id:`; a
    comment or `retry:` sent without its blank line is still ignored or applied by
    every SSE parser."""
    writer = OpenAIChunkFormat(GEN_ID, MODEL, CREATED_AT)
    assert writer.transport(b": ping\n\n") == b": ping\n"
    assert writer.transport(b"retry: 300\n\n") == b"retry: 300\n"
    frame = b"id: 1-0\ndata: {}\n\n"
    assert writer.transport(frame) == frame
    assert AnthropicEventFormat(GEN_ID, MODEL, CREATED_AT).transport(b": ping\n\n") == b": ping\n\n"


# --- the non-streaming answers --------------------------------------------------------


def folded(events: Iterable[StoredEvent]) -> Transcript:
    transcript = Transcript()
    for event in events:
        transcript.apply(event.decoded())
    return transcript


def test_non_streaming_answers_parse_as_the_sdks_types() -> None:
    transcript = folded(CASES["tool_call"].events)
    completion = ChatCompletion.model_validate(
        chat_completion(transcript, GEN_ID, MODEL, CREATED_AT)
    )
    assert completion.choices[0].finish_reason == "tool_calls"
    assert [call.id for call in completion.choices[0].message.tool_calls or []] == [
        "call_weather",
        "call_0123456789abcdef01234567_1",
    ]
    message = anthropic.types.Message.model_validate(anthropic_message(transcript, GEN_ID, MODEL))
    assert [block.type for block in message.content] == ["text", "tool_use", "tool_use"]
    assert message.content[1].input == {"city": "Paris"}  # type: ignore[union-attr]  # a content block union; the case puts this kind here


def test_anthropic_input_that_is_not_a_json_object_is_kept_not_dropped() -> None:
    """Anthropic's `input` must be an object; arguments a model got wrong stay visible."""
    fragment = {"index": 0, "id": "c", "name": "f", "arguments": "not json"}
    transcript = folded(
        [
            *CASES["tool_call"].events[:2],
            StoredEvent("1732435200010-0", "delta", json.dumps({"tool_call": fragment})),
            StoredEvent("1732435200011-0", "done", '{"finish_reason":"tool_calls","usage":null}'),
        ]
    )
    content = anthropic_message(transcript, GEN_ID, MODEL)["content"]
    assert content[1]["input"] == {"arguments": "not json"}
