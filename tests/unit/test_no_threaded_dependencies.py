"""No route of the API hands work to a thread on every request.

FastAPI runs a plain `def` dependency or endpoint in a worker thread: one thread
hop per request (about 0.3 ms of the first token here, measured in bench/README.md,
"Time to first token next to the same SDK going direct"). All of ours are cheap
and do no blocking I/O, so all of them are `async def`.
"""

from __future__ import annotations

import inspect

from fastapi.dependencies.models import Dependant

from api.events_fast_path import api_routes
from api.main import create_app
from services.config import Settings


def _calls(dependant: Dependant) -> list[object]:
    calls: list[object] = [dependant.call] if dependant.call is not None else []
    for sub in dependant.dependencies:
        calls += _calls(sub)
    return calls


def test_every_endpoint_and_dependency_runs_on_the_event_loop() -> None:
    routes = list(api_routes(create_app(Settings()).routes))
    assert len(routes) > 20  # the walk finds them all, however FastAPI nests them
    threaded = {
        f"{route.path}: {getattr(call, '__qualname__', call)}"
        for route in routes
        for call in _calls(route.dependant)
        if not inspect.iscoroutinefunction(call)
    }
    assert not threaded
