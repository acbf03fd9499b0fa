"""Writing one SSE response: preamble, events, heartbeats, and an orderly end.

The body is one async generator. It starts with a `retry:` field so that
EventSource clients reconnect quickly, sends `: ping` whenever the feed has been
quiet for the heartbeat interval (keeping proxies and load balancers from timing
the connection out), stops after the terminal event, and when the process starts
draining it sends a short `retry:` and ends so the client reconnects elsewhere;
when Redis fails under it, it does the same rather than breaking the response.
Client disconnects are noticed by Starlette, which cancels this generator; the
feed's `finally` blocks release its subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable

from redis.exceptions import RedisError
from starlette.responses import StreamingResponse

from api.formats.base import StreamFormat
from services.events import StoredEvent

log = logging.getLogger(__name__)

SSE_HEADERS = {
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
}
PING = b": ping\n\n"
DRAIN_RETRY_MS = 250
REDIS_LOST_RETRY_MS = 1000
"""`retry:` sent when the event store fails mid-stream: come back when it may be up again."""


class EventStreamResponse(StreamingResponse):
    media_type = "text/event-stream"

    def __init__(self, body: AsyncIterator[bytes], headers: dict[str, str] | None = None) -> None:
        super().__init__(body, headers={**SSE_HEADERS, **(headers or {})})


async def sse_body(
    feed: AsyncIterator[StoredEvent | None],
    fmt: StreamFormat,
    *,
    retry_ms: int,
    preamble: Iterable[bytes] = (),
    draining: asyncio.Event,
) -> AsyncIterator[bytes]:
    yield f"retry: {retry_ms}\n\n".encode()
    for chunk in preamble:
        yield chunk
    drain_wait = asyncio.ensure_future(draining.wait())
    next_item: asyncio.Future[StoredEvent | None] | None = None
    try:
        while True:
            next_item = asyncio.ensure_future(anext(feed))
            await asyncio.wait({next_item, drain_wait}, return_when=asyncio.FIRST_COMPLETED)
            if not next_item.done():
                next_item.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await next_item
                yield f"retry: {DRAIN_RETRY_MS}\n\n".encode()
                return
            try:
                item = next_item.result()
            except StopAsyncIteration:
                return
            except (RedisError, OSError) as exc:
                # Redis restarting or unreachable: end with a retry hint; the client
                # resumes from its Last-Event-ID (503 until Redis answers again).
                log.warning("stream ended: event store unavailable (%s)", type(exc).__name__)
                yield f"retry: {REDIS_LOST_RETRY_MS}\n\n".encode()
                return
            if item is None:
                yield PING
                continue
            chunk = fmt.encode(item)
            if chunk:
                yield chunk
            if item.is_terminal:
                return
    finally:
        drain_wait.cancel()
        if next_item is not None and not next_item.done():
            # The client went away mid-wait: stop the pending read before closing the
            # feed (closing a generator that is still running raises RuntimeError).
            next_item.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, Exception):
                await next_item
        await feed.aclose()  # type: ignore[attr-defined]  # feeds are async generators
