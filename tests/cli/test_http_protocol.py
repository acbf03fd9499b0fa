"""The bound on request heads (cli/http_protocol.py), over raw TCP to a real API process.

The API runs with a 1 s header timeout and the default 64 KiB head limit. Wall
clock is only ever a generous upper bound here (a test timeout), never a figure
to meet; `bench/slow_headers.py` measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from services import keys
from tests.api.test_stream_basics import create, expected_story
from tests.conftest import Stack, running_stack
from tests.support.processes import stack_env
from tests.support.sse import assemble_text, read_sse

HEADER_TIMEOUT_S = 1.0
LIMIT = 65_536  # the default TOKENRELAY_MAX_HEADER_BYTES
PATIENCE_S = 15.0  # far above every timeout under test: only a hang fails on it


@pytest.fixture(scope="module")
def bounded(redis_url: str) -> Iterator[Stack]:
    env = stack_env(redis_url, TOKENRELAY_HEADER_TIMEOUT_S=str(HEADER_TIMEOUT_S))
    with running_stack(redis_url, env) as running:
        yield running


class Raw:
    """One client connection, bytes in and out, and the means to see it closed."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, stack: Stack) -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", stack.api.port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        """One response with a Content-Length body: status, headers, body."""
        async with asyncio.timeout(PATIENCE_S):
            head = await self.reader.readuntil(b"\r\n\r\n")
            status_line, *lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in filter(None, lines):
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return int(status_line.split()[1]), headers, body

    async def closed_by_server(self) -> bool:
        """True once the server has closed the connection (EOF or reset)."""
        try:
            async with asyncio.timeout(PATIENCE_S):
                rest = await self.reader.read()
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        assert rest == b"", rest[:200]
        return True

    def close(self) -> None:
        self.writer.close()


def request(path: str = "/healthz", extra: bytes = b"") -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: test\r\n" + extra + b"\r\n"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


