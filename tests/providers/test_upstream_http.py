"""The providers' transport (services/providers/upstream_http.py) on a real HTTP server.

What the provider tests' fakes cannot show (they close every connection after an
answer): a stream read to its end leaves its connection for the next request, so
a worker does not pay a new connection (a TLS handshake, in production) per
generation; a stream closed early closes its connection; an error answer's
headers are read case-insensitively and its body is capped.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path

import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer
from openai._streaming import SSEDecoder
from pydantic import SecretStr

from services.config import Settings
from services.errors import ProviderError
from services.generation import GenerationRequest
from services.providers.openai import OpenAIProvider
from services.providers.upstream_http import MAX_ERROR_BODY, UpstreamHttp, UpstreamStatus

EVENTS = b'data: {"n": 1}\n\ndata: {"n": 2}\n\ndata: [DONE]\n\n'


class Upstream:
    """Records the connection of every request (its transport, held, so never reused)."""

    def __init__(self) -> None:
        self.peers: list[object] = []
        self.error_answer: web.Response | None = None
        self.app = web.Application()
        self.app.router.add_post("/v1/stream", self.stream)
        self.app.router.add_post("/v1/long", self.long)
        self.app.router.add_post("/v1/chat/completions", self.chat)

    def _note(self, request: web.Request) -> None:
        self.peers.append(request.transport)

    def connections(self) -> int:
        return len({id(peer) for peer in self.peers})

    async def stream(self, request: web.Request) -> web.StreamResponse:
        self._note(request)
        await request.read()
        if self.error_answer is not None:
            return self.error_answer
        answer = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await answer.prepare(request)
        for line in EVENTS.split(b"\n\n")[:-1]:
            await answer.write(line + b"\n\n")
        await answer.write_eof()
        return answer

    async def long(self, request: web.Request) -> web.StreamResponse:
        """One event, then nothing until the client goes away (a model still generating)."""
        self._note(request)
        answer = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await answer.prepare(request)
        await answer.write(b'data: {"n": 0}\n\n')
        await asyncio.sleep(30)
        return answer

    async def chat(self, request: web.Request) -> web.StreamResponse:
        self._note(request)
        answer = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await answer.prepare(request)
        await answer.write(b'data: {"choices": [{"index": 0, "delta": {"content": "hi"}}]}\n\n')
        error = b'{"error": {"message": "bad", "type": "BadRequestError", "code": 400}}'
        await answer.write(b"data: " + error + b"\n\n")
        await answer.write_eof()
        return answer


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[Upstream, str]]:
    fake = Upstream()
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    try:
        yield fake, str(server.make_url("/v1"))
    finally:
        await server.close()


async def _read(http: UpstreamHttp, path: str) -> list[str]:
    return [event.data async for event in http.events(path, {"stream": True}, SSEDecoder())]


async def test_streams_read_to_the_end_share_one_connection(
    upstream: tuple[Upstream, str],
) -> None:
    fake, base = upstream
    http = UpstreamHttp(base_url=base, headers={}, connect_timeout_s=5)
    try:
        for _ in range(3):
            assert await _read(http, "/stream") == ['{"n": 1}', '{"n": 2}', "[DONE]"]
    finally:
        await http.aclose()
    assert len(fake.peers) == 3
    assert fake.connections() == 1, "each stream opened a connection of its own"


async def test_a_stream_closed_early_closes_its_connection(
    upstream: tuple[Upstream, str],
) -> None:
    fake, base = upstream
    http = UpstreamHttp(base_url=base, headers={}, connect_timeout_s=5)
    try:
        async with aclosing(http.events("/long", {}, SSEDecoder())) as events:
            async for event in events:
                assert event.data == '{"n": 0}'
                break
        assert await _read(http, "/stream") == ['{"n": 1}', '{"n": 2}', "[DONE]"]
    finally:
        await http.aclose()
    assert fake.connections() == 2, "a half-read answer's connection was used again"


async def test_an_error_answer_is_its_status_json_and_case_insensitive_headers(
    upstream: tuple[Upstream, str],
) -> None:
    fake, base = upstream
    fake.error_answer = web.json_response(
        {"error": {"message": "slow down"}}, status=429, headers={"Retry-After": "7"}
    )
    http = UpstreamHttp(base_url=base, headers={}, connect_timeout_s=5)
    try:
        with pytest.raises(UpstreamStatus) as raised:
            await _read(http, "/stream")
    finally:
        await http.aclose()
    assert raised.value.status == 429
    assert raised.value.body == {"error": {"message": "slow down"}}
    assert raised.value.headers["retry-after"] == "7"


async def test_an_error_answer_is_read_up_to_the_cap(upstream: tuple[Upstream, str]) -> None:
    fake, base = upstream
    fake.error_answer = web.Response(status=500, body=b"x" * (MAX_ERROR_BODY * 4))
    http = UpstreamHttp(base_url=base, headers={}, connect_timeout_s=5)
    try:
        with pytest.raises(UpstreamStatus) as raised:
            await _read(http, "/stream")
    finally:
        await http.aclose()
    assert raised.value.body == "x" * MAX_ERROR_BODY


async def test_a_mid_stream_error_with_a_numeric_code_is_that_status(
    upstream: tuple[Upstream, str],
) -> None:
    """vLLM's mid-stream error says its HTTP status as a number in `code`."""
    _, base = upstream
    provider = OpenAIProvider(Settings(openai_base_url=base, openai_api_key=SecretStr("sk-test")))
    request = GenerationRequest.model_validate(
        {"model": "openai/m", "messages": [{"role": "user", "content": "hi"}]}
    )
    seen: list[object] = []
    try:
        with pytest.raises(ProviderError) as raised:
            async with aclosing(provider.stream(request)) as chunks:
                async for chunk in chunks:
                    seen.append(chunk)
    finally:
        await provider.aclose()
    assert len(seen) == 1
    assert raised.value.error_type == "invalid_request_error"
    assert not raised.value.retryable
    assert "bad" in raised.value.message


