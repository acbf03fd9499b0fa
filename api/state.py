"""What one API process holds: settings, Redis clients, store, hub, gate and metrics.

Built by `create_app`'s lifespan, never at import time; routes reach it through
`api.deps`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from arq.connections import ArqRedis
from redis.asyncio import Redis

from api.capacity import ConnectionGate
from api.hub import StreamHub
from api.metrics import ApiMetrics
from api.presence import Presence
from api.sse import SendWatchdog
from services.config import Settings
from services.store import GenerationStore


@dataclass
class AppState:
    settings: Settings
    redis: Redis
    queue: ArqRedis
    store: GenerationStore
    feed: StreamHub
    draining: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the process begins shutting down: readiness fails, streams end with a retry hint."""
    metrics: ApiMetrics = field(default_factory=ApiMetrics)
    presence: Presence | None = None
    gate: ConnectionGate = field(init=False)
    watchdog: SendWatchdog = field(init=False)
    """Open SSE connections and the cap; refuses new streams while draining."""

    def __post_init__(self) -> None:
        self.gate = ConnectionGate(
            self.settings.max_sse_connections,
            self.draining,
            retry_base_s=self.settings.sse_cap_retry_s,
        )
        self.watchdog = SendWatchdog(self.settings.sse_send_timeout_s)
