"""Live events written to all of a stream's SSE connections in one pass by the hub.

Why: delivering one event to a thousand viewers through ASGI costs, per viewer,
a task wake-up, three generators (feed, SSE body, response) and the server's
`send` with its chunked framing, about as much Python as the socket write
itself. But a native-format viewer that is caught up needs nothing of that: the
bytes it should receive are the same for every viewer of the stream. So while
such a viewer waits for its next event, the hub frames the event once (SSE frame
and HTTP/1.1 chunk, cached per event) and hands the same bytes to each waiting
viewer's connection, in the hub's own loop over the stream's viewers.

Only when it is exactly equivalent to the ordinary path:
- the server offers the `tokenrelay.direct_body` ASGI extension (our httptools
  protocol, cli/http_protocol.py), the response is chunked and still open, and
  its connection is not flow-paused: a client that stops reading falls back to
  the ordinary path, whose send timeout drops it;
- the viewer is parked waiting for its next batch with its queue empty, so
  everything it was given before has been written, in order, and the batch
  starts after the last event it was given (a live batch can overlap what the
  viewer has just read from Redis at the seam; the queue path filters that);
- the batch holds no terminal event (the ordinary path ends the response).
Anything else goes through the viewer's queue as before; the viewer then learns
from `Viewer.direct_last` where the hub left its cursor.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Protocol

from api.formats.native import NativeFormat
from services.events import StoredEvent

EXTENSION = "tokenrelay.direct_body"


class BodyWriter(Protocol):
    """What the server offers under `EXTENSION`: a non-blocking chunk write, and a
    disconnect callback."""

    def write_chunk(self, chunk: bytes) -> bool:
        """Write one already framed HTTP/1.1 chunk now, or return False (and write
        nothing) when the response cannot take it this way."""

    def on_disconnect(self, callback: Callable[[], None]) -> None:
        """Have `callback` called once when the client goes away (at once if gone)."""


@lru_cache(maxsize=8192)
def native_frame(event: StoredEvent) -> bytes:
    """The native SSE frame of `event`: the same bytes for every viewer, encoded once."""
    return NativeFormat().encode(event)


def chunked(frames: bytes) -> bytes:
    """`frames` as one HTTP/1.1 chunk (what the server's `send` would have written)."""
    return b"%x\r\n%b\r\n" % (len(frames), frames)


class DirectSink:
    """One response's door for the hub: open while the response streams natively."""

    __slots__ = ("writer",)

    def __init__(self) -> None:
        self.writer: BodyWriter | None = None

    def write(self, chunk: bytes) -> bool:
        writer = self.writer
        return writer is not None and writer.write_chunk(chunk)
