"""Refuse oversized request bodies with a 413 before they are read into memory.

A pure ASGI middleware: it checks `Content-Length` up front and counts the bytes
of chunked bodies as they arrive, so neither form can exhaust the process; a
body that stops arriving for `TOKENRELAY_HEADER_TIMEOUT_S` is a 408, so a slow
client cannot hold a request (and its connection) open forever either. The
answer is written in the shape of the route the request was for (a front door's
SDK must be able to read it), by the same functions as every other error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ErrorShape, Failure, failure_response, native_body
from services.errors import ApiError


class BodyRefused(ApiError):
    """The body broke a limit while the app was reading it; `failure` is the answer.

    An `ApiError`, so a route that sees it while reading answers it like any other
    refusal (the middleware then sends its own answer in the route's shape)."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure
        self.status_code = failure.status
        self.error_type = failure.error_type


def _may_carry_a_body(scope: Scope) -> bool:
    return any(name in (b"content-length", b"transfer-encoding") for name, _ in scope["headers"])


class BodySizeLimit:
    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        shapes: Mapping[str, ErrorShape] | None = None,
        idle_timeout_s: float | None = None,
    ) -> None:
        """`shapes`: the error shape of each path that does not answer natively;
        `idle_timeout_s`: the longest silence while a body is still arriving."""
        self.app = app
        self.max_bytes = max_bytes
        self.shapes = shapes or {}
        self.idle_timeout_s = idle_timeout_s

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """A request that cannot carry a body (HTTP/1.1: neither `Content-Length` nor
        `Transfer-Encoding`), such as every SSE stream's GET, goes straight to the
        app: no frame or closure of this middleware lives as long as its response."""
        if scope["type"] != "http" or not _may_carry_a_body(scope):
            return self.app(scope, receive, send)
        return self._limited(scope, receive, send)

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    bad = Failure(400, "invalid_request_error", "bad Content-Length")
                    await self._reject(scope, send, bad)
                    return
                if declared > self.max_bytes:
                    await self._reject(scope, send, self._too_large())
                    return
        received = 0
        body_done = False
        refusal: Failure | None = None
        replaced = False

        async def counting_receive() -> Message:
            nonlocal received, refusal, body_done
            if body_done or self.idle_timeout_s is None:
                # After the body, receive() waits for a disconnect as long as a
                # response streams: no bound belongs there.
                message = await receive()
            else:
                try:
                    async with asyncio.timeout(self.idle_timeout_s):
                        message = await receive()
                except TimeoutError:
                    refusal = Failure(
                        408,
                        "invalid_request_error",
                        f"the request body stalled for {self.idle_timeout_s:g} s",
                    )
                    raise BodyRefused(refusal) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > self.max_bytes:
                    refusal = self._too_large()
                    raise BodyRefused(refusal)
            return message

        async def guarded_send(message: Message) -> None:
            # The framework may catch BodyRefused while parsing and answer on its own
            # (a 400); whatever it answers once a limit was broken becomes our answer.
            nonlocal replaced
            if refusal is not None:
                if message["type"] == "http.response.start" and not replaced:
                    replaced = True
                    await self._reject(scope, send, refusal)
                return
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyRefused as refused:
            if not replaced:
                replaced = True
                await self._reject(scope, send, refused.failure)

    def _too_large(self) -> Failure:
        message = f"request body exceeds the limit of {self.max_bytes} bytes"
        return Failure(413, "request_too_large", message)

    async def _reject(self, scope: Scope, send: Send, failure: Failure) -> None:
        shape = self.shapes.get(scope.get("path", ""), native_body)
        await failure_response(failure, shape)(scope, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}
