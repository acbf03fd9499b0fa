"""What one API process holds: its settings, Redis clients, store and event feed.

Built by `create_app`'s lifespan, never at import time; routes reach it through
`api.deps`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from arq.connections import ArqRedis
from redis.asyncio import Redis

from api.tail import EventFeed
from services.config import Settings
from services.store import GenerationStore


@dataclass
class AppState:
    settings: Settings
    redis: Redis
    queue: ArqRedis
    store: GenerationStore
    feed: EventFeed
    draining: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the process begins shutting down: readiness fails, streams end with a retry hint."""
