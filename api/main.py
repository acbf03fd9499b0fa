"""The API application factory.

`create_app(settings)` builds the application; its lifespan opens what the
process holds (`AppState.open`: Redis clients, hub, presence) and closes it on
exit. Nothing is created at import time.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute

from api.body_limit import BodySizeLimit
from api.errors import install_error_handlers
from api.metrics import ApiMetrics
from api.routes import (
    admin,
    anthropic_door,
    events,
    generations,
    health,
    listing,
    metrics,
    models,
    openai_door,
    responses,
    web,
)
from api.state import AppState
from services.config import Settings

log = logging.getLogger(__name__)

DOORS = (openai_door.router, anthropic_door.router, responses.router, models.door_router)
"""The front doors' routers: their errors are written in their own APIs' shapes."""


def create_app(settings: Settings) -> FastAPI:
    api_metrics = ApiMetrics()
    api_metrics.tenants.max_labels = settings.metrics_max_tenants

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.auth_enabled:
            log.warning("TOKENRELAY_API_KEYS is unset: the API accepts every request (dev only)")
        state = await AppState.open(settings, api_metrics)
        app.state.tokenrelay = state
        # Everything built so far lives as long as the process: keep it out of the
        # cyclic collector's full passes, which otherwise stall every stream.
        gc.freeze()
        try:
            yield
        finally:
            await state.close()

    app = FastAPI(
        title="tokenrelay",
        summary="Resumable, shareable LLM token streams over SSE, backed by Redis Streams.",
        version="0.1.0",
        lifespan=lifespan,
        # The document describes the public API and holds no secret; operators who
        # would rather not publish it turn it off (README, "Security").
        openapi_url="/openapi.json" if settings.public_docs else None,
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
    app.include_router(admin.router)
    app.include_router(web.router)
    for door in DOORS:
        app.include_router(door)
    # A body refused before routing is answered in its route's shape.
    shapes = {
        route.path: route.error_shape
        for door in DOORS
        for route in door.routes
        if isinstance(route, APIRoute) and hasattr(route, "error_shape")
    }
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        shapes=shapes,
        idle_timeout_s=settings.header_timeout_s,
    )
    return app