async def send_huge_head(stack: Stack, size: int) -> tuple[int, dict[str, str], bytes, bool]:
    """A head with one `size`-byte header, written while the answer is read."""
    raw = await Raw.connect(stack)

    async def flood() -> None:
        await raw.send(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Big: ")
        chunk = b"a" * 65_536
        for _ in range(size // len(chunk)):
            await raw.send(chunk)
        await raw.send(b"\r\n\r\n")

    sender = asyncio.create_task(flood())
    try:
        status, headers, body = await raw.response()
        closed = await raw.closed_by_server()
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sender
        raw.close()
    return status, headers, body, closed


async def test_a_huge_head_is_refused_with_431_and_closed_without_growing_memory(
    bounded: Stack,
) -> None:
    before = rss_kib(bounded.api.pid)
    sent = 0
    for _ in range(4):
        status, headers, body, closed = await send_huge_head(bounded, 8 << 20)
        sent += 8 << 20
        assert status == 431
        assert headers["connection"] == "close"
        assert headers["content-type"] == "application/json"
        assert b'"invalid_request_error"' in body
        assert closed
    grown = (rss_kib(bounded.api.pid) - before) * 1024
    # Without the bound the process kept every header it was sent (and more): this
    # only tells "kept them" from "dropped them"; bench/slow_headers.py has figures.
    assert grown < sent / 2, f"API grew by {grown >> 20} MiB for {sent >> 20} MiB of headers"


UPGRADE = b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"


@pytest.mark.parametrize("upgrade", [b"", UPGRADE], ids=["plain", "upgrade"])
async def test_a_head_sent_all_at_once_and_just_over_the_limit_is_refused(
    bounded: Stack, upgrade: bytes
) -> None:
    raw = await Raw.connect(bounded)
    await raw.send(request(extra=upgrade + b"X-Big: " + b"a" * (LIMIT + 100) + b"\r\n"))
    status, _, _ = await raw.response()
    assert status == 431
    assert await raw.closed_by_server()
    raw.close()
    assert "Traceback" not in bounded.api.log() and "Fatal error" not in bounded.api.log()


GENERATION = b'{"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]}'
CHUNKED_POST = (
    b"POST /v1/generations HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n" % (len(GENERATION), GENERATION)
)


async def test_huge_trailer_fields_after_a_chunked_body_close_the_connection(
    bounded: Stack,
) -> None:
    # Trailers are header fields too, and httptools keeps them in memory the same way.
    raw = await Raw.connect(bounded)

    async def flood() -> None:
        await raw.send(CHUNKED_POST + b"X-Trailer: ")
        for _ in range(128):  # 8 MiB
            await raw.send(b"t" * 65_536)
        await raw.send(b"\r\n\r\n")

    sender = asyncio.create_task(flood())
    try:
        async with asyncio.timeout(PATIENCE_S):
            answer = await raw.reader.read()  # the app never got its whole request
        assert answer == b"", answer[:100]
    except ConnectionResetError:
        pass
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sender
        raw.close()


async def test_a_small_trailer_is_fine(bounded: Stack) -> None:
    raw = await Raw.connect(bounded)
    await raw.send(CHUNKED_POST + b"X-Trailer: small\r\n\r\n")
    status, _, body = await raw.response()
    assert status == 202, body
    raw.close()


async def test_large_but_legal_headers_are_served(bounded: Stack) -> None:
    # 60 KB in many headers, as a request with big cookies and tokens might carry
    extra = b"".join(b"X-Pad-%d: " % n + b"b" * 5_000 + b"\r\n" for n in range(12))
    raw = await Raw.connect(bounded)
    await raw.send(request(extra=extra))
    status, _, body = await raw.response()
    assert status == 200, body
    # and the connection stays usable
    await raw.send(request())
    status, _, _ = await raw.response()
    assert status == 200
    raw.close()


async def test_half_a_request_line_and_then_nothing_is_answered_408_and_closed(
    bounded: Stack,
) -> None:
    raw = await Raw.connect(bounded)
    started = time.monotonic()
    await raw.send(b"GET /heal")
    status, headers, _ = await raw.response()
    waited = time.monotonic() - started
    assert status == 408
    assert headers["connection"] == "close"
    assert await raw.closed_by_server()
    assert waited >= HEADER_TIMEOUT_S / 2, "closed long before the header timeout"
    raw.close()


async def test_a_connection_that_sends_nothing_is_closed(bounded: Stack) -> None:
    raw = await Raw.connect(bounded)
    assert await raw.closed_by_server()
    raw.close()


async def test_trickling_a_head_does_not_extend_the_deadline(bounded: Stack) -> None:
    raw = await Raw.connect(bounded)
    head = request(extra=b"X-Slow: " + b"s" * 100 + b"\r\n")

    async def trickle() -> None:  # a byte every 50 ms: about 6 s, never the final CRLF
        for byte in head[:-2]:
            await raw.send(bytes([byte]))
            await asyncio.sleep(0.05)

    sender = asyncio.create_task(trickle())
    status, _, _ = await raw.response()
    assert not sender.done(), "the whole head was trickled in before any answer"
    sender.cancel()
    with contextlib.suppress(asyncio.CancelledError, ConnectionError):
        await sender
    assert status == 408
    assert await raw.closed_by_server()
    raw.close()


async def test_a_head_that_arrives_in_pieces_within_the_timeout_is_served(
    bounded: Stack,
) -> None:
    raw = await Raw.connect(bounded)
    head = request(extra=b"X-Pieces: yes\r\n")
    for start in range(0, len(head), 10):
        await raw.send(head[start : start + 10])
        await asyncio.sleep(0.02)
    status, _, _ = await raw.response()
    assert status == 200
    raw.close()


async def test_keep_alive_idles_longer_than_the_header_timeout_between_requests(
    bounded: Stack,
) -> None:
    raw = await Raw.connect(bounded)
    for _ in range(3):
        await raw.send(request())
        status, _, _ = await raw.response()
        assert status == 200
        await asyncio.sleep(HEADER_TIMEOUT_S * 1.5)  # idle under uvicorn's 5 s keep-alive
    raw.close()


async def test_pipelined_requests_are_all_answered(bounded: Stack) -> None:
    raw = await Raw.connect(bounded)
    await raw.send(request("/healthz") + request("/readyz") + request("/healthz"))
    bodies = [(await raw.response()) for _ in range(3)]
    assert [status for status, _, _ in bodies] == [200, 200, 200]
    assert b"ready" in bodies[1][2]
    raw.close()


async def test_a_stream_longer_than_the_header_timeout_is_not_cut(bounded: Stack) -> None:
    tokens = 600  # 3 s at the test stack's 200 tokens/s
    async with httpx.AsyncClient(base_url=bounded.base_url, timeout=30) as client:
        created = await create(client, max_tokens=tokens)
        started = time.monotonic()
        reading = await read_sse(client, created["events_url"])
    assert time.monotonic() - started > 2 * HEADER_TIMEOUT_S
    assert reading.closed_by_server
    assert reading.events[-1].event == "done"
    assert assemble_text(reading.events) == expected_story("tell me a story", tokens)


@pytest.mark.parametrize(
    ("path", "error_of"),
    [
        ("/v1/generations", lambda body: body["error"]),
        ("/v1/chat/completions", lambda body: body["error"]),
        ("/v1/messages", lambda body: body["error"] if body.get("type") == "error" else {}),
    ],
)
async def test_a_body_that_stops_arriving_is_answered_408(
    bounded: Stack, redis_client: redis.Redis, path: str, error_of: Any
) -> None:
    """Headers complete, then half a body and silence: the request is answered 408
    (in the route's own error shape) after the timeout, and nothing is queued."""
    queued_before = redis_client.zcard(keys.RECENT)
    raw = await Raw.connect(bounded)
    body = json.dumps({"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]})
    await raw.send(
        b"POST " + path.encode() + b" HTTP/1.1\r\nHost: test\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body.encode()[:15]
    )
    status, _, answer = await raw.response()
    raw.close()
    assert status == 408
    assert "stalled" in error_of(json.loads(answer))["message"]
    assert redis_client.zcard(keys.RECENT) == queued_before
