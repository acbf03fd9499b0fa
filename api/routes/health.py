"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from api.deps import StateDep

router = APIRouter(tags=["operations"])


# HEAD for probes that send it (load balancers, uptime checkers): the GET's status and
# headers without the body. It stays out of the OpenAPI document, where it would
# repeat the GET operation under the same id.
@router.get("/healthz")
@router.head("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    """200 while the process runs."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
@router.head("/readyz", response_model=None, include_in_schema=False)
async def readyz(state: StateDep) -> JSONResponse | dict[str, str]:
    """200 only when Redis answers, the shared stream read is not stuck, and the process
    is not shutting down."""
    if state.draining.is_set():
        return JSONResponse({"status": "draining"}, status_code=503, headers={"Retry-After": "1"})
    try:
        await state.redis.ping()
    except (RedisError, OSError):
        return JSONResponse(
            {"status": "redis unavailable"}, status_code=503, headers={"Retry-After": "2"}
        )
    if state.hub.reader_stalled:
        # Commands work but the shared stream read gets no reply (a half-open
        # connection): this replica's viewers would wait in silence.
        return JSONResponse(
            {"status": "stream reader stalled"}, status_code=503, headers={"Retry-After": "2"}
        )
    return {"status": "ready"}
