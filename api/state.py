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
from dataclasses import InitVar, dataclass, field

from arq.connections import ArqRedis
from redis.asyncio import Redis

from api.access import OpenStreams
from api.auth import Authenticator
from api.metrics import ApiMetrics
from api.streaming.capacity import ConnectionGate
from api.streaming.hub import HUB_BLOCK_S, StreamHub
from api.streaming.presence import Presence
from api.streaming.sharded import ShardedStreamHub
from api.streaming.sse import SendWatchdog
from services.api_keys import KeyStore
from services.background import BackgroundLoop
from services.config import Settings
from services.limits import Limits
from services.redis_checks import warn_about_both_roles
from services.redis_connections import (
    StreamsCluster,
    blocking_reader,
    command_client,
    queue_client,
    streams_client,
)
from services.store import GenerationStore
from services.viewer_tokens import ViewerTokens, configured_signing_key


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
    signing_key: InitVar[bytes | None] = None
    """`TOKENRELAY_SIGNING_KEY`; absent, the key shared through the control Redis."""
    auth: Authenticator = field(init=False)
    """Keys, tenants and viewer tokens (api/auth.py)."""
    limits: Limits = field(init=False)
    """Per-key and per-tenant limits, held in the control Redis (services/limits.py)."""
    streams: OpenStreams = field(init=False)
    """Open SSE responses by principal: stream slots and revocation (api/access.py)."""
    gate: ConnectionGate = field(init=False)
    """Open SSE connections and the cap; refuses new streams while draining."""
    watchdog: SendWatchdog = field(init=False)
    """Send timeouts of every SSE response of the process, with one timer."""

    def __post_init__(self, signing_key: bytes | None) -> None:
        tokens = ViewerTokens(signing_key, self.redis)
        self.auth = Authenticator(self.settings, KeyStore(self.redis), tokens)
        self.limits = Limits(self.redis, running_deadline_s=self.settings.retention_s)
        self.streams = OpenStreams(self.auth, self.limits)
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
        hub: StreamHub
        if isinstance(store.redis, StreamsCluster):
            # A multi-key XREAD cannot span a cluster's slots: sharded pub/sub instead.
            hub = ShardedStreamHub(
                store,
                store.redis,
                metrics,
                reply_timeout_s=settings.redis_timeout_s,
                queue_events=settings.viewer_queue_events,
                replica_id=replica_id,
            )
        else:
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
        configured = settings.signing_key.get_secret_value() if settings.signing_key else None
        signing_key = configured_signing_key(configured)
        state = cls(
            settings=settings,
            redis=redis,
            queue=queue_client(settings, "tokenrelay-api-queue"),
            store=store,
            hub=hub,
            metrics=metrics,
            presence=presence,
            signing_key=signing_key,
        )
        await hub.start()
        await presence.start()
        await state.watchdog.start()
        state.streams.start()
        state._drain_watch.start()
        await warn_about_both_roles(redis, store.redis, "api")
        return state

    async def close(self) -> None:
        """Tell open streams to reconnect elsewhere, then stop everything `open` started."""
        self.draining.set()
        await asyncio.sleep(0)  # let the drain watch close the viewers
        await self._drain_watch.stop()
        await self.hub.stop()
        await self.watchdog.stop()
        await self.streams.stop()
        if self.presence is not None:
            await self.presence.stop()
        await self.queue.aclose()
        if self.store.redis is not self.redis:
            await self.store.redis.aclose()
        await self.redis.aclose()

    async def _close_streams_on_drain(self) -> None:
        await self.draining.wait()
        self.hub.close_viewers()
