"""What a provider is: something that turns a request into a stream of chunks.

A provider's `stream` is an async generator; closing it (the worker always does,
through `contextlib.aclosing`) must close the upstream HTTP request, which is how
a cancel reaches the provider.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Protocol

from services.events import ToolCallFragment, Usage
from services.generation import GenerationRequest


@dataclass(frozen=True, slots=True)
class TextChunk:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallChunk:
    fragment: ToolCallFragment


@dataclass(frozen=True, slots=True)
class FinishChunk:
    finish_reason: str
    usage: Usage | None


ProviderChunk = TextChunk | ToolCallChunk | FinishChunk


class Provider(Protocol):
    """An LLM backend. Raises `services.errors.ProviderError` for failures it understands."""

    name: str

    def stream(self, request: GenerationRequest) -> AsyncGenerator[ProviderChunk, None]:
        """Stream one attempt. The last chunk is a FinishChunk."""
        ...

    async def aclose(self) -> None:
        """Release the provider's HTTP client (worker shutdown)."""
        ...
