"""The native generation resource: create, read, cancel."""

from __future__ import annotations

import contextlib

from fastapi import APIRouter
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from api.access import readable_status
from api.auth import Principal, current_principal
from api.deps import Authenticated, PrincipalDep, StateDep
from api.errors import ErrorAnswer, documented_errors
from api.json_body import JsonBodyRoute
from api.submission import submit_generation
from services.errors import Conflict, NotFound
from services.generation import GenerationAccepted, GenerationRequest, GenerationStatus
from services.limits import release_generation

router = APIRouter(
    prefix="/v1/generations",
    tags=["generations"],
    dependencies=[Authenticated],
    route_class=JsonBodyRoute,
    responses=documented_errors(ErrorAnswer, 401, 422, 503),
)


async def load_status(
    state: StateDep, gen_id: str, principal: Principal | None = None
) -> GenerationStatus:
    """The generation, if the caller may read it: another tenant's answers 404 exactly
    as an unknown id (api/access.py). Without `principal`, the current request's."""
    return await readable_status(
        state.store,
        principal or current_principal(),
        gen_id,
        retention_s=state.settings.retention_s,
    )


@router.post("", status_code=202, responses=documented_errors(ErrorAnswer, 400, 403, 413, 415))
async def create_generation(
    body: GenerationRequest, state: StateDep, principal: PrincipalDep
) -> GenerationAccepted:
    """Queue a generation; a worker runs it whether or not anyone watches."""
    gen_id, created_at = await submit_generation(state, body, principal)
    return GenerationAccepted(
        id=gen_id,
        status="queued",
        model=body.model,
        events_url=f"/v1/generations/{gen_id}/events",
        created_at=created_at,
    )


@router.get("/{gen_id}", responses=documented_errors(ErrorAnswer, 404))
async def get_generation(gen_id: str, state: StateDep, principal: PrincipalDep) -> GenerationStatus:
    """The status, all text so far (of the current attempt), and who is watching."""
    status = await load_status(state, gen_id, principal)
    if state.presence is not None:
        status.viewers = await state.presence.count(gen_id)
    return status


@router.post(
    "/{gen_id}/cancel", status_code=202, responses=documented_errors(ErrorAnswer, 403, 404, 409)
)
async def cancel_generation(
    gen_id: str, state: StateDep, principal: PrincipalDep
) -> GenerationStatus:
    """Stop a queued or running generation; its stream ends with `cancelled`."""
    status = await load_status(state, gen_id, principal)
    outcome = await state.store.request_cancel(gen_id)
    if outcome == "missing":
        raise NotFound(f"no generation '{gen_id}'")
    if outcome == "cancelled":  # it was queued: this request wrote its end
        # A lost release is repaired at the tenant's next refusal (services/limits.py).
        with contextlib.suppress(RedisError, OSError):
            await release_generation(state.store, state.redis, gen_id)
    if outcome == "finished":
        current = await load_status(state, gen_id, principal)
        raise Conflict(f"generation '{gen_id}' already finished with status '{current.status}'")
    return await state.store.status(gen_id) or status


class ViewerTokenRequest(BaseModel):
    ttl_s: int | None = Field(
        default=None,
        ge=10,
        le=30 * 86400,
        description="lifetime in seconds; default TOKENRELAY_VIEWER_TOKEN_TTL_S",
    )


class ViewerTokenAnswer(BaseModel):
    token: str
    expires_at: float
    watch_url: str
    events_url: str


@router.post(
    "/{gen_id}/viewer-tokens",
    status_code=201,
    responses=documented_errors(ErrorAnswer, 400, 403, 404, 413, 415),
)
async def create_viewer_token(
    gen_id: str, state: StateDep, principal: PrincipalDep, body: ViewerTokenRequest | None = None
) -> ViewerTokenAnswer:
    """A signed, expiring token that can only read this generation: share `watch_url`."""
    status = await load_status(state, gen_id, principal)
    ttl_s = (body.ttl_s if body is not None else None) or state.settings.viewer_token_ttl_s
    token, expires_at = await state.auth.tokens.mint(
        gen_id, status.tenant, principal.key_id if principal.managed else None, ttl_s
    )
    return ViewerTokenAnswer(
        token=token,
        expires_at=expires_at,
        watch_url=f"/watch/{gen_id}?token={token}",
        events_url=f"/v1/generations/{gen_id}/events?token={token}",
    )
