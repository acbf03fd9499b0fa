"""SSE writers for the native, OpenAI and Anthropic formats."""

from __future__ import annotations

from collections.abc import Callable

from api.formats.anthropic import AnthropicEventFormat
from api.formats.base import StreamFormat
from api.formats.native import NativeFormat
from api.formats.openai import OpenAIChunkFormat
from services.generation import GenerationStatus

FormatFactory = Callable[[GenerationStatus], StreamFormat]

FORMATS: dict[str, FormatFactory] = {
    "native": lambda _status: NativeFormat(),
    "openai": lambda status: OpenAIChunkFormat(status.id, status.model, status.created_at),
    "anthropic": lambda status: AnthropicEventFormat(status.id, status.model, status.created_at),
}


def make_format(name: str, status: GenerationStatus) -> StreamFormat:
    return FORMATS[name](status)
