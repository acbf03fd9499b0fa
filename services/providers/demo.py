"""The built-in `demo` provider: no network, no key, deterministic output.

`demo/echo` streams the last user message back; `demo/story` streams a text of
`max_tokens` tokens chosen by a generator seeded with the prompt, so the same
request always produces the same text (tests rely on that). `demo/tool` calls
the first tool it is given (or the one `tool_choice` names) with arguments made
from the tool's schema and the last user message, streamed in fragments; once
the conversation ends with a tool result, it answers with that result's text,
so a whole tool round trip runs offline. Tokens are paced at
`tokens_per_s` to feel like a real model; 0 means as fast as possible.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
from collections.abc import AsyncGenerator

from services.errors import ProviderError
from services.events import ToolCallFragment, Usage
from services.generation import GenerationRequest, Tool
from services.providers.base import FinishChunk, ProviderChunk, TextChunk, ToolCallChunk

DEFAULT_STORY_TOKENS = 256
TOOL_ARGUMENT_FRAGMENT = 8
_TOKEN = re.compile(r"\s*\S+|\s+")
_VOCABULARY = [
    "the",
    "a",
    "relay",
    "stream",
    "token",
    "redis",
    "worker",
    "viewer",
    "reconnects",
    "resumes",
    "across",
    "replicas",
    "while",
    "every",
    "event",
    "keeps",
    "its",
    "place",
    "and",
    "nothing",
    "is",
    "lost",
    "or",
    "repeated",
    "in",
    "transit",
    "model",
    "answers",
    "quietly",
    "light",
    "river",
    "mountain",
    "signal",
    "packet",
    "morning",
    "evening",
    "story",
    "engineer",
    "builds",
    "careful",
    "system",
    "that",
    "survives",
    "restarts",
    "deploys",
    "flaky",
    "networks",
]


def split_tokens(text: str) -> list[str]:
    """Word-sized tokens that concatenate back to exactly `text`."""
    return _TOKEN.findall(text)


def story_tokens(prompt: str, count: int) -> list[str]:
    seed = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "big")
    rng = random.Random(seed)
    words = [rng.choice(_VOCABULARY) for _ in range(count)]
    tokens: list[str] = []
    for index, word in enumerate(words):
        if index == 0:
            word = word.capitalize()
        elif index % 12 == 0:
            tokens[-1] += "."
            word = word.capitalize()
        tokens.append(word if index == 0 else f" {word}")
    if tokens:
        tokens[-1] += "."
    return tokens


def input_tokens(request: GenerationRequest) -> int:
    """The input tokens the demo provider reports for `request` (and counts for
    `POST /v1/messages/count_tokens`): the word-sized tokens of every message."""
    return len(split_tokens("\n".join(m.content for m in request.messages)))


def _wake(woken: asyncio.Future[None]) -> None:
    if not woken.done():  # not cancelled meanwhile
        woken.set_result(None)


class DemoProvider:
    name = "demo"

    def __init__(self, tokens_per_s: float) -> None:
        self.delay_s = 1.0 / tokens_per_s if tokens_per_s > 0 else 0.0

    async def aclose(self) -> None:
        """Nothing to release: the demo provider has no client."""

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[ProviderChunk, None]:
        """The answer's chunks, the n-th due `delay_s` times n after the start; a text
        answer's finish follows its last token.

        The schedule is absolute, as a real model's is: a stream whose worker was busy
        catches up instead of drifting later by the worker's delay at every token
        (a sleep of `delay_s` per token made 150 tokens at 50/s take 3.1 s on a busy
        worker; bench/README.md, "Eighth round").
        """
        paced, finish = self._answer(request)
        loop = asyncio.get_running_loop()
        started = loop.time()
        for index, chunk in enumerate(paced, start=1):
            due = started + index * self.delay_s
            if due > loop.time():
                # `asyncio.sleep`, without its coroutine: a busy worker wakes here for
                # every token of every stream (bench/README.md, "Ninth round").
                woken = loop.create_future()
                timer = loop.call_at(due, _wake, woken)
                try:
                    await woken
                finally:
                    timer.cancel()
            else:  # past its time: still one turn of the loop, to stay cancellable
                await asyncio.sleep(0)
            yield chunk
        if finish is not None:
            yield finish

    def _answer(self, request: GenerationRequest) -> tuple[list[ProviderChunk], FinishChunk | None]:
        """The chunks to pace, and a finish to send at once after them (None: it is paced)."""
        prompt = "\n".join(m.content for m in request.messages)
        if request.provider_model == "tool":
            return tool_turn(request, prompt), None
        if request.provider_model == "echo":
            last_user = next(
                (m.content for m in reversed(request.messages) if m.role == "user"), ""
            )
            tokens = split_tokens(last_user)
        elif request.provider_model == "story":
            tokens = story_tokens(prompt, request.max_tokens or DEFAULT_STORY_TOKENS)
        else:
            raise ProviderError(
                "invalid_request_error",
                f"unknown demo model '{request.provider_model}'; "
                "use demo/echo, demo/story or demo/tool",
                retryable=False,
            )
        finish_reason = "stop"
        if request.max_tokens is not None and len(tokens) > request.max_tokens:
            tokens, finish_reason = tokens[: request.max_tokens], "length"
        usage = Usage(input_tokens=input_tokens(request), output_tokens=len(tokens))
        text: list[ProviderChunk] = [TextChunk(token) for token in tokens]
        return text, FinishChunk(finish_reason=finish_reason, usage=usage)


def demo_tool_arguments(tool: Tool, user_text: str) -> str:
    """Deterministic JSON arguments for `tool`: one value per schema property, by type."""
    properties = tool.function.parameters.get("properties")
    values: dict[str, object] = {}
    by_type: dict[str, object] = {"integer": 42, "number": 42, "boolean": True, "array": []}
    for name, schema in (properties if isinstance(properties, dict) else {}).items():
        kind = schema.get("type") if isinstance(schema, dict) else None
        values[name] = (
            user_text
            if kind == "string"
            else by_type.get(str(kind), {} if kind == "object" else None)
        )
    return json.dumps(values, separators=(",", ":"), ensure_ascii=False)


def tool_turn(request: GenerationRequest, prompt: str) -> list[ProviderChunk]:
    """What `demo/tool` answers: a call of a tool, or the text of the tool result it got."""
    usage_in = input_tokens(request)
    last = request.messages[-1]
    tools = request.tools or []
    if last.role == "tool" or not tools or request.tool_choice == "none":
        text = (
            last.content
            if last.role == "tool"
            else next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        )
        tokens = split_tokens(text)
        finish = FinishChunk("stop", Usage(input_tokens=usage_in, output_tokens=len(tokens)))
        return [*(TextChunk(token) for token in tokens), finish]
    tool = next((t for t in tools if t.function.name == request.tool_choice), tools[0])
    user_text = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
    arguments = demo_tool_arguments(tool, user_text)
    call_id = "call_" + hashlib.sha256(prompt.encode()).hexdigest()[:24]
    fragments = [
        arguments[i : i + TOOL_ARGUMENT_FRAGMENT]
        for i in range(0, len(arguments), TOOL_ARGUMENT_FRAGMENT)
    ]
    chunks: list[ProviderChunk] = [
        ToolCallChunk(ToolCallFragment(index=0, id=call_id, name=tool.function.name))
    ]
    chunks.extend(ToolCallChunk(ToolCallFragment(index=0, arguments=f)) for f in fragments)
    usage = Usage(input_tokens=usage_in, output_tokens=len(fragments))
    return [*chunks, FinishChunk("tool_calls", usage)]
