"""Prometheus metrics of this API process (no auth, like the health probes)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from api.deps import StateDep
from api.metrics import CONTENT_TYPE

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(state: StateDep) -> Response:
    """Prometheus text format: SSE connections, fan-out, delivery lag, hub Redis commands."""
    return Response(state.metrics.render(), media_type=CONTENT_TYPE)
