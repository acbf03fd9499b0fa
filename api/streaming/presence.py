"""How many SSE connections watch a generation, across every API replica.

Each generation has a small hash in Redis, `replica id -> "count deadline_ms"`.
A replica writes its own field only: when its local count changes (coalesced, so
a thousand viewers arriving at once cost one pipeline, not a thousand commands),
and again every `ttl_s / 3` to push its deadline forward. Readers sum the fields
whose deadline has not passed, so a replica that dies (SIGKILL, lost host) stops
counting after at most `ttl_s`, with no cleanup by anyone; the key itself
expires too. A replica that stops cleanly deletes its fields at once.

Why a per-generation hash rather than a per-replica one: a status read then
costs one HGETALL whatever the number of replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from redis.exceptions import RedisError

from services.background import BackgroundLoop, Backoff
from services.redis_connections import is_redis_failure
from services.store import GenerationStore

log = logging.getLogger(__name__)


class Presence:
    def __init__(
        self,
        store: GenerationStore,
        replica_id: str,
        *,
        ttl_s: float = 30.0,
        flush_s: float = 0.05,
    ) -> None:
        self._store = store
        self._replica_id = replica_id
        self._ttl_ms = int(ttl_s * 1000)
        self._flush_s = flush_s
        self._counts: dict[str, int] = {}
        self._dirty: set[str] = set()
        self._changed = asyncio.Event()
        self._writer = BackgroundLoop("presence", self._write_forever)

    def viewers_changed(self, gen_id: str, count: int) -> None:
        """Record this replica's new count for `gen_id`; written shortly after."""
        if count > 0:
            self._counts[gen_id] = count
        else:
            self._counts.pop(gen_id, None)
        self._dirty.add(gen_id)
        self._changed.set()

    async def start(self) -> None:
        self._writer.start()

    async def stop(self) -> None:
        await self._writer.stop()
        every = set(self._counts) | self._dirty
        self._counts.clear()
        self._dirty = every
        with contextlib.suppress(RedisError, OSError):
            await self._flush(set(self._dirty))

    async def count(self, gen_id: str) -> int:
        """Open SSE connections to `gen_id` on every live replica."""
        return await self._store.viewer_count(gen_id)

    async def _write_forever(self) -> None:
        refresh_s = self._ttl_ms / 3000
        next_refresh = time.monotonic() + refresh_s
        backoff = Backoff(first_s=0.5, cap_s=5.0)
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_refresh - time.monotonic())):
                    await self._changed.wait()
            self._changed.clear()
            if time.monotonic() >= next_refresh:
                due = set(self._counts) | self._dirty
                next_refresh = time.monotonic() + refresh_s
            else:
                due = set(self._dirty)
            self._dirty.clear()
            try:
                await self._flush(due)
                backoff.reset()
            except Exception as exc:
                # A connection dropped mid-write can surface from the event loop's
                # transport, not as a RedisError (uvloop: "the handler is closed",
                # seen when a Sentinel master was killed): an outage all the same.
                if not is_redis_failure(exc):
                    raise
                log.warning("presence: could not write viewer counts (%s)", type(exc).__name__)
                self._dirty |= due
                self._changed.set()
                await backoff.sleep()
            await asyncio.sleep(self._flush_s)  # coalesce bursts of joins and leaves

    async def _flush(self, gen_ids: set[str]) -> None:
        counts = {gen_id: self._counts.get(gen_id, 0) for gen_id in gen_ids}
        await self._store.write_viewer_counts(self._replica_id, counts, ttl_ms=self._ttl_ms)
