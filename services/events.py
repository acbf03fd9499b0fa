"""The events of a generation: their models, and their one encoding.

An event is stored in the generation's Redis Stream as two fields, `type` and
`data` (compact JSON), and the stream entry id is its SSE `id:`. The native SSE
format writes those three verbatim, so fanning an event out never re-encodes it;
the OpenAI and Anthropic formats decode it once with `decode_event`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

TERMINAL_TYPES = frozenset({"done", "error", "cancelled"})


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0


class ToolCallFragment(BaseModel):
    """A piece of a tool call: `arguments` is appended to the call at `index`."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class StartEvent(BaseModel):
    type: Literal["start"] = "start"
    generation_id: str
    model: str
    attempt: int


class DeltaEvent(BaseModel):
    """Either `text` to append, or a `tool_call` fragment; never both."""

    type: Literal["delta"] = "delta"
    text: str | None = None
    tool_call: ToolCallFragment | None = None


class ResetEvent(BaseModel):
    type: Literal["reset"] = "reset"
    attempt: int
    reason: str


class DoneEvent(BaseModel):
    type: Literal["done"] = "done"
    finish_reason: str
    usage: Usage | None = None


class ErrorEvent(BaseModel):
    type: Literal["error"] = "error"
    error_type: str  # written as `type` in the event's data (see encode_data)
    message: str
    retryable: bool = False


class CancelledEvent(BaseModel):
    type: Literal["cancelled"] = "cancelled"


Event = Annotated[
    StartEvent | DeltaEvent | ResetEvent | DoneEvent | ErrorEvent | CancelledEvent,
    Field(discriminator="type"),
]


_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
"""One encoder for every event: `json.dumps` with these options builds a new one per call."""


def encode_text_delta(text: str) -> str:
    """`encode_data(DeltaEvent(text=text))`, without building the model: most events by
    far (a worker encodes one per coalesced write) are text deltas."""
    return '{"text":' + encode_basestring(text) + "}"


def encode_data(event: BaseModel) -> str:
    """The `data` JSON of an event, as stored and as sent: no `type`, no null fields."""
    if type(event) is DeltaEvent and event.tool_call is None and event.text is not None:
        # The same bytes as the general path, without a model dump or an encoder per call.
        return encode_text_delta(event.text)
    payload = event.model_dump(exclude_none=True, exclude={"type"})
    if isinstance(event, ErrorEvent):
        payload = {"type": payload.pop("error_type"), **payload}
    if isinstance(event, DoneEvent):
        payload.setdefault("usage", None)  # the contract says `usage: null`, not absent
    return _JSON.encode(payload)


def event_type(event: BaseModel) -> str:
    return str(getattr(event, "type"))  # noqa: B009 - every Event model has a `type` Literal


_EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def decode_event(type_: str, data: str) -> Event:
    """Parse a stored event back into its model (for formats other than native)."""
    payload: dict[str, Any] = json.loads(data)
    if type_ == "error":
        payload = {
            "error_type": payload.get("type", "error"),
            "message": payload.get("message", ""),
            "retryable": payload.get("retryable", False),
        }
    payload["type"] = type_
    return _EVENT_ADAPTER.validate_python(payload)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One entry of a generation's stream, as read back from Redis."""

    id: str
    type: str
    data: str

    @property
    def is_terminal(self) -> bool:
        return self.type in TERMINAL_TYPES

    def decoded(self) -> Event:
        return decode_event(self.type, self.data)


def stored_event_from_entry(entry_id: bytes | str, fields: dict[Any, Any]) -> StoredEvent:
    """Build a StoredEvent from a raw XREAD/XRANGE entry (bytes or str fields)."""

    def as_str(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    by_name = {as_str(key): as_str(value) for key, value in fields.items()}
    return StoredEvent(id=as_str(entry_id), type=by_name["type"], data=by_name["data"])