async def test_the_proxy_the_environment_names_carries_the_requests(
    upstream: tuple[Upstream, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY (read once, at start-up) carries requests; NO_PROXY exempts hosts."""
    fake, base = upstream
    proxy = base.removesuffix("/v1")
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy)
    through_proxy = UpstreamHttp(
        base_url="http://upstream.invalid/v1", headers={}, connect_timeout_s=5
    )
    monkeypatch.setenv("NO_PROXY", "upstream.invalid")
    exempt = UpstreamHttp(base_url="http://upstream.invalid/v1", headers={}, connect_timeout_s=5)
    try:
        assert await _read(through_proxy, "/stream") == ['{"n": 1}', '{"n": 2}', "[DONE]"]
        with pytest.raises(ProviderError) as raised:
            await _read(exempt, "/stream")  # straight to a host that does not exist
        assert raised.value.error_type == "connection_error"
    finally:
        await through_proxy.aclose()
        await exempt.aclose()
    assert len(fake.peers) == 1


@pytest.fixture
async def tls_upstream() -> AsyncIterator[tuple[Upstream, str, trustme.CA]]:
    """The upstream behind TLS, its certificate signed by a CA of the test's own."""
    ca = trustme.CA()
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(served)
    fake = Upstream()
    server = TestServer(fake.app, host="127.0.0.1", scheme="https")
    await server.start_server(ssl=served)
    try:
        yield fake, str(server.make_url("/v1")), ca
    finally:
        await server.close()


async def test_tls_trusts_the_ca_named_by_ssl_cert_file_and_refuses_others(
    tls_upstream: tuple[Upstream, str, trustme.CA],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A company's own CA (SSL_CERT_FILE, as the SDKs' httpx honours it) is trusted;
    without it the same server's certificate is refused: a connection error, not a stream."""
    fake, base, ca = tls_upstream
    assert base.startswith("https://")
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    unknown = UpstreamHttp(base_url=base, headers={}, connect_timeout_s=5)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    trusted = UpstreamHttp(base_url=base, headers={}, connect_timeout_s=5)
    try:
        with pytest.raises(ProviderError) as raised:
            await _read(unknown, "/stream")
        assert raised.value.error_type == "connection_error"
        assert await _read(trusted, "/stream") == ['{"n": 1}', '{"n": 2}', "[DONE]"]
    finally:
        await unknown.aclose()
        await trusted.aclose()
    assert len(fake.peers) == 1
