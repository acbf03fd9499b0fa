"""An Anthropic Messages request, checked and turned into a `GenerationRequest`.

`system` (a string or text blocks) becomes a system message. A user turn's
`tool_result` blocks become `tool` messages answering their `tool_use_id`, in
their order among the turn's text; an assistant turn's `tool_use` blocks become
its `tool_calls` with `input` as JSON arguments. Thinking blocks of earlier turns
are provider-internal and dropped; images, documents, server tools, extended
thinking and structured output are refused with a 400. `top_k` and the options
that steer Anthropic's own serving (`service_tier`, `cache_control`, `speed`,
`output_config.effort`, ...) are accepted and not forwarded; `metadata.user_id`
is kept in the generation's metadata as `user_id`.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.doors.translation import (
    InvalidDoorRequest,
    invalid_from_validation,
    qualified_model,
    unsupported,
)
from services.generation import FunctionSpec, GenerationRequest, Message, MessageToolCall, Tool

_DROPPED_BLOCKS = frozenset({"thinking", "redacted_thinking"})


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class _Tool(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str | None = None
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    input_schema: dict[str, Any] = Field(default_factory=dict)


class _Metadata(BaseModel):
    user_id: str | None = None


class MessagesRequest(BaseModel):
    """The body of `POST /v1/messages`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "model": "demo/echo",
                    "max_tokens": 16,
                    "messages": [{"role": "user", "content": "hi"}],
                }
            ]
        },
    )

    model: str = Field(min_length=1)
    max_tokens: int = Field(ge=1)
    messages: list[_Message] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    tools: list[_Tool] | None = None
    tool_choice: dict[str, Any] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    stop_sequences: list[str] | None = None
    stream: bool | None = False
    metadata: _Metadata | None = None
    thinking: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None
    mcp_servers: Any = None
    container: Any = None
    # Accepted and not forwarded: they steer Anthropic's own serving and caching.
    service_tier: str | None = None
    cache_control: Any = None
    inference_geo: str | None = None
    speed: str | None = None
    diagnostics: Any = None
    user_profile_id: str | None = None
    workspace_id: str | None = None


def parse_messages_request(body: Any) -> MessagesRequest:
    try:
        request = MessagesRequest.model_validate(body)
    except ValidationError as exc:
        raise invalid_from_validation(exc) from None
    if request.thinking and request.thinking.get("type") not in (None, "disabled"):
        raise unsupported("extended thinking", "thinking")
    if request.output_config and request.output_config.get("format") is not None:
        raise unsupported("structured output (output_config.format)", "output_config.format")
    if request.mcp_servers is not None:
        raise unsupported("mcp_servers", "mcp_servers")
    if request.container is not None:
        raise unsupported("container", "container")
    return request


def _block_text(block: dict[str, Any], param: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise InvalidDoorRequest("a text block needs a string 'text'", param=f"{param}.text")
    return text


def _system(system: str | list[dict[str, Any]] | None) -> list[Message]:
    if system is None:
        return []
    if isinstance(system, str):
        return [Message(role="system", content=system)] if system else []
    texts = []
    for index, block in enumerate(system):
        if block.get("type") != "text":
            raise unsupported(f"system block type '{block.get('type')}'", f"system.{index}")
        texts.append(_block_text(block, f"system.{index}"))
    return [Message(role="system", content="\n".join(texts))] if texts else []


def _tool_result_text(block: dict[str, Any], param: str) -> str:
    content = block.get("content", "")
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        parts = []
        for index, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise unsupported(f"tool_result content type '{kind}'", f"{param}.content.{index}")
            parts.append(_block_text(part, f"{param}.content.{index}"))
        text = "\n".join(parts)
    else:
        raise InvalidDoorRequest("tool_result content must be a string or blocks", param=param)
    return f"Error: {text}" if block.get("is_error") else text


def _user_turn(content: list[dict[str, Any]], param: str) -> list[Message]:
    """Tool results become `tool` messages; text between them becomes user messages."""
    messages: list[Message] = []
    texts: list[str] = []

    def flush_text() -> None:
        if texts:
            messages.append(Message(role="user", content="\n".join(texts)))
            texts.clear()

    for index, block in enumerate(content):
        where, kind = f"{param}.content.{index}", block.get("type")
        if kind == "text":
            texts.append(_block_text(block, where))
        elif kind == "tool_result":
            tool_use_id = block.get("tool_use_id")
            if not isinstance(tool_use_id, str) or not tool_use_id:
                raise InvalidDoorRequest(
                    "a tool_result block needs its tool_use_id", param=f"{where}.tool_use_id"
                )
            flush_text()
            messages.append(
                Message(
                    role="tool", content=_tool_result_text(block, where), tool_call_id=tool_use_id
                )
            )
        elif kind in _DROPPED_BLOCKS:
            continue
        else:
            raise unsupported(f"content block type '{kind}' in a user turn", where)
    flush_text()
    return messages


def _assistant_turn(content: list[dict[str, Any]], param: str) -> Message:
    texts: list[str] = []
    calls: list[MessageToolCall] = []
    for index, block in enumerate(content):
        where, kind = f"{param}.content.{index}", block.get("type")
        if kind == "text":
            texts.append(_block_text(block, where))
        elif kind == "tool_use":
            call_id, name = block.get("id"), block.get("name")
            if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
                raise InvalidDoorRequest("a tool_use block needs an id and a name", param=where)
            arguments = json.dumps(block.get("input") or {}, separators=(",", ":"))
            calls.append(MessageToolCall(id=call_id, name=name, arguments=arguments))
        elif kind in _DROPPED_BLOCKS:
            continue
        else:
            raise unsupported(f"content block type '{kind}' in an assistant turn", where)
    return Message(role="assistant", content="".join(texts), tool_calls=calls or None)


def _turn(message: _Message, index: int) -> list[Message]:
    param = f"messages.{index}"
    if isinstance(message.content, str):
        return [Message(role=message.role, content=message.content)]
    if message.role == "user":
        return _user_turn(message.content, param)
    return [_assistant_turn(message.content, param)]


def _tool(tool: _Tool, index: int) -> Tool:
    if tool.type not in (None, "custom"):
        raise unsupported(f"server tool type '{tool.type}'", f"tools.{index}")
    return Tool(
        function=FunctionSpec(
            name=tool.name, description=tool.description, parameters=tool.input_schema
        )
    )


def _tool_choice(choice: dict[str, Any] | None) -> str | None:
    if choice is None:
        return None
    kind = choice.get("type")
    if kind in ("auto", "none"):
        return str(kind)
    if kind == "any":
        return "required"
    if kind == "tool" and isinstance(choice.get("name"), str) and choice["name"]:
        return str(choice["name"])
    raise InvalidDoorRequest(
        "tool_choice.type must be 'auto', 'any', 'tool' (with a name) or 'none'",
        param="tool_choice",
    )


def to_generation_request(request: MessagesRequest) -> GenerationRequest:
    """The generation a Messages request asks for."""
    metadata = (
        {"user_id": request.metadata.user_id}
        if request.metadata and request.metadata.user_id
        else None
    )
    try:
        messages = _system(request.system)
        for index, message in enumerate(request.messages):
            messages.extend(_turn(message, index))
        return GenerationRequest(
            model=qualified_model(request.model, "anthropic"),
            messages=messages,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            stop=request.stop_sequences or None,
            tools=[_tool(tool, index) for index, tool in enumerate(request.tools or [])] or None,
            tool_choice=_tool_choice(request.tool_choice),
            metadata=metadata,
        )
    except ValidationError as exc:
        raise invalid_from_validation(exc) from None
