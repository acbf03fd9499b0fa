"""The `openai/...` provider: Chat Completions streaming, said as the official SDK says it.

Any OpenAI-compatible server (vLLM, Ollama, llama.cpp's server) works through
`OPENAI_BASE_URL`; such servers often need no key, so a placeholder is sent when
none is configured. One connection pool per worker process, made at startup and
closed at shutdown, and no retries of its own: retries are the worker's
(worker/retry.py), because only it knows whether output was already published.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import openai
from openai._streaming import SSEDecoder  # the SDK's own SSE parsing

from services.config import Settings
from services.errors import ProviderError
from services.events import ToolCallFragment, Usage
from services.generation import GenerationRequest, Message
from services.providers.base import FinishChunk, ProviderChunk, TextChunk, ToolCallChunk
from services.providers.upstream_errors import malformed_stream, retry_after_s, status_error
from services.providers.upstream_http import UpstreamHttp, UpstreamStatus

PLACEHOLDER_KEY = "tokenrelay-no-key"  # for key-less OpenAI-compatible servers
OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"


def openai_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Our conversation turns in Chat Completions form (tool turns included)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "tool":
            out.append(
                {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
            )
        elif message.role == "assistant" and message.tool_calls:
            out.append(
                {
                    "role": "assistant",
                    "content": message.content or None,
                    "tool_calls": [
                        {
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": call.arguments},
                        }
                        for call in message.tool_calls
                    ],
                }
            )
        else:
            out.append({"role": message.role, "content": message.content})
    return out


def openai_tool_choice(choice: str) -> str | dict[str, Any]:
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def chat_params(
    request: GenerationRequest, *, include_usage: bool, max_tokens_field: str
) -> dict[str, Any]:
    """The request body, minus `stream`: every field of ours that Chat Completions has."""
    params: dict[str, Any] = {
        "model": request.provider_model,
        "messages": openai_messages(request.messages),
    }
    if include_usage:
        params["stream_options"] = {"include_usage": True}
    if request.max_tokens is not None:
        params[max_tokens_field] = request.max_tokens
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.top_p is not None:
        params["top_p"] = request.top_p
    if request.stop:
        params["stop"] = request.stop
    if request.tools:
        params["tools"] = [tool.model_dump(exclude_none=True) for tool in request.tools]
        if request.tool_choice is not None:
            params["tool_choice"] = openai_tool_choice(request.tool_choice)
    return params


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The JSON objects of a list field (absent, null or malformed: none)."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]


def _deltas(delta: dict[str, Any]) -> list[ProviderChunk]:
    """One choice's delta: its text, then its tool-call fragments."""
    out: list[ProviderChunk] = []
    content = delta.get("content")
    if isinstance(content, str) and content:
        out.append(TextChunk(content))
    for position, call in enumerate(_dicts(delta.get("tool_calls"))):
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        index = call.get("index")
        out.append(
            ToolCallChunk(
                ToolCallFragment(
                    index=index if isinstance(index, int) else position,
                    id=call.get("id") or None,
                    name=function.get("name") or None,
                    arguments=function.get("arguments") or "",
                )
            )
        )
    return out


class OpenAIProvider:
    name = "openai"

    def __init__(self, settings: Settings) -> None:
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else ""
        self._secrets = (key,) if key else ()
        self._include_usage = settings.openai_stream_usage
        # api.openai.com wants max_completion_tokens (its reasoning models refuse
        # max_tokens); compatible servers mostly know only max_tokens.
        self._max_tokens_field = (
            "max_tokens" if settings.openai_base_url else "max_completion_tokens"
        )
        # The SDK's client says what each request carries: its base URL and headers
        # (the key, its user agent, OPENAI_ORG_ID and OPENAI_PROJECT_ID from the
        # environment). The requests themselves go through `UpstreamHttp`, which
        # skips the SDK's per-request layers (services/providers/upstream_http.py).
        sdk = openai.AsyncOpenAI(
            api_key=key or PLACEHOLDER_KEY,
            # Explicit, so the SDK does not read the environment a second time.
            base_url=settings.openai_base_url or OPENAI_DEFAULT_BASE_URL,
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
        params = chat_params(
            request, include_usage=self._include_usage, max_tokens_field=self._max_tokens_field
        )
        params["stream"] = True
        finish_reason: str | None = None
        usage: Usage | None = None
        done = False
        events = self._http.events("/chat/completions", params, SSEDecoder())
        try:
            async with aclosing(events):  # on cancel too: closes the upstream HTTP request
                async for event in events:
                    if done:
                        continue  # read to its end, so the connection serves the next request
                    if event.data.startswith("[DONE]"):
                        done = True
                        continue
                    chunk = json.loads(event.data)
                    if not isinstance(chunk, dict):
                        raise malformed_stream("an event's data is not a JSON object")
                    if chunk.get("error"):
                        raise self._error_event(chunk["error"])
                    counted = chunk.get("usage")
                    if isinstance(counted, dict):
                        usage = Usage(
                            input_tokens=counted.get("prompt_tokens") or 0,
                            output_tokens=counted.get("completion_tokens") or 0,
                        )
                    for choice in _dicts(chunk.get("choices")):
                        if choice.get("index", 0) != 0:
                            continue  # we never ask for n > 1
                        delta = choice.get("delta")
                        if isinstance(delta, dict):
                            for piece in _deltas(delta):
                                yield piece
                        if choice.get("finish_reason"):
                            finish_reason = str(choice["finish_reason"])
        except UpstreamStatus as exc:
            raise self._status_error(exc) from None
        except json.JSONDecodeError as exc:
            raise malformed_stream(f"invalid JSON in an event at position {exc.pos}") from None
        if finish_reason is None:
            raise malformed_stream("the stream ended without a finish_reason")
        yield FinishChunk(finish_reason=finish_reason, usage=usage)

    def _status_error(self, exc: UpstreamStatus) -> ProviderError:
        """An HTTP error answer: its body's `error` object, as the SDK reads it."""
        body = exc.body.get("error", exc.body) if isinstance(exc.body, dict) else None
        return self._error(exc.status, body, retry_after_s(exc.headers))

    def _error_event(self, error: object) -> ProviderError:
        """An `error` object inside the stream (the SDK's in-stream APIError)."""
        return self._error(None, error, None)

    def _error(self, status: int | None, error: object, retry_after: float | None) -> ProviderError:
        fields = error if isinstance(error, dict) else {}
        message, kind, code = fields.get("message"), fields.get("type"), fields.get("code")
        return status_error(
            status,
            body_type=kind if isinstance(kind, str) else None,
            # vLLM says the HTTP status of a mid-stream error as a number here
            body_code=str(code) if isinstance(code, str | int) else None,
            upstream_message=message if isinstance(message, str) else None,
            retry_after=retry_after,
            secrets=self._secrets,
        )
