"""The built-in `demo` provider: no network, no key, deterministic output.

`demo/echo` streams the last user message back; `demo/story` streams a text of
`max_tokens` tokens chosen by a generator seeded with the prompt, so the same
request always produces the same text (tests rely on that). Tokens are paced at
`tokens_per_s` to feel like a real model; 0 means as fast as possible.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
from collections.abc import AsyncGenerator

from services.errors import ProviderError
from services.events import Usage
from services.generation import GenerationRequest
from services.providers.base import FinishChunk, ProviderChunk, TextChunk

DEFAULT_STORY_TOKENS = 256
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


class DemoProvider:
    name = "demo"

    def __init__(self, tokens_per_s: float) -> None:
        self.delay_s = 1.0 / tokens_per_s if tokens_per_s > 0 else 0.0

    def listed_models(self) -> list[str]:
        return ["echo", "story"]

    async def aclose(self) -> None:
        """Nothing to release: the demo provider has no client."""

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[ProviderChunk, None]:
        prompt = "\n".join(m.content for m in request.messages)
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
                f"unknown demo model '{request.provider_model}'; use demo/echo or demo/story",
                retryable=False,
            )
        finish_reason = "stop"
        if request.max_tokens is not None and len(tokens) > request.max_tokens:
            tokens, finish_reason = tokens[: request.max_tokens], "length"
        for token in tokens:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            else:
                await asyncio.sleep(0)  # stay cancellable even at full speed
            yield TextChunk(token)
        usage = Usage(input_tokens=len(split_tokens(prompt)), output_tokens=len(tokens))
        yield FinishChunk(finish_reason=finish_reason, usage=usage)
