"""The Responses writer: recorded streams, what the openai SDK makes of them, and numbering.

The recorded bodies (`<case>.responses.sse` under tests/unit/fixtures/, re-record
with TOKENRELAY_RECORD_FIXTURES=1) are what a client connected from the start
receives while the generation runs. Sequence numbers must not depend on the
connection: a client resuming `starting_after=N` from the stored events gets the
live stream's events after N, byte for byte, except that a void attempt it had
nothing of is skipped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx2
import openai
import pytest
from openai.lib.streaming.responses import ResponseStreamState
from openai.types.responses import ResponseStreamEvent

from api.formats.responses import ResponseOptions, ResponsesFormat
from services.events import StoredEvent
from tests.unit.transcripts import CASES, CREATED_AT, GEN_ID, MODEL

FIXTURES = Path(__file__).parent / "fixtures"
RECORD = os.environ.get("TOKENRELAY_RECORD_FIXTURES") == "1"
OPTIONS = ResponseOptions(instructions="Be brief.", metadata={"k": "v"})


def writer(after: int = -1) -> ResponsesFormat:
    return ResponsesFormat(GEN_ID, MODEL, CREATED_AT, OPTIONS, after=after)


def live(events: list[StoredEvent]) -> bytes:
    """A client connected before the first event: every event arrives live."""
    fmt = writer()
    return b"".join(fmt.encode(event) for event in events)


def resumed(events: list[StoredEvent], after: int) -> bytes:
    """A client connecting once `events` are stored, with `starting_after=after`."""
    fmt = writer(after)
    return b"".join(fmt.replay(event) for event in events) + fmt.caught_up()


def payloads(body: bytes) -> list[dict[str, object]]:
    return [json.loads(line[6:]) for line in body.decode().split("\n") if line.startswith("data: ")]


@pytest.mark.parametrize("case", sorted(CASES))
def test_writer_output_matches_the_recorded_stream(case: str) -> None:
    body = live(CASES[case].events)
    path = FIXTURES / f"{case}.responses.sse"
    if RECORD:
        path.write_bytes(body)
    assert path.exists(), f"{path.name} is not recorded: run with TOKENRELAY_RECORD_FIXTURES=1"
    assert body == path.read_bytes()


def sdk_final(body: bytes) -> openai.types.responses.Response:
    """What the openai SDK's own `ResponseStreamState` assembles from the events."""
    client = openai.OpenAI(api_key="unused", base_url="http://relay.invalid/v1", max_retries=0)
    request = httpx2.Request("GET", "http://relay.invalid/v1/responses/x")
    response = httpx2.Response(
        200, content=body, headers={"content-type": "text/event-stream"}, request=request
    )
    stream: openai.Stream[ResponseStreamEvent] = openai.Stream(
        cast_to=ResponseStreamEvent,  # type: ignore[arg-type]  # a union, as the SDK passes it
        response=response,
        client=client,
    )
    state: ResponseStreamState[None] = ResponseStreamState(
        input_tools=openai.omit, text_format=openai.omit
    )
    final = None
    for event in stream:
        for handled in state.handle_event(event):
            if handled.type == "response.completed":
                final = handled.response
    assert final is not None, "no response.completed"
    return final


def test_sdk_assembles_text_usage_and_options() -> None:
    final = sdk_final(live(CASES["text"].events))
    assert final.id == "resp_" + GEN_ID.removeprefix("gen_")
    assert final.output_text == "Hello, wörld — “quoted”"
    assert final.instructions == "Be brief." and final.metadata == {"k": "v"}
    assert final.usage is not None and final.usage.total_tokens == 17


def test_sdk_assembles_text_then_two_function_calls() -> None:
    final = sdk_final(live(CASES["tool_call"].events))
    kinds = [item.type for item in final.output]
    assert kinds == ["message", "function_call", "function_call"]
    first, second = final.output[1], final.output[2]
    assert first.type == "function_call" and second.type == "function_call"
    assert (first.call_id, first.name, first.arguments) == (
        "call_weather",
        "get_weather",
        '{"city": "Paris"}',
    )
    assert second.call_id.startswith("call_") and second.arguments == "{}"


def test_a_reset_before_output_is_invisible() -> None:
    body = live(CASES["reset_before_output"].events)
    assert all(p["type"] != "error" for p in payloads(body))
    final_events = payloads(body)
    assert final_events[-1]["type"] == "response.incomplete"


@pytest.mark.parametrize(
    "case", ["text", "tool_call", "error", "cancelled", "resumed_in_tool_call"]
)
def test_resuming_after_any_number_gives_exactly_the_rest(case: str) -> None:
    events = CASES[case].events
    whole = payloads(live(events))
    assert [p["sequence_number"] for p in whole] == list(range(len(whole)))
    for after in range(-1, len(whole) - 1):
        assert payloads(resumed(events, after)) == whole[after + 1 :], after


def test_a_void_attempt_is_skipped_by_a_client_that_had_none_of_it() -> None:
    events = CASES["reset_mid_stream"].events
    live_body = payloads(live(events))
    # Live, the client saw "Once upon", then the reset, and the connection ends there.
    assert live_body[-1]["type"] == "error" and live_body[-1]["code"] == "stream_reset"
    reset_number = live_body[-1]["sequence_number"]
    assert isinstance(reset_number, int)

    # Resuming after the reset: the new attempt, numbered after it.
    rest = payloads(resumed(events, reset_number))
    assert rest[0]["sequence_number"] == reset_number + 1
    assert rest[-1]["type"] == "response.completed"

    # From the start once it is stored: the void attempt and its reset are skipped.
    fresh = payloads(resumed(events, -1))
    assert "error" not in [p["type"] for p in fresh]
    assert [p["sequence_number"] for p in fresh][:2] == [0, 1]
    assert fresh[2:] == rest
    text = "".join(str(p["delta"]) for p in fresh if p["type"] == "response.output_text.delta")
    assert text == "Once upon a time."

    # In the middle of the void attempt: its rest, then the reset, then the end.
    middle = payloads(resumed(events, 2))
    assert middle == live_body[3:]


def test_shutdown_notice_says_where_to_resume_and_keeps_the_numbering() -> None:
    fmt = writer()
    for event in CASES["text"].events[:2]:
        fmt.encode(event)
    notice = payloads(fmt.interrupted())[0]
    assert notice["type"] == "error" and notice["code"] == "unavailable"
    assert notice["starting_after"] == fmt.last_sequence == notice["sequence_number"]
