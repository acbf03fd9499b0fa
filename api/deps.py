"""FastAPI dependencies as `Annotated` aliases: the app state and the caller's identity."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.routing import APIRoute

from api.auth import Principal, authorize, set_current
from api.origin import check_origin
from api.state import AppState
from services.errors import AuthenticationFailed
from services.viewer_tokens import looks_like_token


async def get_state(request: Request) -> AppState:
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


def presented_credential(request: Request) -> str | None:
    """A key or viewer token from the headers, else a viewer token from `?token=`
    (EventSource and shared links cannot set headers). A key is never taken from a
    URL, where it would end up in logs, histories and Referer headers."""
    credential = presented_key(request)
    if credential is not None:
        return credential
    token = request.query_params.get("token")
    if token is None:
        return None
    if not looks_like_token(token):
        raise AuthenticationFailed("?token= takes a viewer token, never an API key")
    return token


async def authenticate(request: Request, state: StateDep) -> Principal:
    """The caller's `Principal`, checked against the scope the route needs (401/403).

    With auth off, state-changing requests from another site's page are refused
    (see api/origin.py)."""
    credential = presented_credential(request)
    principal = await state.auth.resolve(credential)
    if not state.auth.enabled:
        check_origin(
            request.method,
            request.headers.get("origin"),
            request.headers.get("host"),
            state.settings.cross_origins,
        )
    route = request.scope.get("route")
    path = route.path if isinstance(route, APIRoute) else request.url.path
    authorize(principal, request.method, path)
    set_current(principal)
    request.state.principal = principal
    return principal


Authenticated = Depends(authenticate)
PrincipalDep = Annotated[Principal, Depends(authenticate)]
