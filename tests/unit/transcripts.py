"""Representative generations, as the stored events a door writer reads.

Each case is what a worker would have written into a generation's stream: a plain
answer, a tool call, a reset with and without output before it, a failure, a
cancel, and a client resuming in the middle of a tool call. The events are built
from the event models and encoded as the store encodes them, so the writers see
exactly the `type`/`data` strings they see in production.
"""

from __future__ import annotations

from dataclasses import dataclass

from api.formats.anthropic import AnthropicEventFormat
from api.formats.door import DoorFormat
from api.formats.native import NativeFormat
from api.formats.openai import OpenAIChunkFormat
from services.events import (
    CancelledEvent,
    DeltaEvent,
    DoneEvent,
    ErrorEvent,
    ResetEvent,
    StartEvent,
    StoredEvent,
    ToolCallFragment,
    Usage,
    encode_data,
    event_type,
)

GEN_ID = "gen_0123456789abcdef0123456789abcdef"
MODEL = "openai/gpt-4o-mini"
CREATED_AT = 1_732_435_200.5
FORMATS = ("native", "openai", "anthropic")

AnyEvent = StartEvent | DeltaEvent | ResetEvent | DoneEvent | ErrorEvent | CancelledEvent


def stored(*events: AnyEvent) -> list[StoredEvent]:
    """The events with stream entry ids, as XRANGE returns them."""
    return [
        StoredEvent(f"1732435200{index:03d}-0", event_type(event), encode_data(event))
        for index, event in enumerate(events, start=1)
    ]


def start(attempt: int = 1) -> StartEvent:
    return StartEvent(generation_id=GEN_ID, model=MODEL, attempt=attempt)


def text(value: str) -> DeltaEvent:
    return DeltaEvent(text=value)


def tool(
    index: int, arguments: str, call_id: str | None = None, name: str | None = None
) -> DeltaEvent:
    return DeltaEvent(
        tool_call=ToolCallFragment(index=index, id=call_id, name=name, arguments=arguments)
    )


USAGE = Usage(input_tokens=12, output_tokens=5)


@dataclass(frozen=True)
class Case:
    """A generation's events, and where the client's cursor is (None: from the start)."""

    events: list[StoredEvent]
    cursor: int | None = None
    """How many of the events the client already has when it connects."""


CASES: dict[str, Case] = {
    "text": Case(
        stored(
            start(),
            text("Hello"),
            text(", wörld — “quoted”"),
            DoneEvent(finish_reason="stop", usage=USAGE),
        )
    ),
    "tool_call": Case(
        stored(
            start(),
            text("Let me check."),
            tool(0, "", call_id="call_weather", name="get_weather"),
            tool(0, '{"city": '),
            tool(0, '"Paris"}'),
            tool(1, "{}", name="get_time"),  # no id from the provider: the writer makes one
            DoneEvent(finish_reason="tool_calls", usage=USAGE),
        )
    ),
    "reset_mid_stream": Case(
        stored(
            start(1),
            text("Once upon"),
            ResetEvent(attempt=2, reason="provider_error: overloaded"),
            start(2),
            text("Once upon a time."),
            DoneEvent(finish_reason="stop", usage=USAGE),
        )
    ),
    "reset_before_output": Case(
        stored(
            start(1),
            ResetEvent(attempt=2, reason="timeout: first_token"),
            start(2),
            text("Fresh answer."),
            DoneEvent(finish_reason="length", usage=None),
        )
    ),
    "error": Case(
        stored(
            start(),
            text("Partial"),
            ErrorEvent(
                error_type="provider_error", message="upstream answered 500", retryable=False
            ),
        )
    ),
    "cancelled": Case(stored(start(), text("Some"), CancelledEvent())),
    "resumed_in_tool_call": Case(
        stored(
            start(),
            text("Checking."),
            tool(0, '{"city": ', call_id="call_weather", name="get_weather"),
            tool(0, '"Paris"}'),
            DoneEvent(finish_reason="tool_use", usage=USAGE),
        ),
        cursor=3,
    ),
}


def door_writer(name: str) -> DoorFormat:
    if name == "openai":
        return OpenAIChunkFormat(GEN_ID, MODEL, CREATED_AT, include_usage=True)
    if name == "anthropic":
        return AnthropicEventFormat(GEN_ID, MODEL, CREATED_AT)
    raise ValueError(f"'{name}' is not a door format")


def render(format_name: str, case: Case) -> bytes:
    """The SSE body one client of `case` receives, as the API assembles it from the writer.

    A resuming client gets what the API sends after a cursor: the door writers fold
    the events before it and open with the state there; the native format just
    continues after it.
    """
    already = case.events[: case.cursor or 0]
    rest = case.events[case.cursor or 0 :]
    if format_name == "native":
        native = NativeFormat()
        return b"".join(native.encode(event) for event in rest)
    writer = door_writer(format_name)
    out = b""
    for event in already:
        writer.absorb(event)
    if case.cursor:
        out += writer.opening()
    for event in rest:
        out += writer.encode(event)
    return out
