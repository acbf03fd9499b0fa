"""FastAPI dependencies as `Annotated` aliases: the app state and API-key auth."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from api.origin import check_origin
from api.state import AppState
from services.errors import AuthenticationFailed


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.tokenrelay
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def presented_key(request: Request) -> str | None:
    """The key from `Authorization: Bearer K` or `x-api-key: K`, if any."""
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    return request.headers.get("x-api-key") or None


def require_api_key(request: Request, state: StateDep) -> None:
    """Reject the request unless it presents an accepted key, or auth is off and it
    does not come from another site's page (see api/origin.py)."""
    accepted = state.settings.accepted_api_keys
    if not accepted:
        check_origin(
            request.method,
            request.headers.get("origin"),
            request.headers.get("host"),
            state.settings.cross_origins,
        )
        return
    key = presented_key(request)
    if key is None:
        raise AuthenticationFailed(
            "missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"
        )
    # Compare against every key so timing does not reveal which one nearly matched.
    matches = [hmac.compare_digest(key.encode(), candidate.encode()) for candidate in accepted]
    if not any(matches):
        raise AuthenticationFailed("invalid API key")


Authenticated = Depends(require_api_key)
