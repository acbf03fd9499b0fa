"""The live feed of a generation's events for one SSE viewer.

`EventFeed.follow` yields stored events after a cursor, oldest first, and `None`
whenever `idle_s` passes with nothing new (the caller sends a heartbeat then). It
ends after the terminal event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from redis.asyncio import Redis

from services import keys
from services.events import StoredEvent, stored_event_from_entry


class EventFeed:
    """Tails generation streams with one blocking XREAD per viewer."""

    def __init__(self, redis: Redis, *, batch: int = 500) -> None:
        self._redis = redis
        self._batch = batch

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def follow(
        self, gen_id: str, cursor: str, *, idle_s: float
    ) -> AsyncIterator[StoredEvent | None]:
        stream_key = keys.events(gen_id)
        block_ms = max(1, int(idle_s * 1000))
        while True:
            reply = await self._redis.xread({stream_key: cursor}, count=self._batch, block=block_ms)
            if not reply:
                yield None
                continue
            for entry_id, fields in reply[0][1]:
                event = stored_event_from_entry(entry_id, fields)
                cursor = event.id
                yield event
                if event.is_terminal:
                    return
