"""Writing one SSE response: admission, events, heartbeats, slow clients, drain.

The body (`sse_body`) is one async generator: a `retry:` field first so that
EventSource clients reconnect quickly, then the feed's events, a `: ping` comment
whenever the feed has been quiet for the heartbeat interval (so proxies and load
balancers keep the connection), and the end after the terminal event. If the feed
ends without one, the process is draining: it sends a short, jittered `retry:`
so the client reconnects (to another replica) soon, without a stampede.

The response (`EventStreamResponse`) races three things, written out here rather
than in a task group per event:
- sending: each write gets `TOKENRELAY_SSE_SEND_TIMEOUT_S`. A client that stops reading fills
  the socket buffers until uvicorn's flow control parks the write; after the
  timeout the connection is dropped (the app returns without finishing the
  response, which makes uvicorn close the transport). The hub never waited on
  that client, so nobody else noticed. One `SendWatchdog` per process checks the
  writes in progress, rather than a timer armed and disarmed for every event.
- disconnect: one small task waits for `http.disconnect` and cancels the writer,
  which unwinds the feed's `finally` blocks (unsubscribe, presence) at once
  instead of at the next heartbeat.
- drain: the app closes every hub viewer when draining starts, so the feed
  ends and the body adds its `retry:` hint; no per-connection watcher is needed.
A process over its connection cap, or draining, answers 503 with `Retry-After`
(and `retry:` for clients that asked for an event stream) before any work.
The native format's bytes are the same for every viewer, so they are encoded once
per event (a small cache keyed by the event), not once per connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncGenerator, Callable, Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol

from redis.exceptions import RedisError
from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from api.auth import current_principal_or_none
from api.errors import Failure, native_body
from api.formats.base import StreamFormat
from api.formats.native import NativeFormat
from api.metrics import ApiMetrics
from api.streaming.capacity import ConnectionGate, Refusal
from api.streaming.direct import EXTENSION, BodyWriter, DirectSink, native_frame
from services.background import BackgroundLoop
from services.events import StoredEvent

if TYPE_CHECKING:
    from api.state import AppState


class StreamGuard(Protocol):
    """Who may hold a stream open (api/access.py): asked when a response starts and
    told when it ends; `open` answers a refusal to send instead, or None."""

    async def open(self, response: EventStreamResponse) -> Response | None: ...

    async def close(self, response: EventStreamResponse) -> None: ...

    async def abandon(self) -> None:
        """The response was refused before `open`: give back what was taken for it."""


log = logging.getLogger(__name__)

SSE_HEADERS = {
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
}
PING = b": ping\n\n"
DRAIN_RETRY_MS = 250
REDIS_LOST_RETRY_MS = 1000
"""`retry:` sent when Redis fails mid-stream: come back when it may answer again."""

Feed = AsyncGenerator[StoredEvent | None, None]


def drain_retry() -> bytes:
    """A short `retry:` with jitter, so reconnects after a drain spread out."""
    return f"retry: {DRAIN_RETRY_MS + random.randint(0, 4 * DRAIN_RETRY_MS)}\n\n".encode()


async def sse_body(
    feed: Feed,
    fmt: StreamFormat,
    *,
    retry_ms: int,
    preamble: Iterable[bytes] = (),
    draining: asyncio.Event,
    metrics: ApiMetrics | None = None,
    heartbeat_s: float | None = None,
) -> AsyncGenerator[bytes, None]:
    yield f"retry: {retry_ms}\n\n".encode()
    for chunk in preamble:
        yield chunk
    native = type(fmt) is NativeFormat
    delivery = metrics.delivery if metrics is not None else None
    # The feed yields None after a quiet heartbeat interval; a busy stream also gets
    # a ping at least that often, as the contract promises.
    next_ping = time.monotonic() + heartbeat_s if heartbeat_s else float("inf")
    try:
        async for item in feed:
            if item is None or time.monotonic() >= next_ping:
                yield PING
                if heartbeat_s:
                    next_ping = time.monotonic() + heartbeat_s
                if item is None:
                    continue
            chunk = native_frame(item) if native else fmt.encode(item)
            if delivery is not None:
                delivery.add_event(item, time.time())
            if chunk:
                yield chunk
            if item.is_terminal:
                return
            if draining.is_set():
                break
        # The feed ended without a terminal event: this process is going away.
        yield drain_retry()
    except (RedisError, OSError) as exc:
        # Redis went away mid-stream: end this response with a short retry; the
        # client resumes from its Last-Event-ID once Redis (or a replica) answers.
        log.warning("ending an SSE stream: Redis unavailable (%s)", type(exc).__name__)
        yield f"retry: {REDIS_LOST_RETRY_MS}\n\n".encode()
    finally:
        await feed.aclose()


class EventStreamResponse(Response):
    """A `text/event-stream` response with a send timeout, a connection cap and fast
    disconnect handling. Without a gate it admits everything."""

    media_type = "text/event-stream"

    def __init__(
        self,
        body: AsyncGenerator[bytes, None],
        headers: dict[str, str] | None = None,
        *,
        gate: ConnectionGate | None = None,
        watchdog: SendWatchdog | None = None,
        metrics: ApiMetrics | None = None,
        background: BackgroundTask | None = None,
        guard: StreamGuard | None = None,
        sink: DirectSink | None = None,
    ) -> None:
        self.body_iterator = body
        self.guard = guard
        self.sink = sink
        self.status_code = 200
        self.background = background
        self.gate = gate
        self.watchdog = watchdog
        self.metrics = metrics
        self._writer: asyncio.Task[object] | None = None
        self._finished = False
        self._interrupted: str | None = None
        self.raw_headers = _sse_raw_headers(headers or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self.gate.try_acquire() if self.gate is not None else None
        if refusal is not None:
            assert self.gate is not None
            if self.guard is not None:
                await self.guard.abandon()
            await self.body_iterator.aclose()
            await StreamRefused(self.gate, refusal, self.metrics)(scope, receive, send)
            return
        if self.guard is not None:
            try:
                limited = await self.guard.open(self)
            except BaseException:
                if self.gate is not None:
                    self.gate.release()
                raise
            if limited is not None:  # the key's open streams are at its limit
                if self.gate is not None:
                    self.gate.release()
                await self.body_iterator.aclose()
                await limited(scope, receive, send)
                return
        if self.metrics is not None:
            self.metrics.sse_open.inc()
        try:
            await self._stream(scope, receive, send)
        finally:
            if self.metrics is not None:
                self.metrics.sse_open.dec()
            if self.gate is not None:
                self.gate.release()
            if self.guard is not None:
                await self.guard.close(self)
        if self.background is not None:
            await self.background()

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        writer = asyncio.current_task()
        assert writer is not None
        self._writer = writer

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            self.interrupt("disconnect")

        # Our server tells of a disconnect itself (cli/http_protocol.py); under any
        # other, a task waits on receive() for the life of the stream.
        direct: BodyWriter | None = scope.get("extensions", {}).get(EXTENSION)
        watcher: asyncio.Task[None] | None = None
        if direct is None:
            watcher = asyncio.create_task(watch_disconnect())
        try:
            try:
                await self._send(send, {"type": "http.response.start", "status": 200,
                                         "headers": self.raw_headers})  # fmt: skip
                if direct is not None:
                    direct.on_disconnect(lambda: self.interrupt("disconnect"))
                if self.sink is not None:
                    self.sink.writer = direct  # None under a server without it: the usual path
                async for chunk in self.body_iterator:
                    await self._send(
                        send, {"type": "http.response.body", "body": chunk, "more_body": True}
                    )
                await self._send(send, {"type": "http.response.body", "body": b""})
            finally:
                self._finished = True
                if self.sink is not None:
                    self.sink.writer = None
                if watcher is not None:
                    watcher.cancel()
                await self.body_iterator.aclose()
        except (TimeoutError, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError) and (
                self._interrupted is None or writer.uncancel() > 0
            ):
                raise  # not ours: the server is cancelling the request
            if self._interrupted == "disconnect":
                return
            if self._interrupted == "revoked":
                # The key or token was withdrawn (api/access.py): end the response
                # cleanly; the client's reconnect is then refused.
                await self._send(send, {"type": "http.response.body", "body": b""})
                return
            # The client stopped reading: drop it. Returning without finishing the
            # response makes the server close the connection.
            if self.metrics is not None:
                self.metrics.dropped.labels("send_timeout").inc()
            timeout_s = self.watchdog.timeout_s if self.watchdog is not None else None
            log.info("dropped an SSE client that accepted no bytes for %ss", timeout_s)
        except OSError:
            pass  # the client went away mid-write

    def interrupt(self, reason: str) -> None:
        """Stop this response from outside (disconnect, send timeout), once."""
        if self._finished or self._interrupted is not None or self._writer is None:
            return
        self._interrupted = reason
        if self.sink is not None:
            self.sink.writer = None  # nothing more through the hub's door either
        self._writer.cancel()

    async def _send(self, send: Send, message: dict[str, object]) -> None:
        watchdog = self.watchdog
        if watchdog is not None:
            watchdog.sending[self] = watchdog.now()
            try:
                await send(message)
            finally:
                watchdog.sending.pop(self, None)
        else:
            await send(message)


def _encoded_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """`headers` and the content type, as Starlette encodes a bodiless response's."""
    response = EventStreamResponse.__new__(EventStreamResponse)
    response.status_code = 200
    response.init_headers(headers)
    return response.raw_headers


