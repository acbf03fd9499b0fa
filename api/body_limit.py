"""Refuse oversized request bodies with a 413 before they are read into memory.

A pure ASGI middleware: it checks `Content-Length` up front and counts the bytes
of chunked bodies as they arrive, so neither form can exhaust the process.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await self._reject(send, 400, "invalid_request_error", "bad Content-Length")
                    return
                if declared > self.max_bytes:
                    await self._reject_too_large(send)
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
                    await self._reject_too_large(send)
                return
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLarge:
            if not replaced:
                replaced = True
                await self._reject_too_large(send)

    async def _reject_too_large(self, send: Send) -> None:
        await self._reject(
            send,
            413,
            "request_too_large",
            f"request body exceeds the limit of {self.max_bytes} bytes",
        )

    @staticmethod
    async def _reject(send: Send, status: int, error_type: str, message: str) -> None:
        body = json.dumps({"error": {"type": error_type, "message": message}}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
