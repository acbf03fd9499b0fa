"""The models this deployment can serve, in OpenAI's list shape."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import Authenticated, StateDep
from api.errors import ErrorAnswer, documented_errors
from services.config import Settings
from services.providers import BY_NAME, configured_provider_names

router = APIRouter(
    prefix="/v1",
    tags=["models"],
    dependencies=[Authenticated],
    responses=documented_errors(ErrorAnswer, 401),
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
        "data": [
            {"id": model, "object": "model", "created": 0, "owned_by": model.split("/")[0]}
            for model in listed_models(state.settings)
        ],
    }
