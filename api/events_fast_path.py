"""`GET /v1/generations/{id}/events` in the native format, served below FastAPI.

Why: an SSE connection lives for minutes and mostly waits. Everything on the call
stack while it waits stays in memory: through FastAPI that is about twenty
coroutine frames of ASGI layers (error middlewares, the exit-stack middleware, the
router, the route's request handler), FastAPI's three exit stacks, the request
object and the solved dependencies, about half of what an idle connection costs
(bench/README.md, "Memory per idle SSE connection"). This wrapper answers that one
request itself, with the route's own function (`api/routes/events.py`
`stream_events`) and the routers' own dependency (`authenticate`), so the waiting
stack is the response's own.

Only the plain case is taken here: `GET`, the exact path, query parameters the
route would accept (`format` absent or `native`, a cursor of at most 256
characters). Everything else, including every request that
FastAPI would refuse while validating it, goes to FastAPI unchanged, so each
answer (422s, redirects, `HEAD`, the other formats) stays the one FastAPI gives.
An error raised by the route is answered as FastAPI's handlers would
(api/errors.py `failure_of`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Iterable, Iterator
from urllib.parse import parse_qsl

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from api.deps import authenticate
from api.errors import failure_of, failure_response
from api.routes import events

_EVENTS_PATH = re.compile(r"/v1/generations/([^/]+)/events")
_MAX_CURSOR = 256  # the route's `max_length` for ?last_event_id


class EventsFastPath:
    """The ASGI app to serve: the plain native event stream here, all else to `app`."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._route = _events_route(app)

    @property
    def state(self) -> State:
        """The FastAPI app's state (cli/serve.py reads it to drain)."""
        return self.app.state

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain function, so a request passed on adds no frame to FastAPI's stack.
        if scope["type"] == "http" and scope["method"] == "GET" and not scope.get("root_path"):
            found = _EVENTS_PATH.fullmatch(scope["path"])
            if found is not None:
                query = _plain_query(scope.get("query_string", b""))
                if query is not None:
                    return self._serve(scope, receive, send, found.group(1), query)
        return self.app(scope, receive, send)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, gen_id: str, query: dict[str, str]
    ) -> None:
        response = await self._respond(scope, receive, gen_id, query)
        await response(scope, receive, send)

    async def _respond(
        self, scope: Scope, receive: Receive, gen_id: str, query: dict[str, str]
    ) -> Response:
        """What the route answers (its response, or its error), as FastAPI would have."""
        # What FastAPI's routing puts in the scope and our dependencies read.
        scope["app"] = self.app
        scope["route"] = self._route
        scope["path_params"] = {"gen_id": gen_id}
        request = Request(scope, receive)
        try:
            state = self.app.state.tokenrelay
            await authenticate(request, state)
            return await events.stream_events(
                gen_id,
                state,
                last_event_id_header=request.headers.get("last-event-id"),
                last_event_id=query.get("last_event_id"),
                format="native",
            )
        except Exception as exc:
            return failure_response(failure_of(exc, request.headers.get("content-type")))


def _events_route(app: FastAPI) -> APIRoute:
    """The events route, whose path template `authenticate` checks scopes against."""
    for route in api_routes(app.routes):
        if route.endpoint is events.stream_events:
            return route
    raise LookupError("the events route is not in the app")


def api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every APIRoute, also those behind an included router (FastAPI keeps the router)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None) or getattr(route, "app", None)
        if included is not None and hasattr(included, "routes"):
            yield from api_routes(included.routes)


def _plain_query(raw: bytes) -> dict[str, str] | None:
    """The query as the route reads it (the last of repeated names), or None when
    FastAPI should answer it: an unknown format, an over-long cursor, bad encoding."""
    try:
        pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    except ValueError:
        return None
    query = dict(pairs)  # names the route does not know are ignored, as FastAPI does
    if query.get("format", "native") != "native":
        return None
    if len(query.get("last_event_id", "")) > _MAX_CURSOR:
        return None
    return query
