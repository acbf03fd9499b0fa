"""An OpenAI Responses request, checked and turned into a `GenerationRequest`.

`input` is a string (one user message) or a list of items: messages of any role
(`developer` is a system message; text, `input_text`, `output_text` and
`refusal` parts), `function_call` items (an assistant turn's tool calls) and
`function_call_output` items (the tool results), as an app builds them and as
the door answers them, so `response.output` can be appended to the next
request's input unchanged. `reasoning` items are provider-internal and dropped.
`instructions` is a system message before the input. Function tools are
taken; the hosted tools (web search, file search, computer use, ...),
non-text input, structured output and `conversation` are refused with a 400.
Options that only steer OpenAI's own serving (`store`, `service_tier`,
`prompt_cache_key`, `reasoning`, `truncation`, `include`, ...) are accepted and
not forwarded; `user` is kept in the generation's metadata as `user`.

`previous_response_id` is rebuilt from what is stored: the earlier response's
request (without its instructions, which OpenAI does not carry over either)
and its final output come before this input. A previous response that is
unknown, expired or not completed is a 400 naming the parameter.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.doors.translation import (
    InvalidDoorRequest,
    invalid_from_validation,
    qualified_model,
    unsupported,
)
from api.formats.responses import ResponseOptions
from services.generation import FunctionSpec, GenerationRequest, Message, MessageToolCall, Tool

_DROPPED_ITEMS = frozenset({"reasoning"})
_TEXT_PARTS = {"text": "text", "input_text": "text", "output_text": "text", "refusal": "refusal"}


class _FunctionTool(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str
    name: str | None = Field(default=None, min_length=1, max_length=128)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class _TextConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")

    format: dict[str, Any] | None = None
    verbosity: str | None = None


class ResponsesRequest(BaseModel):
    """The body of `POST /v1/responses`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"model": "demo/echo", "input": "hi"}]},
    )

    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]] = Field(min_length=1)
    instructions: str | None = None
    tools: list[_FunctionTool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stream: bool | None = False
    background: bool | None = False
    metadata: dict[str, str] | None = None
    user: str | None = None
    previous_response_id: str | None = None
    text: _TextConfig | None = None
    parallel_tool_calls: bool | None = None
    stream_options: dict[str, Any] | None = None
    conversation: Any = None
    prompt: Any = None
    max_tool_calls: int | None = None
    top_logprobs: int | None = None
    # Accepted and not forwarded: they steer OpenAI's own serving and storage.
    store: bool | None = None
    include: list[str] | None = None
    reasoning: dict[str, Any] | None = None
    truncation: str | None = None
    service_tier: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    prompt_cache_options: Any = None
    context_management: Any = None
    moderation: Any = None


def parse_responses_request(body: Any) -> ResponsesRequest:
    try:
        request = ResponsesRequest.model_validate(body)
    except ValidationError as exc:
        raise invalid_from_validation(exc) from None
    if request.conversation is not None:
        raise unsupported(
            "'conversation' (use previous_response_id or send the input)", "conversation"
        )
    if request.prompt is not None:
        raise unsupported("stored prompts ('prompt')", "prompt")
    if request.max_tool_calls is not None:
        raise unsupported("max_tool_calls", "max_tool_calls")
    if request.top_logprobs:
        raise unsupported("logprobs", "top_logprobs")
    text_format = request.text.format if request.text else None
    if text_format is not None and text_format.get("type") != "text":
        raise unsupported("text.format other than text (structured output)", "text.format")
    for index, tool in enumerate(request.tools or []):
        if tool.type != "function":
            raise unsupported(f"tool type '{tool.type}' (only function tools)", f"tools.{index}")
        if not tool.name:
            raise InvalidDoorRequest("a function tool needs a name", param=f"tools.{index}.name")
    return request


def _part_text(part: Any, param: str) -> str:
    kind = part.get("type") if isinstance(part, dict) else None
    field = _TEXT_PARTS.get(str(kind))
    if field is None or not isinstance(part.get(field), str):
        raise unsupported(f"content part type '{kind}'", param)
    text: str = part[field]
    return text


def _content_text(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidDoorRequest("content must be a string or a list of parts", param=param)
    return "".join(_part_text(part, f"{param}.{index}") for index, part in enumerate(content))


def _output_text(output: Any, param: str) -> str:
    """A function_call_output's `output`: a string, or text parts."""
    if isinstance(output, str):
        return output
    return _content_text(output, param)


class _Turns:
    """Messages built from input items; an assistant's text and calls become one turn."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def _assistant(self) -> Message:
        last = self.messages[-1] if self.messages else None
        if last is not None and last.role == "assistant":
            return last
        turn = Message(role="assistant", content="")
        self.messages.append(turn)
        return turn

    def text(self, role: str, text: str) -> None:
        if role == "assistant":
            turn = self._assistant()
            if turn.tool_calls:  # text after a call is a new turn
                self.messages.append(Message(role="assistant", content=text))
            else:
                turn.content += text
            return
        self.messages.append(
            Message(role="system" if role in ("system", "developer") else "user", content=text)
        )

    def call(self, call: MessageToolCall) -> None:
        turn = self._assistant()
        turn.tool_calls = [*(turn.tool_calls or []), call]

    def result(self, call_id: str, text: str) -> None:
        self.messages.append(Message(role="tool", content=text, tool_call_id=call_id))


def _item(turns: _Turns, item: dict[str, Any], param: str) -> None:
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message":
        role = item.get("role")
        if role not in ("user", "system", "developer", "assistant"):
            raise InvalidDoorRequest(
                "a message's role must be user, system, developer or assistant",
                param=f"{param}.role",
            )
        turns.text(str(role), _content_text(item.get("content"), f"{param}.content"))
    elif kind == "function_call":
        call_id, name = item.get("call_id"), item.get("name")
        if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
            raise InvalidDoorRequest("a function_call item needs a call_id and a name", param=param)
        arguments = item.get("arguments")
        turns.call(
            MessageToolCall(
                id=call_id,
                name=name,
                arguments=arguments if isinstance(arguments, str) and arguments else "{}",
            )
        )
    elif kind == "function_call_output":
        call_id = item.get("call_id")
        if not isinstance(call_id, str) or not call_id:
            raise InvalidDoorRequest(
                "a function_call_output item needs the call_id it answers",
                param=f"{param}.call_id",
            )
        turns.result(call_id, _output_text(item.get("output", ""), f"{param}.output"))
    elif kind in _DROPPED_ITEMS:
        return
    else:
        raise unsupported(f"input item type '{kind}'", param)


def input_messages(request: ResponsesRequest) -> list[Message]:
    """The conversation this request's `input` carries (without instructions)."""
    if isinstance(request.input, str):
        return [Message(role="user", content=request.input)]
    turns = _Turns()
    for index, item in enumerate(request.input):
        _item(turns, item, f"input.{index}")
    return turns.messages


def _tool_choice(choice: str | dict[str, Any] | None) -> str | None:
    if choice is None or isinstance(choice, str):
        if choice not in (None, "auto", "none", "required"):
            raise InvalidDoorRequest(
                "tool_choice must be 'auto', 'none', 'required' or a function", param="tool_choice"
            )
        return choice
    if choice.get("type") == "function" and isinstance(choice.get("name"), str) and choice["name"]:
        return str(choice["name"])
    raise unsupported("this tool_choice form", "tool_choice")


def to_generation_request(
    request: ResponsesRequest, earlier: list[Message] | None = None
) -> GenerationRequest:
    """The generation a Responses request asks for; `earlier` is the conversation
    of `previous_response_id`, rebuilt by the route."""
    metadata = dict(request.metadata or {})
    if request.user:
        metadata.setdefault("user", request.user)
    tools = [
        Tool(
            function=FunctionSpec(
                name=tool.name or "",
                description=tool.description,
                parameters=tool.parameters or {},
            )
        )
        for tool in request.tools or []
    ]
    try:
        messages = (
            [Message(role="system", content=request.instructions)] if request.instructions else []
        )
        messages += earlier or []
        messages += input_messages(request)
        return GenerationRequest(
            model=qualified_model(request.model, "openai"),
            messages=messages,
            max_tokens=request.max_output_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            tools=tools or None,
            tool_choice=_tool_choice(request.tool_choice),
            metadata=metadata or None,
        )
    except ValidationError as exc:
        raise invalid_from_validation(exc) from None


def response_options(request: ResponsesRequest) -> ResponseOptions:
    """What the response objects of this request echo of it."""
    return ResponseOptions(
        instructions=request.instructions,
        tools=[
            {
                "type": "function",
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters,
                "strict": tool.strict if tool.strict is not None else True,
            }
            for tool in request.tools or []
        ],
        tool_choice=request.tool_choice if request.tool_choice is not None else "auto",
        metadata=request.metadata or {},
        temperature=request.temperature,
        top_p=request.top_p,
        max_output_tokens=request.max_output_tokens,
        parallel_tool_calls=request.parallel_tool_calls is not False,
        previous_response_id=request.previous_response_id,
        background=bool(request.background),
        store=request.store is not False,
        user=request.user,
        input=input_messages(request),
    )
