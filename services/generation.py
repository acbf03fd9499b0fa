"""What a generation is asked to do, and what a status read answers.

The request model is the native API's body and also what a worker reads back
from Redis, so both sides validate against one definition. They read different
inputs, though: the API a parsed body, the worker the stored JSON text, through
pydantic's JSON parser and its own limits. `to_stored_json` and
`from_stored_json` are the one pair that crosses that gap, and the first proves
the second will succeed before anything is queued.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticSerializationError

from services.errors import InvalidRequest
from services.events import Usage

Status = Literal["queued", "running", "completed", "failed", "cancelled"]
FINISHED_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})


class MessageToolCall(BaseModel):
    """A tool call the assistant made earlier in the conversation (OpenAI shape, flattened)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str = "{}"


class Message(BaseModel):
    """One conversation turn.

    The contract's native form is `{"role", "content": str}`. The front doors also
    carry tool turns: an assistant message may hold `tool_calls` (and then may
    have empty content), and a `tool` message answers one call by `tool_call_id`.
    """

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant", "tool"]
    content: str
    tool_calls: list[MessageToolCall] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _tool_fields_match_role(self) -> Message:
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only assistant messages may carry tool_calls")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs the tool_call_id it answers")
        if self.role != "tool" and self.tool_call_id is not None:
            raise ValueError("only tool messages may carry tool_call_id")
        return self


class FunctionSpec(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)


class Tool(BaseModel):
    """An OpenAI-style function tool: `{"type": "function", "function": {...}}`."""

    type: Literal["function"] = "function"
    function: FunctionSpec


class GenerationRequest(BaseModel):
    """The body of `POST /v1/generations`, and what the worker runs."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]}]
        },
    )

    model: str = Field(min_length=3, max_length=200, pattern=r"^[A-Za-z0-9_.-]+/\S+$")
    messages: list[Message] = Field(min_length=1, max_length=10_000)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: list[str] | None = Field(default=None, max_length=16)
    tools: list[Tool] | None = Field(default=None, max_length=128)
    tool_choice: Literal["auto", "none", "required"] | str | None = Field(
        default=None, description="'auto', 'none', 'required', or the name of one tool"
    )
    metadata: dict[str, str] | None = Field(default=None, max_length=64)

    def to_stored_json(self) -> str:
        """The JSON a worker will run, checked now to read back as the worker reads it.

        Without this check a request the worker cannot read (nested past the JSON
        parser's limit, say) would be accepted with a 202 and fail later, after
        retries, under a misleading error type. Here it is a 400 before anything
        is written or queued.
        """
        try:
            stored = self.model_dump_json(exclude_none=True)
            GenerationRequest.from_stored_json(stored)
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
            raise InvalidRequest(
                f"the request cannot be stored in a form a worker reads back: {first['msg']}"
            ) from None
        except PydanticSerializationError as exc:
            # The encoder's message may quote what it could not encode: a lone
            # surrogate, which the error answer itself could not encode either.
            reason = str(exc).encode("utf-8", "backslashreplace").decode()
            raise InvalidRequest(
                f"the request cannot be stored in a form a worker reads back: {reason}"
            ) from None
        return stored

    @classmethod
    def from_stored_json(cls, stored: str) -> GenerationRequest:
        """What a worker runs: the stored JSON, validated by pydantic's JSON parser."""
        return cls.model_validate_json(stored)

    @property
    def provider(self) -> str:
        return self.model.split("/", 1)[0]

    @property
    def provider_model(self) -> str:
        return self.model.split("/", 1)[1]


class ToolCall(BaseModel):
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class ErrorInfo(BaseModel):
    type: str
    message: str


class GenerationStatus(BaseModel):
    """The answer of `GET /v1/generations/{id}`."""

    id: str
    status: Status
    model: str
    content: str
    tool_calls: list[ToolCall]
    finish_reason: str | None
    usage: Usage | None
    error: ErrorInfo | None
    attempt: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    last_event_id: str | None
    viewers: int = 0
    metadata: dict[str, str] | None = None
    tenant: str = Field(default="default", exclude=True)
    """Whose generation this is (api/access.py); never in an answer."""


class GenerationSummary(BaseModel):
    """One row of `GET /v1/generations`: a generation's status without its text."""

    id: str
    status: Status
    model: str
    attempt: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    finish_reason: str | None
    usage: Usage | None
    error: ErrorInfo | None
    last_event_id: str | None
    content_bytes: int
    """UTF-8 length of the current attempt's text so far."""
    viewers: int = 0
    tenant: str = Field(default="default", exclude=True)


class GenerationAccepted(BaseModel):
    """The answer of `POST /v1/generations`."""

    id: str
    status: Status
    model: str
    events_url: str
    created_at: float
