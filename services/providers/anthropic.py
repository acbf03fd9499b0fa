"""The `anthropic/...` provider: Messages streaming, said as the official SDK says it.

One connection pool per worker process, no retries of its own (the worker
retries; see worker/retry.py). Requests are translated from our OpenAI-shaped
conversation: system turns become `system`, assistant tool calls become
`tool_use` blocks, tool answers become `tool_result` blocks in a user turn, and
consecutive turns of one role merge, as the Messages API requires. `max_tokens`,
which Anthropic requires, defaults to `TOKENRELAY_ANTHROPIC_DEFAULT_MAX_TOKENS`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import anthropic
from anthropic._streaming import SSEDecoder  # the SDK's own SSE parsing

from services.config import Settings
from services.errors import ProviderError
from services.events import ToolCallFragment, Usage
from services.generation import GenerationRequest, Message
from services.providers.base import FinishChunk, ProviderChunk, TextChunk, ToolCallChunk
from services.providers.upstream_errors import malformed_stream, retry_after_s, status_error
from services.providers.upstream_http import UpstreamHttp, UpstreamStatus

PLACEHOLDER_KEY = "tokenrelay-no-key"
ANTHROPIC_DEFAULT_BASE_URL = "https://api.anthropic.com"

# Anthropic's stop_reason -> the OpenAI-style finish_reason of our contract.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def _tool_input(arguments: str) -> Any:
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except json.JSONDecodeError:
        raise ProviderError(
            "invalid_request_error",
            "an assistant tool call's arguments are not valid JSON",
            retryable=False,
        ) from None
    return value


def _blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [
            {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id,
                "content": message.content,
            }
        ]
    blocks: list[dict[str, Any]] = []
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    for call in message.tool_calls or []:
        blocks.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.name,
                "input": _tool_input(call.arguments),
            }
        )
    return blocks


def anthropic_messages(messages: list[Message]) -> tuple[str | None, list[dict[str, Any]]]:
    """`(system, messages)` in Messages API form."""
    system = [m.content for m in messages if m.role == "system" and m.content]
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        if not blocks:
            continue  # Anthropic refuses empty text blocks
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return ("\n\n".join(system) if system else None), turns


def anthropic_tool_choice(choice: str) -> dict[str, Any]:
    named = {"auto": {"type": "auto"}, "none": {"type": "none"}, "required": {"type": "any"}}
    return named.get(choice, {"type": "tool", "name": choice})


def messages_params(request: GenerationRequest, *, default_max_tokens: int) -> dict[str, Any]:
    """The request body, minus `stream`: every field of ours that the Messages API has."""
    system, turns = anthropic_messages(request.messages)
    params: dict[str, Any] = {
        "model": request.provider_model,
        "max_tokens": request.max_tokens or default_max_tokens,
        "messages": turns,
    }
    if system is not None:
        params["system"] = system
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.top_p is not None:
        params["top_p"] = request.top_p
    if request.stop:
        params["stop_sequences"] = request.stop
    if request.tools:
        params["tools"] = [
            {
                "name": tool.function.name,
                **({"description": tool.function.description} if tool.function.description else {}),
                "input_schema": tool.function.parameters or {"type": "object", "properties": {}},
            }
            for tool in request.tools
        ]
        if request.tool_choice is not None:
            params["tool_choice"] = anthropic_tool_choice(request.tool_choice)
    return params


class _StreamState:
    """What the events of one message stream have said so far."""

    def __init__(self) -> None:
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.stop_reason: str | None = None
        self.stopped = False
        self.tool_index: dict[int, int] = {}  # content block index -> tool call index
        self.tool_has_input: set[int] = set()

    def usage(self) -> Usage | None:
        if self.input_tokens is None and self.output_tokens is None:
            return None
        return Usage(input_tokens=self.input_tokens or 0, output_tokens=self.output_tokens or 0)

    def read_usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        parts = [
            usage.get(name)
            for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        ]
        if any(isinstance(part, int) for part in parts):
            self.input_tokens = sum(part for part in parts if isinstance(part, int))
        output = usage.get("output_tokens")
        if isinstance(output, int):
            self.output_tokens = output

    def chunks(self, event: object) -> list[ProviderChunk]:
        """The chunks one event (its JSON, as sent) yields (most yield none or one)."""
        if not isinstance(event, dict):
            raise malformed_stream("an event's data is not a JSON object")
        kind = event.get("type")
        index = event.get("index")
        index = index if isinstance(index, int) else -1  # no content block has it
        if kind == "message_start":
            self.read_usage(_object(event.get("message")).get("usage"))
        elif kind == "content_block_start":
            block = _object(event.get("content_block"))
            if block.get("type") == "tool_use" and index >= 0:
                position = self.tool_index.setdefault(index, len(self.tool_index))
                arguments = json.dumps(block["input"]) if block.get("input") else ""
                if arguments:
                    self.tool_has_input.add(index)
                fragment = ToolCallFragment(
                    index=position,
                    id=_text(block.get("id")) or None,
                    name=_text(block.get("name")) or None,
                    arguments=arguments,
                )
                return [ToolCallChunk(fragment)]
            if block.get("type") == "text" and _text(block.get("text")):
                return [TextChunk(_text(block.get("text")))]
        elif kind == "content_block_delta":
            delta = _object(event.get("delta"))
            text = _text(delta.get("text"))
            if delta.get("type") == "text_delta" and text:
                return [TextChunk(text)]
            partial = _text(delta.get("partial_json"))
            if delta.get("type") == "input_json_delta" and index in self.tool_index and partial:
                self.tool_has_input.add(index)
                fragment = ToolCallFragment(index=self.tool_index[index], arguments=partial)
                return [ToolCallChunk(fragment)]
        elif kind == "content_block_stop":
            if index in self.tool_index and index not in self.tool_has_input:
                # A tool without parameters: say "{}" as OpenAI would, not "".
                fragment = ToolCallFragment(index=self.tool_index[index], arguments="{}")
                return [ToolCallChunk(fragment)]
        elif kind == "message_delta":
            stop_reason = _text(_object(event.get("delta")).get("stop_reason"))
            self.stop_reason = stop_reason or self.stop_reason
            self.read_usage(event.get("usage"))
        elif kind == "message_stop":
            self.stopped = True
        return []


def _object(value: object) -> dict[str, Any]:
    """A JSON object field (absent, null or malformed: empty)."""
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str:
    """A JSON string field (absent, null or malformed: empty)."""
    return value if isinstance(value, str) else ""


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, settings: Settings) -> None:
        key = settings.anthropic_api_key.get_secret_value() if settings.anthropic_api_key else ""
        self._secrets = (key,) if key else ()
        self._default_max_tokens = settings.anthropic_default_max_tokens
        # The SDK's client says what each request carries (its base URL; the key, the
        # API version and its user agent in its headers); the requests go through
        # `UpstreamHttp` (services/providers/upstream_http.py), as the openai provider's.
        sdk = anthropic.AsyncAnthropic(
            api_key=key or PLACEHOLDER_KEY,
            # Explicit, so the SDK does not read the environment a second time.
            base_url=settings.anthropic_base_url or ANTHROPIC_DEFAULT_BASE_URL,
            max_retries=0,
        )
        self._http = UpstreamHttp(
            base_url=str(sdk.base_url),
            headers={**sdk.default_headers, **sdk.auth_headers},
            connect_timeout_s=settings.provider_connect_timeout_s,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[ProviderChunk, None]:
        params = messages_params(request, default_max_tokens=self._default_max_tokens)
        params["stream"] = True
        state = _StreamState()
        events = self._http.events("/v1/messages", params, SSEDecoder())
        try:
            async with aclosing(events):  # on cancel too: closes the upstream HTTP request
                async for event in events:
                    # What the SDK's stream skips, and its in-stream `error` event.
                    if event.event is None or event.event == "ping":
                        continue
                    if event.event == "error":
                        raise self._error_event(event.data)
                    if not event.data:
                        continue
                    for chunk in state.chunks(json.loads(event.data)):
                        yield chunk
        except UpstreamStatus as exc:
            raise self._error(exc.status, exc.body, retry_after_s(exc.headers)) from None
        except json.JSONDecodeError as exc:
            raise malformed_stream(f"invalid JSON in an event at position {exc.pos}") from None
        if not state.stopped or state.stop_reason is None:
            raise malformed_stream("the stream ended before message_stop")
        finish_reason = FINISH_REASONS.get(state.stop_reason, state.stop_reason)
        yield FinishChunk(finish_reason=finish_reason, usage=state.usage())

    def _error_event(self, data: str) -> ProviderError:
        """An `error` event inside the stream: its JSON, or its text as the message."""
        try:
            body: object = json.loads(data)
        except ValueError:
            return status_error(
                None,
                body_type=None,
                body_code=None,
                upstream_message=data or None,
                retry_after=None,
                secrets=self._secrets,
            )
        return self._error(None, body, None)

    def _error(self, status: int | None, body: object, retry_after: float | None) -> ProviderError:
        """An error body (`{"type": "error", "error": {...}}`), read as the SDK reads it."""
        error = _object(_object(body).get("error"))
        message, kind = error.get("message"), error.get("type")
        code = _object(error.get("details")).get("error_code")
        return status_error(
            status,
            body_type=kind if isinstance(kind, str) else None,
            body_code=code if isinstance(code, str) else None,
            upstream_message=message if isinstance(message, str) else None,
            retry_after=retry_after,
            secrets=self._secrets,
        )
