"""Our HTTP protocol puts cli/lean_connection.py's objects in place of uvicorn's.

A real uvicorn server in this process with our protocol class: the app looks at
its own request's cycle (through the direct-body extension) and reads a body
that arrives after the headers, which waits on the replaced event.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import httpx
import uvicorn

from api.streaming.direct import EXTENSION
from cli.http_protocol import bounded_http_protocol
from cli.lean_connection import LazyEvent
from tests.support.polling import wait_for

SEEN: dict[str, Any] = {}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    cycle = scope["extensions"][EXTENSION]._cycle
    SEEN["message_event"] = type(cycle.message_event)
    SEEN["flow_event"] = type(cycle.flow._is_writable_event)
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body[::-1]})


async def test_each_connection_and_request_gets_the_lean_objects() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        app,
        port=port,
        http=bounded_http_protocol(65_536, 10.0),
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        await wait_for(lambda: server.started, timeout_s=10, what="the server to listen")

        async def slow_body() -> Any:
            yield b"abc"
            await asyncio.sleep(0.2)  # the app is waiting on the message event by now
            yield b"def"

        async with httpx.AsyncClient() as client:
            answer = await client.post(f"http://127.0.0.1:{port}/", content=slow_body())
        assert answer.content == b"fedcba"
        assert SEEN["message_event"] is LazyEvent
        assert SEEN["flow_event"] is LazyEvent
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await serving
