"""Reading a request body as JSON, under the same rules at every door.

A route class runs these checks before FastAPI or the handler touches the body,
so the native route and the OpenAI and Anthropic doors refuse the same inputs,
each in its own error shape (the doors' route classes derive from this one, see
api/doors/errors.py):

- A body not declared as JSON is a 415. A page on any other site can make a
  browser send a `text/plain`, form-encoded or multipart body, or one with no
  type at all, without a CORS preflight; a JSON body needs one.
- Nesting deeper than `TOKENRELAY_MAX_JSON_DEPTH` is a 400. The limit keeps an
  accepted request within what the worker's JSON parser reads back (see
  services/generation.py), and keeps parsing well away from Python's recursion
  limit, whose error would otherwise surface as a 500.
- A string holding a lone UTF-16 surrogate (`"\\ud800"`: valid escape syntax, but
  no Unicode character) is a 400 naming where it is. Such a string cannot be
  encoded as UTF-8, so it would fail later, as a 500, on its way to Redis.

The parsed body is kept on the request, so a handler that reads the body itself
(the doors) does not parse it twice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from api.errors import is_json_content_type, not_json_message
from api.state import AppState
from services.errors import InvalidRequest, UnsupportedMediaType

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_SURROGATE = re.compile("[\ud800-\udfff]")
_STATE_KEY = "json_body"
_SHOWN_PATH_CHARS = 120


def parse_json_body(raw: bytes, max_depth: int) -> Any:
    """The body's JSON value, or an `InvalidRequest` saying precisely what is wrong."""
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        # Far deeper than any limit we allow: the C parser gave up before we could look.
        raise InvalidRequest(_too_deep(max_depth, "")) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, over-long integers
        raise InvalidRequest(f"request body is not valid JSON: {_parse_failure(exc)}") from None
    problem = _first_problem(value, max_depth)
    if problem is not None:
        raise InvalidRequest(problem)
    return value


def checked_json_body(request: Request) -> Any:
    """The body a `JsonBodyRoute` parsed and checked; a 400 if the request had none."""
    if not hasattr(request.state, _STATE_KEY):
        raise InvalidRequest("request body is missing: send a JSON object")
    return getattr(request.state, _STATE_KEY)


class JsonBodyRoute(APIRoute):
    """A route whose body, when it takes one, must be JSON within the limits, checked first.

    A route takes a body when FastAPI parses one for it, or when its OpenAPI entry
    declares one (the doors, which parse their own): what is documented as JSON
    is checked as JSON. A body sent to any other route is ignored, as before.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        takes_body = self.body_field is not None or "requestBody" in (self.openapi_extra or {})

        async def handle_checked_body(request: Request) -> Response:
            if takes_body and request.method in _BODY_METHODS:
                raw = await request.body()
                if raw:
                    content_type = request.headers.get("content-type")
                    if not is_json_content_type(content_type):
                        raise UnsupportedMediaType(not_json_message(content_type))
                    state: AppState = request.app.state.tokenrelay
                    value = parse_json_body(raw, state.settings.max_json_depth)
                    setattr(request.state, _STATE_KEY, value)
            return await handle(request)

        return handle_checked_body


def _first_problem(value: Any, max_depth: int) -> str | None:
    """Walks the value without recursion: too deep, or a string that is not Unicode."""
    pending: list[tuple[Any, int, tuple[str, ...]]] = [(value, 0, ())]
    while pending:
        item, depth, path = pending.pop()
        if isinstance(item, str):
            if _has_surrogate(item):
                return _lone_surrogate(item, path)
            continue
        if isinstance(item, dict):
            children: list[tuple[str, Any]] = []
            for key, child in item.items():
                if _has_surrogate(key):
                    return _lone_surrogate(key, (*path, key))
                children.append((key, child))
        elif isinstance(item, list):
            children = [(str(index), child) for index, child in enumerate(item)]
        else:
            continue
        if depth + 1 > max_depth:
            return _too_deep(max_depth, _shown_path(path))
        pending.extend((child, depth + 1, (*path, key)) for key, child in children)
    return None


def _has_surrogate(text: str) -> bool:
    return not text.isascii() and _SURROGATE.search(text) is not None


def _shown_path(path: tuple[str, ...]) -> str:
    """A path safe to echo: surrogates escaped (they cannot be encoded), length capped."""
    shown = ".".join(part.encode("utf-8", "backslashreplace").decode() for part in path)
    return shown if len(shown) <= _SHOWN_PATH_CHARS else shown[:_SHOWN_PATH_CHARS] + "…"


def _too_deep(max_depth: int, where: str) -> str:
    at = f" at '{where}'" if where else ""
    return (
        f"request body is nested more than {max_depth} levels deep{at}: "
        "the limit is TOKENRELAY_MAX_JSON_DEPTH"
    )


def _lone_surrogate(text: str, path: tuple[str, ...]) -> str:
    code = ord(_SURROGATE.findall(text)[0])
    where = _shown_path(path) or "body"
    return (
        f"request body is not valid JSON text: '{where}' holds a lone UTF-16 surrogate "
        f"(\\u{code:04x}), which is not a Unicode character"
    )


def _refuse_constant(name: str) -> Any:
    """Python reads `NaN` and `Infinity`; JSON has neither, and pydantic would store
    them as `null` where a tool schema takes any value."""
    raise ValueError(f"{name} is not a JSON value")


def _parse_failure(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return str(exc)
    if isinstance(exc, UnicodeDecodeError):
        return "it is not UTF-8 text"
    if str(exc).endswith("is not a JSON value"):
        return str(exc)
    return "a number has too many digits"  # int() refuses more than 4300 digits
