"""Refuse oversized request bodies with a 413 before they are read into memory.

A pure ASGI middleware: it checks `Content-Length` up front and counts the bytes
of chunked bodies as they arrive, so neither form can exhaust the process. The
answer is written in the shape of the route the request was for (a front door's
SDK must be able to read it), by the same functions as every other error.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ErrorShape, Failure, failure_response, native_body


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    def __init__(
        self, app: ASGIApp, max_bytes: int, shapes: Mapping[str, ErrorShape] | None = None
    ) -> None:
        """`shapes`: the error shape of each path that does not answer natively."""
        self.app = app
        self.max_bytes = max_bytes
        self.shapes = shapes or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    bad = Failure(400, "invalid_request_error", "bad Content-Length")
                    await self._reject(scope, send, bad)
                    return
                if declared > self.max_bytes:
                    await self._reject_too_large(scope, send)
                    return
        received = 0
        exceeded = False
        replaced = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # The framework may catch BodyTooLarge while parsing and answer on its own
            # (a 400); whatever it answers once the limit was crossed becomes our 413.
            nonlocal replaced
            if exceeded:
                if message["type"] == "http.response.start" and not replaced:
                    replaced = True
                    await self._reject_too_large(scope, send)
                return
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLarge:
            if not replaced:
                replaced = True
                await self._reject_too_large(scope, send)

    async def _reject_too_large(self, scope: Scope, send: Send) -> None:
        message = f"request body exceeds the limit of {self.max_bytes} bytes"
        await self._reject(scope, send, Failure(413, "request_too_large", message))

    async def _reject(self, scope: Scope, send: Send, failure: Failure) -> None:
        shape = self.shapes.get(scope.get("path", ""), native_body)
        await failure_response(failure, shape)(scope, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}
