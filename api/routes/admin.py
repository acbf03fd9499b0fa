"""Managed keys over HTTP, for admin keys: `/v1/admin/keys` (services/api_keys.py).

The same operations as `tokenrelay keys create|list|revoke`. A new key is in the
creation answer once and nowhere else.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import Authenticated, StateDep
from api.errors import ErrorAnswer, documented_errors
from api.json_body import JsonBodyRoute
from services.api_keys import DEFAULT_SCOPES, KeyLimits, ManagedKeyError, parse_scopes
from services.errors import InvalidFields, NotFound

router = APIRouter(
    prefix="/v1/admin/keys",
    tags=["admin"],
    dependencies=[Authenticated],
    route_class=JsonBodyRoute,
    responses=documented_errors(ErrorAnswer, 401, 403, 422, 503),
)


class KeyLimitsBody(BaseModel):
    requests_per_minute: int | None = Field(default=None, ge=1)
    max_streams: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    models: list[str] | None = Field(default=None, max_length=100)


class CreateKeyBody(BaseModel):
    tenant: str = Field(min_length=1, max_length=64)
    name: str = Field(default="", max_length=200)
    scopes: list[str] = Field(default_factory=lambda: list(DEFAULT_SCOPES), max_length=4)
    limits: KeyLimitsBody | None = None


@router.post("", status_code=201, responses=documented_errors(ErrorAnswer, 400, 413, 415))
async def create_key(body: CreateKeyBody, state: StateDep) -> dict[str, Any]:
    """A new managed key: `key` is shown in this answer only."""
    limits = body.limits or KeyLimitsBody()
    try:
        key, record = await state.auth.key_store.create(
            body.tenant,
            name=body.name,
            scopes=parse_scopes(body.scopes),
            limits=KeyLimits(
                requests_per_minute=limits.requests_per_minute,
                max_streams=limits.max_streams,
                max_tokens=limits.max_tokens,
                models=tuple(limits.models) if limits.models is not None else None,
            ),
        )
    except ManagedKeyError as exc:
        raise InvalidFields(str(exc)) from None
    return {**record.public(), "key": key}


@router.get("")
async def list_keys(state: StateDep) -> dict[str, Any]:
    """Every managed key (never the keys themselves), revoked ones included."""
    records = await state.auth.key_store.list()
    return {"object": "list", "data": [record.public() for record in records]}


@router.delete("/{key_id}", responses=documented_errors(ErrorAnswer, 404))
async def revoke_key(key_id: str, state: StateDep) -> dict[str, Any]:
    """Revoke a key: every replica refuses it within a second and ends its streams."""
    try:
        record = await state.auth.key_store.revoke(key_id)
    except ManagedKeyError as exc:
        raise NotFound(str(exc)) from None
    return record.public()
