"""The models this deployment can serve, in OpenAI's list and model shapes.

`GET /v1/models/{id}` is a front-door route (errors in OpenAI's shape, so the
`openai` SDK's `models.retrieve` raises `NotFoundError` for an unknown id). An
id is known when its provider is configured here: a bare name is the OpenAI
door's `openai/NAME`, as in `POST /v1/chat/completions`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import Authenticated, StateDep
from api.doors.errors import OpenAIErrorAnswer, OpenAIRoute
from api.doors.translation import qualified_model
from api.errors import ErrorAnswer, documented_errors
from services.config import Settings
from services.errors import NotFound
from services.providers import BY_NAME, configured_provider_names

router = APIRouter(
    prefix="/v1",
    tags=["models"],
    dependencies=[Authenticated],
    responses=documented_errors(ErrorAnswer, 401),
)

door_router = APIRouter(
    prefix="/v1",
    tags=["models"],
    dependencies=[Authenticated],
    route_class=OpenAIRoute,
    responses=documented_errors(OpenAIErrorAnswer, 401, 404, 422),
)


def listed_models(settings: Settings) -> list[str]:
    return [
        f"{provider}/{model}"
        for provider in configured_provider_names(settings)
        for model in BY_NAME[provider].suggested_models
    ]


@router.get("/models")
async def list_models(state: StateDep) -> dict[str, Any]:
    """Models as `PROVIDER/MODEL`; any model name under a listed provider is accepted."""
    return {
        "object": "list",
        "data": [_model(model) for model in listed_models(state.settings)],
    }


def _model(model_id: str, provider: str | None = None) -> dict[str, Any]:
    owner = provider or model_id.split("/")[0]
    return {"id": model_id, "object": "model", "created": 0, "owned_by": owner}


@door_router.get("/models/{model_id:path}")
async def retrieve_model(model_id: str, state: StateDep) -> dict[str, Any]:
    """One model, if this deployment can serve it (its provider is configured)."""
    provider = qualified_model(model_id, "openai").split("/", 1)[0]
    name = model_id.split("/", 1)[-1]
    if not name or provider not in configured_provider_names(state.settings):
        raise NotFound(
            f"The model '{model_id[:200]}' does not exist or this deployment cannot serve it: "
            "use PROVIDER/MODEL with a provider listed by GET /v1/models."
        )
    return _model(model_id, provider)
