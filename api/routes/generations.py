"""The native generation resource: create, read, cancel."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import Authenticated, StateDep
from api.errors import ErrorAnswer, documented_errors
from api.json_body import JsonBodyRoute
from api.submission import submit_generation
from services import keys
from services.errors import Conflict, NotFound
from services.generation import GenerationAccepted, GenerationRequest, GenerationStatus

router = APIRouter(
    prefix="/v1/generations",
    tags=["generations"],
    dependencies=[Authenticated],
    route_class=JsonBodyRoute,
    responses=documented_errors(ErrorAnswer, 401, 422, 503),
)


async def load_status(state: StateDep, gen_id: str) -> GenerationStatus:
    status = await state.store.status(gen_id) if keys.is_generation_id(gen_id) else None
    if status is None:
        if keys.is_generation_id(gen_id) and await state.store.expired(gen_id):
            raise NotFound(
                f"generation '{gen_id}' has expired: finished generations are kept for "
                f"{state.settings.retention_s} s (TOKENRELAY_RETENTION_S)"
            )
        raise NotFound(f"no generation '{gen_id[:64]}' (unknown, or expired after retention)")
    return status


@router.post("", status_code=202, responses=documented_errors(ErrorAnswer, 400, 403, 413, 415))
async def create_generation(body: GenerationRequest, state: StateDep) -> GenerationAccepted:
    """Queue a generation; a worker runs it whether or not anyone watches."""
    gen_id, created_at = await submit_generation(state, body)
    return GenerationAccepted(
        id=gen_id,
        status="queued",
        model=body.model,
        events_url=f"/v1/generations/{gen_id}/events",
        created_at=created_at,
    )


@router.get("/{gen_id}", responses=documented_errors(ErrorAnswer, 404))
async def get_generation(gen_id: str, state: StateDep) -> GenerationStatus:
    """The status, all text so far (of the current attempt), and who is watching."""
    status = await load_status(state, gen_id)
    if state.presence is not None:
        status.viewers = await state.presence.count(gen_id)
    return status


@router.post(
    "/{gen_id}/cancel", status_code=202, responses=documented_errors(ErrorAnswer, 403, 404, 409)
)
async def cancel_generation(gen_id: str, state: StateDep) -> GenerationStatus:
    """Stop a queued or running generation; its stream ends with `cancelled`."""
    status = await load_status(state, gen_id)
    outcome = await state.store.request_cancel(gen_id)
    if outcome == "missing":
        raise NotFound(f"no generation '{gen_id}'")
    if outcome == "finished":
        current = await load_status(state, gen_id)
        raise Conflict(f"generation '{gen_id}' already finished with status '{current.status}'")
    return await state.store.status(gen_id) or status
