"""`TokenRelay` and `AsyncTokenRelay`: the native API, with streams that resume.

Authentication is an API key or a viewer token, both sent as
`Authorization: Bearer …` (never in a URL). Plain requests are retried only where
asking again cannot do harm: any request that never reached the server (connect
errors), a `GET` that broke or met a 5xx, and a 503 (the server's own "try again",
with `Retry-After`). A 429 raises `RateLimitError` unless the client was made with
`wait_on_rate_limit=True`, which waits `Retry-After` and asks again, at most
`max_retries` times.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx

from ._errors import APIConnectionError, APIStatusError, APITimeoutError, error_for_response
from ._stream import AsyncGenerationStream, GenerationStream, ReconnectPolicy
from ._types import CreatedGeneration, Generation, GenerationList, ViewerToken

__all__ = ["AsyncTokenRelay", "TokenRelay"]

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
_VERSION = "0.1.0"


def _settings(
    base_url: str | None, api_key: str | None, token: str | None
) -> tuple[str, dict[str, str]]:
    if api_key is not None and token is not None:
        raise ValueError("pass api_key or token, not both")
    if api_key is None and token is None:
        api_key = os.environ.get("TOKENRELAY_API_KEY") or None
    url = (base_url or os.environ.get("TOKENRELAY_URL") or DEFAULT_BASE_URL).rstrip("/")
    headers = {"User-Agent": f"tokenrelay-client-python/{_VERSION}", "Accept": "application/json"}
    credential = api_key if api_key is not None else token
    if credential:
        headers["Authorization"] = f"Bearer {credential}"
    return url, headers


def _body(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    max_tokens: int | None,
    temperature: float | None,
    tools: Sequence[Mapping[str, Any]] | None,
    metadata: Mapping[str, str] | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [dict(m) for m in messages]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if temperature is not None:
        body["temperature"] = temperature
    if tools is not None:
        body["tools"] = [dict(t) for t in tools]
    if metadata is not None:
        body["metadata"] = dict(metadata)
    return body


def _list_params(
    limit: int | None, status: Sequence[str] | None, ids: Sequence[str] | None
) -> list[tuple[str, str | int]]:
    params: list[tuple[str, str | int]] = []
    if limit is not None:
        params.append(("limit", limit))
    params += [("status", s) for s in status or ()]
    params += [("id", i) for i in ids or ()]
    return params


class _Retry:
    """The retry decision for one plain (non-stream) request."""

    def __init__(self, method: str, max_retries: int, wait_on_rate_limit: bool) -> None:
        self.method = method
        self.max_retries = max_retries
        self.wait_on_rate_limit = wait_on_rate_limit
        self.tries = 0

    def after_error(self, exc: httpx.HTTPError) -> float:
        """The wait before trying again after a transport error, or raises."""
        self.tries += 1
        never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
        if self.tries > self.max_retries or not (never_sent or self.method == "GET"):
            timed_out = isinstance(exc, httpx.TimeoutException)
            kind = APITimeoutError if timed_out else APIConnectionError
            raise kind(f"{self.method} failed: {exc!r}", attempts=self.tries) from exc
        return self._backoff()

    def after_status(self, error: APIStatusError) -> float:
        """The wait before trying again after an error answer, or raises it."""
        self.tries += 1
        retryable = (
            error.status_code == 503
            or (error.status_code >= 500 and self.method == "GET")
            or (error.status_code == 429 and self.wait_on_rate_limit)
        )
        if self.tries > self.max_retries or not retryable:
            raise error
        after = error.retry_after_s
        return after if after is not None else self._backoff()

    def _backoff(self) -> float:
        return min(8.0, 0.5 * 2.0 ** (self.tries - 1)) * (1 + random.random() * 0.25)


class _ClientBase:
    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        token: str | None,
        timeout: float,
        max_retries: int,
        wait_on_rate_limit: bool,
        stream_policy: ReconnectPolicy | None,
    ) -> None:
        self.base_url, self._headers = _settings(base_url, api_key, token)
        self.timeout = timeout
        self.max_retries = max_retries
        self.wait_on_rate_limit = wait_on_rate_limit
        self.stream_policy = stream_policy or ReconnectPolicy(wait_on_rate_limit=wait_on_rate_limit)


class TokenRelay(_ClientBase):
    """A synchronous client. `with TokenRelay(...) as tr:` closes its connections.

    `http_client` (e.g. one with a proxy, or event hooks) is used as given, with
    its base URL, headers and timeout set from these arguments; the caller
    closes it.
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 2,
        wait_on_rate_limit: bool = False,
        stream_policy: ReconnectPolicy | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(
            base_url=base_url,
            api_key=api_key,
            token=token,
            timeout=timeout,
            max_retries=max_retries,
            wait_on_rate_limit=wait_on_rate_limit,
            stream_policy=stream_policy,
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client()
        self._http.base_url = httpx.URL(self.base_url)
        self._http.headers.update(self._headers)
        self._http.timeout = httpx.Timeout(timeout)
        self.generations = Generations(self)

    def __enter__(self) -> TokenRelay:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        retry = _Retry(method, self.max_retries, self.wait_on_rate_limit)
        while True:
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                time.sleep(retry.after_error(exc))
                continue
            if response.is_success:
                return response.json() if response.content else None
            time.sleep(retry.after_status(error_for_response(response)))


class AsyncTokenRelay(_ClientBase):
    """An asyncio client. `async with AsyncTokenRelay(...) as tr:` closes its connections.

    `http_client` as for `TokenRelay`.
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 2,
        wait_on_rate_limit: bool = False,
        stream_policy: ReconnectPolicy | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(
            base_url=base_url,
            api_key=api_key,
            token=token,
            timeout=timeout,
            max_retries=max_retries,
            wait_on_rate_limit=wait_on_rate_limit,
            stream_policy=stream_policy,
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient()
        self._http.base_url = httpx.URL(self.base_url)
        self._http.headers.update(self._headers)
        self._http.timeout = httpx.Timeout(timeout)
        self.generations = AsyncGenerations(self)

    async def __aenter__(self) -> AsyncTokenRelay:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        retry = _Retry(method, self.max_retries, self.wait_on_rate_limit)
        while True:
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                await asyncio.sleep(retry.after_error(exc))
                continue
            if response.is_success:
                return response.json() if response.content else None
            await asyncio.sleep(retry.after_status(error_for_response(response)))


def _gen_path(generation_id: str, suffix: str = "") -> str:
    if not generation_id or "/" in generation_id:
        raise ValueError(f"not a generation id: {generation_id!r}")
    return f"/v1/generations/{generation_id}{suffix}"


class Generations:
    """`tr.generations`: create, read, follow, cancel, list and share generations."""

    def __init__(self, client: TokenRelay) -> None:
        self._client = client

    def create(
        self,
        *,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        max_tokens: int | None = None,
        temperature: float | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> CreatedGeneration:
        """Queues a generation; it runs in a worker whether or not anyone watches."""
        body = _body(model, messages, max_tokens, temperature, tools, metadata)
        return CreatedGeneration.from_json(
            self._client._request("POST", "/v1/generations", json=body)
        )

    def get(self, generation_id: str) -> Generation:
        """Status and all the text so far (of the current attempt)."""
        return Generation.from_json(self._client._request("GET", _gen_path(generation_id)))

    def cancel(self, generation_id: str) -> Generation:
        """Stops a queued or running generation; `ConflictError` if it already finished."""
        path = _gen_path(generation_id, "/cancel")
        return Generation.from_json(self._client._request("POST", path))

    def list(
        self,
        *,
        limit: int | None = None,
        status: Sequence[str] | None = None,
        ids: Sequence[str] | None = None,
    ) -> GenerationList:
        """Recent generations, newest first, without their text."""
        data = self._client._request(
            "GET", "/v1/generations", params=_list_params(limit, status, ids)
        )
        return GenerationList(list(data.get("data") or []), bool(data.get("has_more")))

    def viewer_token(self, generation_id: str, *, ttl_s: int | None = None) -> ViewerToken:
        """A signed token that can only read this generation (for a watch link)."""
        path = _gen_path(generation_id, "/viewer-tokens")
        data = self._client._request("POST", path, json={} if ttl_s is None else {"ttl_s": ttl_s})
        return ViewerToken(
            data["token"], data.get("expires_at"), data["watch_url"], data["events_url"]
        )

    def stream(self, generation_id: str, *, last_event_id: str | None = None) -> GenerationStream:
        """The generation's events from the first (or after `last_event_id`), resuming."""
        _gen_path(generation_id)
        return GenerationStream(
            self._client,
            generation_id,
            last_event_id=last_event_id,
            policy=self._client.stream_policy,
        )


class AsyncGenerations:
    """`tr.generations` of `AsyncTokenRelay`."""

    def __init__(self, client: AsyncTokenRelay) -> None:
        self._client = client

    async def create(
        self,
        *,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        max_tokens: int | None = None,
        temperature: float | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> CreatedGeneration:
        """Queues a generation; it runs in a worker whether or not anyone watches."""
        body = _body(model, messages, max_tokens, temperature, tools, metadata)
        data = await self._client._request("POST", "/v1/generations", json=body)
        return CreatedGeneration.from_json(data)

    async def get(self, generation_id: str) -> Generation:
        """Status and all the text so far (of the current attempt)."""
        return Generation.from_json(await self._client._request("GET", _gen_path(generation_id)))

    async def cancel(self, generation_id: str) -> Generation:
        """Stops a queued or running generation; `ConflictError` if it already finished."""
        path = _gen_path(generation_id, "/cancel")
        return Generation.from_json(await self._client._request("POST", path))

    async def list(
        self,
        *,
        limit: int | None = None,
        status: Sequence[str] | None = None,
        ids: Sequence[str] | None = None,
    ) -> GenerationList:
        """Recent generations, newest first, without their text."""
        data = await self._client._request(
            "GET", "/v1/generations", params=_list_params(limit, status, ids)
        )
        return GenerationList(list(data.get("data") or []), bool(data.get("has_more")))

    async def viewer_token(self, generation_id: str, *, ttl_s: int | None = None) -> ViewerToken:
        """A signed token that can only read this generation (for a watch link)."""
        path = _gen_path(generation_id, "/viewer-tokens")
        body = {} if ttl_s is None else {"ttl_s": ttl_s}
        data = await self._client._request("POST", path, json=body)
        return ViewerToken(
            data["token"], data.get("expires_at"), data["watch_url"], data["events_url"]
        )

    def stream(
        self, generation_id: str, *, last_event_id: str | None = None
    ) -> AsyncGenerationStream:
        """The generation's events from the first (or after `last_event_id`), resuming."""
        _gen_path(generation_id)
        return AsyncGenerationStream(
            self._client,
            generation_id,
            last_event_id=last_event_id,
            policy=self._client.stream_policy,
        )
