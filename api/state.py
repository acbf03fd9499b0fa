"""What one API process holds: settings, Redis clients, store, hub, gate and metrics.

`AppState.open(settings)` builds and starts all of it inside the lifespan (never
at import time) and `close()` stops it in the reverse order; routes reach it
through `api.deps`. This is the API's counterpart of the worker's `WorkerRuntime`.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from dataclasses import dataclass, field

from arq.connections import ArqRedis
from redis.asyncio import Redis

from api.metrics import ApiMetrics
from api.streaming.capacity import ConnectionGate
from api.streaming.hub import HUB_BLOCK_S, StreamHub
from api.streaming.presence import Presence
from api.streaming.sse import SendWatchdog
from services.background import BackgroundLoop
from services.config import Settings
from services.redis_checks import warn_about_redis_settings
from services.redis_connections import (
    blocking_reader,
    command_client,
    queue_client,
    streams_client,
)
from services.store import GenerationStore


@dataclass
class AppState:
    settings: Settings
    redis: Redis
    queue: ArqRedis
    store: GenerationStore
    hub: StreamHub
    draining: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the process begins shutting down: readiness fails, streams end with a retry hint."""
    metrics: ApiMetrics = field(default_factory=ApiMetrics)
    presence: Presence | None = None
    gate: ConnectionGate = field(init=False)
    """Open SSE connections and the cap; refuses new streams while draining."""
    watchdog: SendWatchdog = field(init=False)
    """Send timeouts of every SSE response of the process, with one timer."""

    def __post_init__(self) -> None:
        self.gate = ConnectionGate(
            self.settings.max_sse_connections,
            self.draining,
            retry_base_s=self.settings.sse_cap_retry_s,
        )
        self.watchdog = SendWatchdog(self.settings.sse_send_timeout_s)
        self._drain_watch = BackgroundLoop("close-streams-on-drain", self._close_streams_on_drain)

    @classmethod
    async def open(cls, settings: Settings, metrics: ApiMetrics) -> AppState:
        """Connect to Redis and start the hub, presence and watchdog.

        Every connection has a bound on a due reply (services/redis_connections.py):
        a hung or half-open Redis turns into 503s, never into requests that wait.
        """
        redis = command_client(settings, "tokenrelay-api")
        store = GenerationStore(
            streams_client(settings, "tokenrelay-api", redis),
            control=redis,
            announce=settings.streams_on_cluster,
            retention_s=settings.retention_s,
            max_stream_events=settings.max_stream_events,
            tombstone_s=settings.tombstone_s,
        )
        replica_id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        hub = StreamHub(
            store,
            blocking_reader(settings, "tokenrelay-hub", block_s=HUB_BLOCK_S),
            metrics,
            queue_events=settings.viewer_queue_events,
            replica_id=replica_id,
            block_s=HUB_BLOCK_S,
            reply_margin_s=settings.redis_timeout_s,
        )
        presence = Presence(store, replica_id, ttl_s=settings.presence_ttl_s)
        hub.on_viewers_changed.append(presence.viewers_changed)
        state = cls(
            settings=settings,
            redis=redis,
            queue=queue_client(settings, "tokenrelay-api-queue"),
            store=store,
            hub=hub,
            metrics=metrics,
            presence=presence,
        )
        await hub.start()
        await presence.start()
        await state.watchdog.start()
        state._drain_watch.start()
        await warn_about_redis_settings(redis, "api")
        return state

    async def close(self) -> None:
        """Tell open streams to reconnect elsewhere, then stop everything `open` started."""
        self.draining.set()
        await asyncio.sleep(0)  # let the drain watch close the viewers
        await self._drain_watch.stop()
        await self.hub.stop()
        await self.watchdog.stop()
        if self.presence is not None:
            await self.presence.stop()
        await self.queue.aclose()
        if self.store.redis is not self.redis:
            await self.store.redis.aclose()
        await self.redis.aclose()

    async def _close_streams_on_drain(self) -> None:
        await self.draining.wait()
        self.hub.close_viewers()
