"""The events of a generation stream and the API's answers, as typed values.

Each event is a dataclass (with slots; not frozen, which would double the cost
of making one, the client's hot path) with a `Literal` `type`, so a `match` or an
`if ev.type == "delta"` narrows it for a type checker, as in the anthropic SDK.
Every event keeps the `id` the server gave it (the cursor to resume after it).
Answers keep the JSON they were built from in `raw`, so a field the server adds
later is never out of reach.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

__all__ = [
    "FINISHED",
    "CancelledEvent",
    "CreatedGeneration",
    "DeltaEvent",
    "DoneEvent",
    "ErrorEvent",
    "ErrorInfo",
    "Generation",
    "GenerationList",
    "GenerationStatus",
    "ResetEvent",
    "ResyncEvent",
    "StartEvent",
    "StreamEvent",
    "ToolCall",
    "ToolCallFragment",
    "UnknownEvent",
    "Usage",
    "ViewerToken",
]

GenerationStatus: TypeAlias = Literal["queued", "running", "completed", "failed", "cancelled"]
FINISHED: frozenset[str] = frozenset({"completed", "failed", "cancelled"})


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int
    output_tokens: int

    @classmethod
    def from_json(cls, data: Any) -> Usage | None:
        if not isinstance(data, dict):
            return None
        return cls(int(data.get("input_tokens") or 0), int(data.get("output_tokens") or 0))


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    type: str
    message: str

    @classmethod
    def from_json(cls, data: Any) -> ErrorInfo | None:
        if not isinstance(data, dict):
            return None
        return cls(str(data.get("type") or "api_error"), str(data.get("message") or ""))


@dataclass(slots=True)
class ToolCall:
    """A tool call as assembled so far: `arguments` grows with each fragment."""

    id: str | None
    name: str | None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class ToolCallFragment:
    """A piece of a tool call: append `arguments` to call number `index`."""

    index: int
    id: str | None
    name: str | None
    arguments: str


@dataclass(frozen=True, slots=True)
class Generation:
    """`GET /v1/generations/{id}`: status and everything produced so far."""

    id: str
    status: GenerationStatus
    model: str
    content: str
    tool_calls: list[ToolCall]
    finish_reason: str | None
    usage: Usage | None
    error: ErrorInfo | None
    attempt: int
    created_at: float | None
    started_at: float | None
    finished_at: float | None
    last_event_id: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Generation:
        calls = data.get("tool_calls") or []
        return cls(
            id=str(data.get("id", "")),
            status=data.get("status", "queued"),
            model=str(data.get("model", "")),
            content=str(data.get("content") or ""),
            tool_calls=[
                ToolCall(c.get("id"), c.get("name"), c.get("arguments") or "") for c in calls
            ],
            finish_reason=data.get("finish_reason"),
            usage=Usage.from_json(data.get("usage")),
            error=ErrorInfo.from_json(data.get("error")),
            attempt=int(data.get("attempt") or 0),
            created_at=data.get("created_at"),
            started_at=data.get("started_at"),
            finished_at=data.get("finished_at"),
            last_event_id=data.get("last_event_id"),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class CreatedGeneration:
    """`POST /v1/generations`: the id to follow, and where its events are."""

    id: str
    status: str
    model: str
    events_url: str
    created_at: float | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CreatedGeneration:
        return cls(
            id=str(data["id"]),
            status=str(data.get("status", "queued")),
            model=str(data.get("model", "")),
            events_url=str(data.get("events_url", "")),
            created_at=data.get("created_at"),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class GenerationList:
    """`GET /v1/generations`: one page of summaries (as JSON objects), newest first."""

    data: list[dict[str, Any]]
    has_more: bool


@dataclass(frozen=True, slots=True)
class ViewerToken:
    """A signed token that can only read one generation; share `watch_url`."""

    token: str
    expires_at: float | None
    watch_url: str
    events_url: str


@dataclass(slots=True)
class StartEvent:
    id: str
    generation_id: str
    model: str
    attempt: int
    type: Literal["start"] = "start"


@dataclass(slots=True)
class DeltaEvent:
    """Text to append (`text`), or a fragment of a tool call (`tool_call`)."""

    id: str
    text: str | None = None
    tool_call: ToolCallFragment | None = None
    type: Literal["delta"] = "delta"


@dataclass(slots=True)
class ResetEvent:
    """The text streamed so far is void; attempt `attempt` starts from empty."""

    id: str
    attempt: int
    reason: str
    type: Literal["reset"] = "reset"


@dataclass(slots=True)
class DoneEvent:
    id: str
    finish_reason: str
    usage: Usage | None
    type: Literal["done"] = "done"


@dataclass(slots=True)
class ErrorEvent:
    """The generation failed (terminal). `error_type` is the server's error type."""

    id: str
    error_type: str
    message: str
    retryable: bool
    type: Literal["error"] = "error"


@dataclass(slots=True)
class CancelledEvent:
    id: str
    type: Literal["cancelled"] = "cancelled"


@dataclass(slots=True)
class ResyncEvent:
    """Part of the stream had expired: `generation` is the full state; go on from it."""

    id: str
    generation: Generation
    type: Literal["resync"] = "resync"


@dataclass(slots=True)
class UnknownEvent:
    """An event type this client does not know (a newer server): passed on untouched."""

    id: str
    event: str
    data: Any
    type: Literal["unknown"] = "unknown"


StreamEvent: TypeAlias = (
    StartEvent
    | DeltaEvent
    | ResetEvent
    | DoneEvent
    | ErrorEvent
    | CancelledEvent
    | ResyncEvent
    | UnknownEvent
)
