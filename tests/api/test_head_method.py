"""HEAD on the probes and the pages: the GET's status and headers, and no body on the wire."""

from __future__ import annotations

import asyncio
import signal

import httpx
import pytest

from tests.support.processes import ApiProcess, stack_env
from tests.support.stack import Stack

PATHS = [
    "/healthz",
    "/readyz",
    "/",
    "/watch/gen_0123456789abcdef0123456789abcdef",
    "/watch/x",
    "/dashboard",
    "/static/js/sse.js",
    "/favicon.ico",
]
SAME_HEADERS = ["content-type", "content-length", "content-security-policy", "etag", "retry-after"]


@pytest.mark.parametrize("path", PATHS)
async def test_head_answers_like_get_without_a_body(
    client: httpx.AsyncClient, stack: Stack, path: str
) -> None:
    got = await client.get(path)
    head = await client.head(path)
    assert got.status_code == 200
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) == len(got.content)
    for name in SAME_HEADERS:
        assert head.headers.get(name) == got.headers.get(name), name


async def test_no_body_bytes_follow_a_head_answer_on_a_kept_alive_connection(
    stack: Stack,
) -> None:
    # A HEAD answer followed by body bytes would be read as the start of the next
    # answer: pipeline HEAD then GET and check the second answer starts cleanly.
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.api.port)
    writer.write(
        b"HEAD /dashboard HTTP/1.1\r\nHost: t\r\n\r\n"
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    await writer.drain()
    wire = await asyncio.wait_for(reader.read(), 15)
    writer.close()
    first, _, rest = wire.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 ")
    assert rest.startswith(b"HTTP/1.1 200 "), rest[:80]
    assert rest.endswith(b'{"status":"ok"}')


async def test_head_on_readyz_while_draining_is_the_503(redis_url: str) -> None:
    api = ApiProcess(stack_env(redis_url, TOKENRELAY_SHUTDOWN_DELAY_S="10")).wait_ready()
    try:
        api.signal(signal.SIGTERM)
        async with httpx.AsyncClient(base_url=api.base_url, timeout=10) as client:
            for _ in range(100):
                got = await client.get("/readyz")
                if got.status_code == 503:
                    break
                await asyncio.sleep(0.05)
            head = await client.head("/readyz")
        assert got.status_code == 503
        assert head.status_code == 503
        assert head.content == b""
        assert head.headers["retry-after"] == got.headers["retry-after"]
        assert int(head.headers["content-length"]) == len(got.content)
    finally:
        api.stop()


async def test_head_never_opens_an_event_stream(client: httpx.AsyncClient, stack: Stack) -> None:
    created = await client.post(
        "/v1/generations",
        json={"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]},
    )
    # Answered at once, with no stream behind it (today: 405, GET only).
    head = await client.head(created.json()["events_url"], timeout=5)
    assert head.status_code != 200
    assert head.content == b""
