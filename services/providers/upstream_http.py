"""A provider's streamed answer over one aiohttp session, said as the SDK would say it.

The SDKs' request path costs about 1.7 ms of CPU per request before a byte is
sent (a request options model, the base URL parsed three times, header merging,
httpx's client around the SDK's own aiohttp transport) and a wrapper around every
chunk read (bench/README.md, "Sixth round"). A worker pays that on the path to every
first token, on two cores shared with Redis and the API. So the providers post here
instead, and the SDK still decides what is said: the headers (the key, the API
version, the user agent, the organisation and project it reads from the
environment) and the base URL come from the provider's SDK client, made once per
worker, and the answer is read by the SDK's own SSE decoder.

What this module adds is only the transport: a failure before the answer's events
is a `ProviderError` (services/providers/upstream_errors.py decides its type), an
HTTP error status is an `UpstreamStatus` carrying the facts the provider reads its
error from. Timeouts: connecting is bounded here; reading is not (the attempt's
first-token, idle and total limits bound it, worker/retry.py, with one timer per
attempt instead of one per read).
"""

from __future__ import annotations

import json
import os
import ssl
import urllib.parse
import urllib.request
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Protocol

import aiohttp
import certifi

from services.errors import ProviderError
from services.providers.upstream_errors import connection_error

MAX_ERROR_BODY = 64 * 1024
"""Bytes of an error answer read for its message; the rest is not worth waiting for."""


class ServerSentEvent(Protocol):
    """One event as the SDKs' decoders give it."""

    @property
    def event(self) -> str | None: ...

    @property
    def data(self) -> str: ...


class SseDecoder(Protocol):
    """The SDKs' SSE decoder (`openai._streaming.SSEDecoder`, Anthropic's twin)."""

    def aiter_bytes(self, iterator: AsyncIterator[bytes]) -> AsyncIterator[ServerSentEvent]: ...


class UpstreamStatus(Exception):
    """The provider answered an HTTP error status: what its error is read from."""

    def __init__(self, status: int, body: object, headers: Mapping[str, str]) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body
        """The answer's JSON, or its text when it is not JSON."""
        self.headers = headers
        """Case-insensitive, as HTTP header names are."""


class UpstreamHttp:
    """POSTs a JSON body and yields the answer's server-sent events, one session per worker."""

    def __init__(
        self,
        *,
        base_url: str,
        headers: Mapping[str, object],
        connect_timeout_s: float,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        # The SDK's "send nothing" markers (an organisation not configured) are not strings.
        self._headers = {name: value for name, value in headers.items() if isinstance(value, str)}
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout_s, sock_read=None
        )
        # The environment is read once, at start-up: the proxy and whom to trust.
        self._proxy = proxy_for(base_url)
        self._tls = tls_context()
        self._session: aiohttp.ClientSession | None = None

    def _open_session(self) -> aiohttp.ClientSession:
        """Made on first use (aiohttp binds a session to the running loop)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                # No cap of the connector's: a worker runs up to `worker_max_jobs`
                # streams at once, and a waiting stream would look like a slow provider.
                connector=aiohttp.TCPConnector(limit=0, ssl=self._tls),
                timeout=self._timeout,
                # Not aiohttp's trust_env: it reads the proxy variables and ~/.netrc
                # again for every request, in a thread, on the path to the first
                # token. The proxy is read once instead (`proxy_for`).
                trust_env=False,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def events(
        self, path: str, body: Mapping[str, object], decoder: SseDecoder
    ) -> AsyncGenerator[ServerSentEvent, None]:
        """The events of the answer to POST `body` at `path`, until the answer ends.

        Closing the generator early (a cancel, a limit) closes the connection;
        an answer read to its end leaves it to the pool for the next request.
        """
        session = self._open_session()
        try:
            response = await session.post(
                self._base_url + path,
                data=json.dumps(body).encode(),
                headers=self._headers,
                allow_redirects=False,
                proxy=self._proxy,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _failed(exc) from None
        try:
            if response.status >= 400:
                raise UpstreamStatus(response.status, await _error_body(response), response.headers)
            async for event in decoder.aiter_bytes(response.content.iter_any()):
                yield event
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _failed(exc) from None
        finally:
            if response.content.is_eof():
                response.release()
            else:
                response.close()


def tls_context() -> ssl.SSLContext:
    """Whom to trust, as the SDKs' httpx decides: SSL_CERT_FILE or SSL_CERT_DIR when set
    (a company's own CA, a TLS-inspecting proxy), else the system's store, else the
    `certifi` bundle (an image without a system store)."""
    if cafile := os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=cafile)
    if capath := os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=capath)
    system = ssl.get_default_verify_paths()
    if os.path.isfile(system.openssl_cafile) or os.path.isdir(system.openssl_capath):
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


def proxy_for(url: str) -> str | None:
    """The proxy the environment names for `url`, as the SDKs' httpx reads it: HTTPS_PROXY
    or HTTP_PROXY by the URL's scheme, else ALL_PROXY, and none for a host NO_PROXY lists."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname is None or urllib.request.proxy_bypass(parts.hostname):
        return None
    proxies = urllib.request.getproxies_environment()
    return proxies.get(parts.scheme) or proxies.get("all")


def _failed(exc: BaseException) -> ProviderError:
    return connection_error(exc, timed_out=isinstance(exc, TimeoutError))


async def _error_body(response: aiohttp.ClientResponse) -> object:
    """The error answer's JSON (or text), from at most `MAX_ERROR_BODY` bytes."""
    raw = bytearray()
    while len(raw) < MAX_ERROR_BODY:
        piece = await response.content.read(MAX_ERROR_BODY - len(raw))
        if not piece:
            break
        raw += piece
    text = raw.decode("utf-8", errors="replace")
    try:
        parsed: object = json.loads(text)
    except ValueError:
        return text
    return parsed
