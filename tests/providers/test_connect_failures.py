"""A provider that cannot be reached, through each SDK and its aiohttp transport, on real sockets.

A refused connection (nothing listens) is a `connection_error`, and a connect that
never completes (a listener whose backlog is full drops the handshake) is a
`timeout`. The transport reports both as a connect timeout; the message a user
reads must say which it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import pytest

from cli.redis_server import free_port
from services.config import Settings
from services.errors import ProviderError
from services.generation import GenerationRequest
from services.providers.anthropic import AnthropicProvider
from services.providers.base import Provider
from services.providers.openai import OpenAIProvider

PROVIDERS = ["anthropic", "openai"]


@contextlib.contextmanager
def full_backlog() -> Iterator[int]:
    """A port that listens but completes no more handshakes: its backlog is full."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def provider_at(name: str, port: int) -> Provider:
    base_url = f"http://127.0.0.1:{port}" + ("/v1" if name == "openai" else "")
    settings = Settings.model_validate(
        {
            "OPENAI_BASE_URL": base_url,
            "OPENAI_API_KEY": "sk-test-unreachable",
            "ANTHROPIC_BASE_URL": base_url,
            "ANTHROPIC_API_KEY": "sk-ant-test-unreachable",
            "provider_connect_timeout_s": 0.5,
        }
    )
    if name == "openai":
        return OpenAIProvider(settings)
    return AnthropicProvider(settings)


async def first_failure(provider: Provider, name: str) -> ProviderError:
    request = GenerationRequest.model_validate(
        {"model": f"{name}/m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    )
    try:
        with pytest.raises(ProviderError) as raised:
            async with contextlib.aclosing(provider.stream(request)) as chunks:
                async for _ in chunks:
                    pass
    finally:
        await provider.aclose()
    return raised.value


@pytest.mark.parametrize("name", PROVIDERS)
async def test_nothing_listening_is_a_connection_error_not_a_timeout(name: str) -> None:
    failure = await first_failure(provider_at(name, free_port()), name)
    assert failure.error_type == "connection_error"
    assert "timed out" not in failure.message
    assert failure.retryable


@pytest.mark.parametrize("name", PROVIDERS)
async def test_a_handshake_that_never_completes_is_a_timeout(name: str) -> None:
    with full_backlog() as port:
        failure = await asyncio.wait_for(first_failure(provider_at(name, port), name), 10)
    assert failure.error_type == "timeout"
    assert "timed out" in failure.message
    assert failure.retryable