@lru_cache(maxsize=1)
def _shared_raw_headers() -> list[tuple[bytes, bytes]]:
    return _encoded_headers(SSE_HEADERS)


def _sse_raw_headers(own: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """An SSE response's raw headers: the shared ones, encoded once, then its own
    (such as the generation's id). Each response kept its own encoded copy of the
    shared ones before: about 400 bytes of every open stream."""
    shared = _shared_raw_headers()
    extra = [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in own.items()
    ]
    if {name for name, _ in extra} & {name for name, _ in shared}:  # one of ours overridden
        return _encoded_headers({**SSE_HEADERS, **own})
    return [*shared, *extra]


class SendWatchdog:
    """Send timeouts for every SSE response of a process, with one timer.

    A timeout per write (`asyncio.timeout`) would schedule and cancel a timer for
    every event on every connection; here a write only notes when it started, and
    one task checks the notes a few times per timeout."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.sending: dict[EventStreamResponse, float] = {}
        self._task = BackgroundLoop("sse-send-watchdog", self._watch)
        self.now = time.monotonic

    async def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def _watch(self) -> None:
        interval = min(1.0, self.timeout_s / 4)
        while True:
            await asyncio.sleep(interval)
            deadline = self.now() - self.timeout_s
            for response, since in list(self.sending.items()):
                if since < deadline:
                    self.sending.pop(response, None)
                    response.interrupt("send_timeout")


class StreamRefused(Response):
    """503 for a stream this process will not take: full, or draining.

    JSON in the contract's error shape, or, for a client that asked for
    `text/event-stream` (every EventSource does), the same error as an `error`
    event after a `retry:` field carrying the jittered advice."""

    def __init__(
        self, gate: ConnectionGate, refusal: Refusal, metrics: ApiMetrics | None = None
    ) -> None:
        self.status_code = 503
        self.background = None
        self.retry_after_s, self.retry_ms = gate.retry_advice(refusal)
        self.refusal = refusal
        if metrics is not None:
            metrics.rejected.labels(refusal).inc()
        self.init_headers({"Retry-After": str(self.retry_after_s), **SSE_HEADERS})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = (
            "this replica is shutting down; reconnect (another replica will answer)"
            if self.refusal == "draining"
            else "too many open event streams on this replica; retry shortly"
        )
        error = json.dumps(native_body(Failure(503, "unavailable", message)))
        accept = dict(scope.get("headers") or ()).get(b"accept", b"")
        if b"text/event-stream" in accept:
            body = f"retry: {self.retry_ms}\n\nevent: error\ndata: {error}\n\n".encode()
            content_type = b"text/event-stream"
        else:
            body = error.encode()
            content_type = b"application/json"
        headers = [
            *self.raw_headers,
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def refuse_stream(state: AppState) -> StreamRefused | None:
    """A 503 to answer at once when this process would refuse a stream anyway,
    before the route spends Redis reads on it; None when it may go ahead."""
    refusal = state.gate.refusal()
    return None if refusal is None else StreamRefused(state.gate, refusal, state.metrics)


def event_stream(
    state: AppState,
    feed: Feed,
    fmt: StreamFormat,
    *,
    preamble: Iterable[bytes] = (),
    headers: dict[str, str] | None = None,
    wrap_body: Callable[[AsyncGenerator[bytes, None]], AsyncGenerator[bytes, None]] | None = None,
    stream_slot: tuple[str, str] | None = None,
    sink: DirectSink | None = None,
) -> EventStreamResponse:
    """The SSE response for `feed` with every transport guard this process has:
    connection cap, send timeout, drain and metrics. Use it for every stream
    (the OpenAI and Anthropic front doors too, whose `wrap_body` adapts the bytes).
    `stream_slot`: the key's stream slot, when the route took it before queuing.
    `sink`: the one given to the hub's `follow` for `feed`, so that it may write
    live native events itself (api/streaming/direct.py)."""
    body = sse_body(
        feed,
        fmt,
        retry_ms=state.settings.sse_retry_ms,
        preamble=preamble,
        draining=state.draining,
        metrics=state.metrics,
        heartbeat_s=state.settings.heartbeat_s,
    )
    return EventStreamResponse(
        wrap_body(body) if wrap_body is not None else body,
        headers=headers,
        gate=state.gate,
        watchdog=state.watchdog,
        metrics=state.metrics,
        guard=state.streams.guard(current_principal_or_none(), stream_slot),
        sink=sink,
    )
