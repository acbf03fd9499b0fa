"""uvicorn's httptools protocol with a bound on each request head: its size and its time.

Why: uvicorn picks httptools whenever it is installed (uvicorn[standard] installs
it), and neither httptools nor uvicorn's protocol around it limits a request's line
and headers: an 8 MB header reached the app, ten 50 MB headers tripled the API's
memory (httptools keeps a header being received in memory until it is complete),
and a socket that never finishes its headers stayed open for ever (uvicorn's one
timer, keep-alive, runs only between requests). A reverse proxy usually bounds
both, but the API may face clients directly, so the bound lives in the server.

- Size: the bytes received while a head is incomplete are counted, and a complete
  head is measured; past `max_head_bytes` the client gets `431` and the connection
  closes. Memory per connection therefore stays under the limit plus one read.
  Trailer fields after a chunked body are counted the same way (past the limit the
  connection is closed: the app is already reading that request).
- Time: a timer runs from the moment a connection opens, or from the first byte of
  a later request on a kept-alive connection, until that request's headers are
  complete. When it fires, a client that sent part of a head gets `408`; one that
  sent nothing is just closed (what browsers expect of an idle preconnected socket).
  The timer stops at the end of the headers, so it never cuts a long response
  such as an SSE stream (nor a slow body: not bounded here); idle time between
  requests stays uvicorn's keep-alive timeout.
- A refused client is still sending (its head is too large, by definition), and
  closing a socket with unread data makes the kernel answer with a reset that can
  destroy the `431` before the client reads it. So the server closes only its
  sending side, reads and drops whatever still comes for `linger_s` at most, and
  closes once the client has (the lingering close of Apache and nginx).
- A request whose head is refused never reaches the app. If a response to an
  earlier request on the same connection is still being sent (pipelining), the
  error would corrupt it, so the connection is just closed.

Each request's scope also carries the `tokenrelay.direct_body` extension, through
which the hub writes live SSE events to many connections in one pass
(api/streaming/direct.py says when, and why it is the same bytes), and through
which a streaming response hears of its client's disconnect without a task of its
own waiting on `receive()` for the life of the stream.

`bounded_http_protocol(max_head_bytes, head_timeout_s)` gives the class to pass as
`uvicorn.Config(http=...)`; subclassing uvicorn's protocol keeps its parsing,
keep-alive, pipelining, flow control and graceful shutdown exactly as they are.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, ClassVar

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.server import ServerState

from api.errors import error_body
from api.streaming import direct
from cli.lean_connection import LazyEvent, Pipeline

# Bytes of a head that are not in the URL or in a header's name and value: the method,
# the spaces and version of the request line, ": " and CRLF per header, the final CRLF.
_REQUEST_LINE_OVERHEAD = 20
_HEADER_OVERHEAD = 4


class _ChunkWriter:
    """The `tokenrelay.direct_body` extension of one request (api/streaming/direct.py):
    a body chunk written to the connection exactly as the cycle's `send` would, but
    only while that is the same thing: the response started, chunked, not complete,
    its client connected and reading (not flow-paused)."""

    __slots__ = ("_cycle", "_on_disconnect")

    def __init__(self, cycle: RequestResponseCycle) -> None:
        self._cycle = cycle
        self._on_disconnect: Callable[[], None] | None = None

    def on_disconnect(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the client goes away (at once if it already has): a
        streaming response learns of it without a task waiting on `receive()`."""
        if self._cycle.disconnected:
            callback()
        else:
            self._on_disconnect = callback

    def disconnected(self) -> None:
        callback, self._on_disconnect = self._on_disconnect, None
        if callback is not None:
            callback()

    def write_chunk(self, chunk: bytes) -> bool:
        cycle = self._cycle
        if (
            not cycle.response_started
            or cycle.response_complete
            or cycle.disconnected
            or not cycle.chunked_encoding
            or cycle.flow.write_paused
            or cycle.transport.is_closing()
        ):
            return False
        cycle.transport.write(chunk)
        return True


