"""The API application factory.

`create_app(settings)` builds everything; the lifespan opens the Redis clients
and the event feed and closes them on exit. Nothing is created at import time.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from arq.connections import ArqRedis
from fastapi import FastAPI
from redis.asyncio import Redis

from api.body_limit import BodySizeLimit
from api.errors import install_error_handlers
from api.routes import (
    anthropic_compat,
    events,
    generations,
    health,
    listing,
    models,
    openai_compat,
    web,
)
from api.state import AppState
from api.tail import EventFeed
from services.config import Settings
from services.redis_checks import warn_about_redis_settings
from services.store import GenerationStore

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.accepted_api_keys:
            log.warning("TOKENRELAY_API_KEYS is unset: the API accepts every request (dev only)")
        redis = Redis.from_url(settings.redis_url, decode_responses=True)
        queue = ArqRedis.from_url(settings.redis_url)
        feed = EventFeed(redis)
        await feed.start()
        store = GenerationStore(
            redis,
            retention_s=settings.retention_s,
            max_stream_events=settings.max_stream_events,
            tombstone_s=settings.tombstone_s,
        )
        await warn_about_redis_settings(redis, "api")
        app.state.tokenrelay = AppState(
            settings=settings, redis=redis, queue=queue, store=store, feed=feed
        )
        try:
            yield
        finally:
            app.state.tokenrelay.draining.set()
            await feed.stop()
            await queue.aclose()
            await redis.aclose()

    app = FastAPI(
        title="tokenrelay",
        summary="Resumable, shareable LLM token streams over SSE, backed by Redis Streams.",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    for router in (generations.router, events.router, models.router, health.router):
        app.include_router(router)
    app.include_router(listing.router)
    app.include_router(web.router)
    for door in (openai_compat.router, anthropic_compat.router):
        app.include_router(door)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app
