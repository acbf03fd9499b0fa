"""What a generation is asked to do, and what a status read answers.

The request model is the native API's body and also what a worker reads back
from Redis, so both sides validate against one definition.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.events import Usage

Status = Literal["queued", "running", "completed", "failed", "cancelled"]
FINISHED_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str


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

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=3, max_length=200, pattern=r"^[A-Za-z0-9_.-]+/\S+$")
    messages: list[Message] = Field(min_length=1, max_length=10_000)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    tools: list[Tool] | None = None
    metadata: dict[str, str] | None = Field(default=None, max_length=64)

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


class GenerationAccepted(BaseModel):
    """The answer of `POST /v1/generations`."""

    id: str
    status: Status
    model: str
    events_url: str
    created_at: float
