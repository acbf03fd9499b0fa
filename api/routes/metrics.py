"""Prometheus metrics of this API process.

With auth off, or `TOKENRELAY_PUBLIC_METRICS=true`, anyone may scrape them. With
auth on they carry tenant names and traffic, so the scraper sends
`Authorization: Bearer` with `TOKENRELAY_METRICS_KEY` (a secret that opens
nothing else) or an admin key.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import StateDep, presented_key
from api.errors import ErrorAnswer, documented_errors
from api.metrics import CONTENT_TYPE
from services.errors import AuthenticationFailed, Forbidden

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        **documented_errors(ErrorAnswer, 401, 403),
    },
)
async def metrics(request: Request, state: StateDep) -> Response:
    """Prometheus text format: SSE connections, fan-out, delivery lag, hub Redis commands."""
    if state.auth.enabled and not state.settings.public_metrics:
        await _check_scraper(request, state)
    return Response(state.metrics.render(), media_type=CONTENT_TYPE)


async def _check_scraper(request: Request, state: StateDep) -> None:
    credential = presented_key(request)
    if credential is None:
        raise AuthenticationFailed("/metrics needs TOKENRELAY_METRICS_KEY or an admin key")
    metrics_key = state.settings.metrics_key
    if metrics_key is not None and hmac.compare_digest(
        credential.encode(), metrics_key.get_secret_value().encode()
    ):
        return
    principal = await state.auth.resolve(credential)
    if not principal.admin:
        raise Forbidden("/metrics needs TOKENRELAY_METRICS_KEY or an admin key")
