"""Helpers for the hub tests: a publisher that writes through the real store, and a
raw-socket SSE client whose receive buffer is tiny, so that "not reading" really
pushes back on the server (an httpx client would let the kernel absorb megabytes).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from redis.asyncio import Redis

from services.events import DoneEvent, encode_data
from services.generation import GenerationRequest, Message
from services.store import AttemptGrant, EventBatch, GenerationStore
from tests.support.sse import SseEvent


class DirectPublisher:
    """Plays the worker: creates a generation and appends events with a real lease."""

    def __init__(self, redis_url: str) -> None:
        self.redis = Redis.from_url(redis_url, decode_responses=True)
        self.store = GenerationStore(self.redis, retention_s=3600, max_stream_events=1_000_000)
        self.tokens: dict[str, str] = {}
        self.texts: dict[str, list[str]] = {}

    async def start(self) -> str:
        gen_id = f"gen_{secrets.token_hex(16)}"
        request = GenerationRequest(
            model="demo/echo", messages=[Message(role="user", content="hub test")]
        )
        await self.store.create(gen_id, request, time.time())
        token = secrets.token_hex(8)
        grant = await self.store.begin_attempt(gen_id, token, 600_000)
        assert isinstance(grant, AttemptGrant), grant
        self.tokens[gen_id] = token
        self.texts[gen_id] = []
        return gen_id

    async def delta(self, gen_id: str, *texts: str) -> None:
        events = [("delta", json.dumps({"text": text})) for text in texts]
        batch = EventBatch(events=events, text_append="".join(texts))
        assert await self.store.publish(gen_id, self.tokens[gen_id], batch) == "ok"
        self.texts[gen_id].extend(texts)

    async def done(self, gen_id: str) -> None:
        batch = EventBatch(
            events=[("done", encode_data(DoneEvent(finish_reason="stop")))],
            terminal_status="completed",
            finish_reason="stop",
        )
        assert await self.store.publish(gen_id, self.tokens[gen_id], batch) == "ok"

    def text(self, gen_id: str) -> str:
        return "".join(self.texts[gen_id])

    async def entry_ids(self, gen_id: str) -> list[str]:
        entries = await self.redis.xrange(f"tokenrelay:{{{gen_id}}}:events")
        return [entry_id for entry_id, _ in entries]

    async def aclose(self) -> None:
        await self.redis.aclose()


@dataclass
class RawSse:
    """An SSE response read over a raw socket, parsed only when the test asks."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    events: list[SseEvent] = field(default_factory=list)
    retries: list[int] = field(default_factory=list)
    eof: bool = False

    @classmethod
    async def open(
        cls, port: int, path: str, *, rcvbuf: int = 4096, headers: dict[str, str] | None = None
    ) -> RawSse:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        # A small asyncio read limit too, so the client side buffers little in user space.
        reader, writer = await asyncio.open_connection(sock=sock, limit=rcvbuf)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode())
        await writer.drain()
        return cls(reader, writer)

    async def read_head(self) -> None:
        status_line = await self.reader.readline()
        self.status = int(status_line.split()[1])
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            self.headers[name.strip().lower()] = value.strip()

    async def chunks(self) -> AsyncIterator[bytes]:
        """Decoded chunks of the chunked body until its end (or EOF)."""
        while True:
            size_line = await self.reader.readline()
            if not size_line:
                self.eof = True
                return
            size = int(size_line.strip() or b"0", 16)
            if size == 0:
                await self.reader.readline()
                return
            data = await self.reader.readexactly(size)
            await self.reader.readexactly(2)
            yield data

    async def read_events(self, until: Callable[[SseEvent], bool] | None = None) -> list[SseEvent]:
        """Parse events until `until(event)` holds or the body ends; returns all so far."""
        buffer = b""
        async for chunk in self.chunks():
            buffer += chunk
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                event = self._parse(block.decode())
                if event is not None:
                    self.events.append(event)
                    if until is not None and until(event):
                        return self.events
        return self.events

    def _parse(self, block: str) -> SseEvent | None:
        event_id, kind, data = None, "message", []
        for line in block.split("\n"):
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            if name == "retry":
                self.retries.append(int(value))
            elif name == "id":
                event_id = value
            elif name == "event":
                kind = value
            elif name == "data":
                data.append(value)
        return SseEvent(event_id, kind, "\n".join(data)) if data else None

    def close(self) -> None:
        self.writer.close()


def metric_value(text: str, name: str) -> float:
    """Sum of a metric's samples in Prometheus text (all label sets)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
    return total
