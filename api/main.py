"""The API application factory.

`create_app(settings)` builds everything; the lifespan opens the Redis clients
and the event feed and closes them on exit. Nothing is created at import time.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.body_limit import BodySizeLimit
from api.errors import install_error_handlers
from api.hub import HUB_BLOCK_S, StreamHub
from api.metrics import ApiMetrics
from api.presence import Presence
from api.routes import (
    anthropic_compat,
    events,
    generations,
    health,
    listing,
    metrics,
    models,
    openai_compat,
    web,
)
from api.state import AppState
from services.config import Settings
from services.redis_checks import warn_about_redis_settings
from services.redis_connections import blocking_reader, command_client, queue_client
from services.store import GenerationStore

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    api_metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.accepted_api_keys:
            log.warning("TOKENRELAY_API_KEYS is unset: the API accepts every request (dev only)")
        # Every connection has a bound on a due reply (services/redis_connections.py):
        # a hung or half-open Redis turns into 503s, never into requests that wait.
        redis = command_client(settings, "tokenrelay-api")
        queue = queue_client(settings, "tokenrelay-api-queue")
        reader = blocking_reader(settings, "tokenrelay-hub", block_s=HUB_BLOCK_S)
        replica_id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        feed = StreamHub(
            redis,
            reader,
            api_metrics,
            queue_events=settings.viewer_queue_events,
            replica_id=replica_id,
            block_s=HUB_BLOCK_S,
            reply_margin_s=settings.redis_timeout_s,
        )
        presence = Presence(redis, replica_id, ttl_s=settings.presence_ttl_s)
        feed.on_viewers_changed.append(presence.viewers_changed)
        await feed.start()
        await presence.start()
        store = GenerationStore(
            redis,
            retention_s=settings.retention_s,
            max_stream_events=settings.max_stream_events,
            tombstone_s=settings.tombstone_s,
        )
        await warn_about_redis_settings(redis, "api")
        state = AppState(
            settings=settings,
            redis=redis,
            queue=queue,
            store=store,
            feed=feed,
            metrics=api_metrics,
            presence=presence,
        )
        app.state.tokenrelay = state
        await state.watchdog.start()
        # Everything built so far lives as long as the process: keep it out of the
        # cyclic collector's full passes, which otherwise stall every stream.
        gc.freeze()

        async def close_streams_on_drain() -> None:
            await state.draining.wait()
            feed.close_viewers()

        drain_watch = asyncio.create_task(close_streams_on_drain())
        try:
            yield
        finally:
            state.draining.set()
            await asyncio.sleep(0)  # let the drain watch run
            drain_watch.cancel()
            await feed.stop()
            await state.watchdog.stop()
            await presence.stop()
            await queue.aclose()
            await redis.aclose()

    app = FastAPI(
        title="tokenrelay",
        summary="Resumable, shareable LLM token streams over SSE, backed by Redis Streams.",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    for router in (
        generations.router,
        events.router,
        models.router,
        health.router,
        metrics.router,
    ):
        app.include_router(router)
    app.include_router(listing.router)
    app.include_router(web.router)
    for door in (openai_compat.router, anthropic_compat.router):
        app.include_router(door)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app
