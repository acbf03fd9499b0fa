"""An OpenAI Chat Completions request, checked and turned into a `GenerationRequest`.

Every role the API accepts is taken: `developer` is a system message, assistant
`tool_calls` and `tool` results keep their ids. An assistant message is accepted
as the API answers it (what the SDKs' tool loops send back unchanged):
`annotations` and a null `function_call` are ignored, a `refusal` stands for
empty content, and an earlier audio answer counts as its transcript. Content
is text (a string or text parts); images, audio and files are refused with a
400, as are options tokenrelay cannot honour (`n` > 1, `logprobs`,
`response_format` other than text, audio output, predicted outputs, the
deprecated `functions`). Options that only tune
sampling or bookkeeping on OpenAI's side (`seed`, penalties, `store`, ...) are
accepted and not forwarded. `user` is kept in the generation's metadata as `user`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.doors.translation import (
    InvalidDoorRequest,
    invalid_from_validation,
    qualified_model,
    unsupported,
)
from services.generation import FunctionSpec, GenerationRequest, Message, MessageToolCall, Tool


class _FunctionCall(BaseModel):
    name: str = Field(min_length=1)
    arguments: str = ""


class _ToolCall(BaseModel):
    id: str = Field(min_length=1)
    type: Literal["function"] = "function"
    function: _FunctionCall


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[_ToolCall] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None
    function_call: Any = None
    audio: Any = None
    # What an assistant message of an answer carries besides its text: sent back
    # unchanged by the SDKs' tool loops, and meaningless as input here.
    annotations: list[Any] | None = None
    parsed: Any = None  # the openai SDK's parsed structured output, on its own message objects


class _Function(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    strict: bool | None = None


class _Tool(BaseModel):
    type: Literal["function"]
    function: _Function


class _StreamOptions(BaseModel):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class ChatCompletionRequest(BaseModel):
    """The body of `POST /v1/chat/completions`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]}]
        },
    )

    model: str = Field(min_length=1)
    messages: list[_Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: str | list[str] | None = None
    tools: list[_Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    stream: bool | None = False
    stream_options: _StreamOptions | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    n: int | None = Field(default=None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = None
    response_format: dict[str, Any] | None = None
    modalities: list[str] | None = None
    audio: Any = None
    prediction: Any = None
    functions: Any = None
    function_call: Any = None
    web_search_options: Any = None
    # Accepted and not forwarded: they tune OpenAI's own sampling or bookkeeping.
    seed: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logit_bias: dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    store: bool | None = None
    service_tier: str | None = None
    reasoning_effort: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_options: Any = None
    prompt_cache_retention: str | None = None
    moderation: Any = None
    safety_identifier: str | None = None
    verbosity: str | None = None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


def parse_chat_request(body: Any) -> ChatCompletionRequest:
    try:
        request = ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        raise invalid_from_validation(exc) from None
    _refuse_unsupported(request)
    return request


def _refuse_unsupported(request: ChatCompletionRequest) -> None:
    if request.n not in (None, 1):
        raise unsupported("n other than 1", "n")
    if request.logprobs or request.top_logprobs:
        raise unsupported("logprobs", "logprobs")
    if request.response_format and request.response_format.get("type") != "text":
        raise unsupported("response_format other than text", "response_format")
    if request.modalities and request.modalities != ["text"]:
        raise unsupported("output modalities other than text", "modalities")
    for name in ("audio", "prediction", "functions", "function_call", "web_search_options"):
        if getattr(request, name) is not None:
            raise unsupported(f"'{name}'", name)
    if request.stream_options is not None and not request.stream:
        raise InvalidDoorRequest(
            "stream_options is only allowed when stream is true", param="stream_options"
        )


def _text(content: str | list[dict[str, Any]] | None, param: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for index, part in enumerate(content):
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            texts.append(part["refusal"])
        else:
            raise unsupported(f"content part type '{kind}'", f"{param}.content.{index}")
    return "\n".join(texts)


def _message(message: _Message, index: int) -> Message:
    param = f"messages.{index}"
    if message.role == "function" or message.function_call is not None:
        raise unsupported("the deprecated function role and function_call (use tools)", param)
    text = _text(message.content, param)
    if message.audio is not None and message.role != "assistant":
        raise unsupported("audio on a non-assistant message", f"{param}.audio")
    if message.role in ("system", "developer"):
        return Message(role="system", content=text)
    if message.role == "user":
        return Message(role="user", content=text)
    if message.role == "tool":
        if not message.tool_call_id:
            raise InvalidDoorRequest(
                "a tool message needs the tool_call_id it answers", param=f"{param}.tool_call_id"
            )
        return Message(role="tool", content=text, tool_call_id=message.tool_call_id)
    calls = [
        MessageToolCall(
            id=call.id, name=call.function.name, arguments=call.function.arguments or "{}"
        )
        for call in message.tool_calls or []
    ]
    if not text and message.refusal:
        text = message.refusal
    if (
        not text
        and isinstance(message.audio, dict)
        and isinstance(transcript := message.audio.get("transcript"), str)
    ):
        # An earlier audio answer, sent back: its transcript is what it said.
        text = transcript
    return Message(role="assistant", content=text, tool_calls=calls or None)


def _tool_choice(choice: str | dict[str, Any] | None) -> str | None:
    if choice is None or isinstance(choice, str):
        if choice not in (None, "auto", "none", "required"):
            raise InvalidDoorRequest(
                "tool_choice must be 'auto', 'none', 'required' or a function", param="tool_choice"
            )
        return choice
    function = choice.get("function")
    if choice.get("type") == "function" and isinstance(function, dict) and function.get("name"):
        return str(function["name"])
    raise unsupported("this tool_choice form", "tool_choice")


def to_generation_request(request: ChatCompletionRequest) -> GenerationRequest:
    """The generation a Chat Completions request asks for."""
    metadata = dict(request.metadata or {})
    if request.user:
        metadata.setdefault("user", request.user)
    stop = [request.stop] if isinstance(request.stop, str) else request.stop
    tools = [
        Tool(
            function=FunctionSpec(
                name=tool.function.name,
                description=tool.function.description,
                parameters=tool.function.parameters,
            )
        )
        for tool in request.tools or []
    ]
    try:
        return GenerationRequest(
            model=qualified_model(request.model, "openai"),
            messages=[_message(message, index) for index, message in enumerate(request.messages)],
            max_tokens=request.max_completion_tokens or request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            stop=stop or None,
            tools=tools or None,
            tool_choice=_tool_choice(request.tool_choice),
            metadata=metadata or None,
        )
    except ValidationError as exc:
        raise invalid_from_validation(exc) from None
