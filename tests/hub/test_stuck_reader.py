"""A shared read stuck inside the Redis client is restarted, and its viewers carry on.

The read's connection gives up on a reply after the block time plus a margin, so
a read can only stay pending past that through a fault in the client library
itself (the kind that left one replica's viewers on heartbeats alone after a
Sentinel failover). The hub's idle sweep restarts such a read; here the first
read of a real Redis client never returns, as such a fault would leave it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from redis.asyncio import Redis

from api.metrics import ApiMetrics
from api.streaming.cursor import START
from api.streaming.hub import StreamHub
from services.events import StoredEvent
from tests.hub.support import DirectPublisher


class _FirstReadNeverReturns(Redis):
    """A real client whose first XREAD hangs forever, past every socket timeout."""

    hung = False

    async def xread(self, *args: Any, **kwargs: Any) -> Any:
        if not self.hung:
            self.hung = True
            await asyncio.Event().wait()
        return await super().xread(*args, **kwargs)


async def test_a_read_pending_past_twice_its_bound_is_restarted(
    redis_url: str, publisher: DirectPublisher, caplog: pytest.LogCaptureFixture
) -> None:
    reader = _FirstReadNeverReturns.from_url(
        redis_url, decode_responses=True, single_connection_client=True
    )
    hub = StreamHub(publisher.store, reader, ApiMetrics(), block_s=0.2, reply_margin_s=0.1)
    gen_id = await publisher.start()
    await hub.start()
    received: list[StoredEvent] = []

    async def watch() -> None:
        async for event in hub.follow(gen_id, START, idle_s=0.4):
            if event is not None:
                received.append(event)

    try:
        with caplog.at_level(logging.ERROR, logger="api.streaming.hub"):
            watching = asyncio.create_task(watch())
            await asyncio.sleep(0.2)  # attached, behind the hung read
            await publisher.delta(gen_id, "still ", "here")
            await publisher.done(gen_id)
            await asyncio.wait_for(watching, timeout=10)
        deltas = [json.loads(e.data)["text"] for e in received if e.type == "delta"]
        assert "".join(deltas) == "still here"
        assert (received[0].type, received[-1].type) == ("start", "done")
        assert "the shared read has been pending" in caplog.text
    finally:
        await hub.stop()