class _HeadState:
    """Where a connection is in its request heads, for the bounds on their size and time."""

    __slots__ = ("field_bytes", "maybe_trailers", "pending", "timer")

    def __init__(self) -> None:
        self.pending = True  # between two requests, or inside a head
        self.maybe_trailers = False  # after a chunk's size line, before its data
        self.field_bytes = 0  # bytes received since a head or trailers became pending
        self.timer: asyncio.TimerHandle | None = None


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """One connection; the limits are class attributes set by `bounded_http_protocol`."""

    max_head_bytes: ClassVar[int] = 65_536
    head_timeout_s: ClassVar[float] = 10.0
    linger_s: ClassVar[float] = 2.0
    # Set on the instance only for a refused request; a class default otherwise. Each
    # attribute past uvicorn's own 27 counts: at 30 the instance dict is rebuilt at
    # 1.3 KB more, per connection (hence also _HeadState).
    _refused: bool = False
    _linger_timer: asyncio.TimerHandle | None = None

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._head = _HeadState()
        # cli/lean_connection.py: no deque per connection (uvicorn only appends left and pops)
        self.pipeline = Pipeline()  # type: ignore[assignment]

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn's own signature
        super().connection_made(transport)
        flow = self.flow
        flow._is_writable_event = LazyEvent(is_set=flow._is_writable_event.is_set())
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        super().connection_lost(exc)
        cycle = self.cycle
        if cycle is not None and cycle.disconnected:
            writer = cycle.scope.get("extensions", {}).get(direct.EXTENSION)
            if isinstance(writer, _ChunkWriter):
                writer.disconnected()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering: read and drop
        head = self._head
        if head.pending or head.maybe_trailers:
            head.field_bytes += len(data)
        super().data_received(data)
        if self._refused or self.transport.is_closing():
            return
        if (head.pending or head.maybe_trailers) and head.field_bytes > self.max_head_bytes:
            self._refuse(431, f"request line and headers over {self.max_head_bytes} bytes")
        elif head.pending and head.timer is None and not self._response_in_flight():
            # The first byte of a new request on a kept-alive connection (uvicorn's
            # keep-alive timer stopped when it arrived): the head's clock starts now.
            self._arm_head_timer()

    # httptools parser callbacks

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._head.pending = False
        self._cancel_head_timer()
        size = _REQUEST_LINE_OVERHEAD + len(self.url)
        size += sum(len(name) + len(value) + _HEADER_OVERHEAD for name, value in self.headers)
        if size > self.max_head_bytes:
            self._refuse(431, f"request line and headers over {self.max_head_bytes} bytes")
            return
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope:  # this request's, not a queued one's
            cycle.message_event = LazyEvent(is_set=cycle.message_event.is_set())
            extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
            extensions[direct.EXTENSION] = _ChunkWriter(cycle)

    def on_body(self, body: bytes) -> None:
        self._head.maybe_trailers = False
        if not self._refused:
            super().on_body(body)

    def on_chunk_header(self) -> None:
        # Perhaps the last chunk, after which come trailer fields that httptools keeps
        # in memory as it does headers: counted until data shows it was not.
        self._head.maybe_trailers = True
        self._head.field_bytes = 0

    def on_chunk_complete(self) -> None:
        self._head.maybe_trailers = False

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._head.pending = True
        self._head.maybe_trailers = False
        self._head.field_bytes = 0
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        # The parser still reports an Upgrade header of a refused head; it built no
        # scope to upgrade with, and its answer is already on its way.
        if not self._refused:
            super().handle_websocket_upgrade()

    # the bound

    def _response_in_flight(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head.timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head.timer is not None:
            self._head.timer.cancel()
            self._head.timer = None

    def _head_timed_out(self) -> None:
        self._head.timer = None
        if self._refused or self.transport.is_closing():
            return
        if self._head.field_bytes:
            self._refuse(408, f"request headers not received within {self.head_timeout_s:g} s")
        else:
            self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` (unless a response is already being sent) and close."""
        self._refused = True
        self._cancel_head_timer()
        peer = f"{self.client[0]}:{self.client[1]}" if self.client else "-"
        self.logger.info("%s - request refused: %d %s", peer, status, message)
        if self._response_in_flight() or not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write(self._error_response(status, message))
        self.transport.write_eof()
        self.flow.resume_reading()
        self._linger_timer = self.loop.call_later(self.linger_s, self.transport.close)

    def _error_response(self, status: int, message: str) -> bytes:
        body = json.dumps(error_body("invalid_request_error", message))
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        return b"".join(head) + body.encode()


def bounded_http_protocol(
    max_head_bytes: int, head_timeout_s: float
) -> type[BoundedHttpToolsProtocol]:
    """The protocol class for `uvicorn.Config(http=...)` with these limits."""

    class ConfiguredHttpToolsProtocol(BoundedHttpToolsProtocol):
        pass

    ConfiguredHttpToolsProtocol.max_head_bytes = max_head_bytes
    ConfiguredHttpToolsProtocol.head_timeout_s = head_timeout_s
    return ConfiguredHttpToolsProtocol
