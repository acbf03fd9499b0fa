"""The one place where errors become HTTP answers.

`failure_of` turns any exception into a `Failure` (status, type, message,
headers); a format's `ErrorShape` writes its body. The native shape is
`{"error": {"type", "message"}}`; the front doors write OpenAI's and Anthropic's
(api/doors/errors.py), from the same `Failure`. Request validation is split the
way clients need it: a body that is not JSON is a 400, JSON with wrong fields a
422 naming each field. Redis being unreachable is a 503 with `Retry-After`.
Anything unexpected is logged (type and raise site only, see cli/logs.py) and
answered as a bare 500.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from services.errors import ApiError
from services.redis_connections import is_passing_outage, is_redis_full

log = logging.getLogger(__name__)

_STATUS_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "request_too_large",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "unavailable",
}


class ErrorDetail(BaseModel):
    type: str
    message: str


class ErrorAnswer(BaseModel):
    """The native error answer, as the OpenAPI document describes it."""

    error: ErrorDetail


_STATUS_MEANINGS = {
    400: "Bad request: not JSON, nested too deep, a lone surrogate, an unknown provider, "
    "a malformed cursor",
    401: "Missing or wrong API key",
    403: "Refused: the credential may not do this (a viewer token, a key without the scope "
    "or the model), or, with auth off, a state-changing request from another site's page",
    404: "Unknown or expired generation",
    409: "Conflict: the generation already finished, or was cancelled while awaited",
    413: "Body over TOKENRELAY_MAX_BODY_BYTES",
    415: "Body not sent as Content-Type: application/json",
    422: "Invalid fields, each named",
    429: "Rate limited",
    502: "The provider failed",
    503: "Unavailable: Redis unreachable or full, shutting down, or too many open streams; "
    "see Retry-After",
    504: "The provider timed out",
}


def documented_errors(answer: type[BaseModel], *statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status it may answer, with its body's schema.

    The doors pass their own answer models (api/doors/errors.py); the meanings are
    the same everywhere.
    """
    return {
        status: {"model": answer, "description": _STATUS_MEANINGS[status]} for status in statuses
    }


def error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"error": {"type": error_type, "message": message}}


_NOT_AN_OBJECT = frozenset({"model_attributes_type", "dict_type", "model_type"})


def is_json_content_type(value: str | None) -> bool:
    """`*/json` or `*/*+json`, as FastAPI parses. A body with no type is not JSON: a
    browser sends one cross-site without a preflight, as it does `text/plain`."""
    if not value:
        return False
    subtype = value.split(";", 1)[0].strip().lower().partition("/")[2]
    return subtype == "json" or subtype.endswith("+json")


def not_json_message(content_type: str | None) -> str:
    """The 415's message: what to send instead of what came."""
    sent = f"not '{content_type[:80]}'" if content_type else "it had no Content-Type"
    return f"request body must be JSON: send it with 'Content-Type: application/json' ({sent})"


def describe_validation_errors(
    errors: list[dict[str, Any]], content_type: str | None = None
) -> tuple[int, str]:
    """(status, message) for pydantic/FastAPI validation errors."""
    body_not_an_object = any(
        err.get("type") in _NOT_AN_OBJECT and tuple(err.get("loc", ())) == ("body",)
        for err in errors
    )
    if body_not_an_object and content_type is not None and not is_json_content_type(content_type):
        return 415, not_json_message(content_type)
    if body_not_an_object:
        return 422, "body: must be a JSON object"
    if any(err.get("type") == "json_invalid" for err in errors):
        detail = next(err for err in errors if err.get("type") == "json_invalid")
        reason = (detail.get("ctx") or {}).get("error", "invalid JSON")
        return 400, f"request body is not valid JSON: {reason}"
    if any(
        err.get("type") == "missing" and tuple(err.get("loc", ())) == ("body",) for err in errors
    ):
        return 400, "request body is missing: send a JSON object"
    parts = []
    for err in errors[:10]:
        location = [str(p) for p in err.get("loc", ()) if p != "body"]
        where = ".".join(location) or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return 422, "; ".join(parts)


@dataclass(frozen=True)
class Failure:
    """What went wrong, before it is written in any door's shape."""

    status: int
    error_type: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)
    param: str | None = None


REDIS_DOWN = Failure(
    503, "unavailable", "the event store is unavailable; retry shortly", {"Retry-After": "2"}
)

REDIS_FULL = Failure(
    503,
    "unavailable",
    "the event store is full (Redis reached its maxmemory); retry shortly",
    {"Retry-After": "5"},
)

_CLUSTER_REPLIES = ("MOVED ", "ASK ", "CROSSSLOT ", "CLUSTERDOWN ")
CLUSTER_BEHIND_PLAIN_URL = Failure(
    503,
    "unavailable",
    "the event store is a Redis Cluster reached through a plain URL; the deployment must "
    "name it with redis+cluster:// (TOKENRELAY_STREAMS_REDIS_URL or TOKENRELAY_REDIS_URL)",
)


def failure_of(exc: BaseException, content_type: str | None = None) -> Failure:
    """Any exception a request can end with, as the failure to answer: the one
    mapping every format shares (native, OpenAI and Anthropic doors)."""
    if isinstance(exc, ApiError):
        param = getattr(exc, "param", None)  # set by the doors' request checks
        return Failure(exc.status_code, exc.error_type, exc.message, dict(exc.headers), param)
    if isinstance(exc, RequestValidationError):
        status, message = describe_validation_errors(list(exc.errors()), content_type)
        return Failure(status, _STATUS_TYPES[status], message)
    if isinstance(exc, StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 400 and message == "There was an error parsing the body":
            message = "request body is not valid JSON (or not UTF-8)"
        error_type = _STATUS_TYPES.get(exc.status_code, "api_error")
        return Failure(exc.status_code, error_type, message, dict(exc.headers or {}))
    if isinstance(exc, ClientDisconnect):
        # Nobody is left to read the answer; not a fault of ours worth an error line.
        return Failure(400, "invalid_request_error", "the client disconnected mid-request")
    if is_passing_outage(exc):  # a lost connection, or READONLY/LOADING… mid-failover
        log.warning("Redis unavailable: %s", type(exc).__name__)
        return REDIS_DOWN
    if is_redis_full(exc):
        # Not the request's fault, and not a bug: the operator's Redis is full
        # (noeviction, as it must be). Nothing was queued; a retry may find room.
        log.error("Redis is full (maxmemory): refusing writes until it has room")
        return REDIS_FULL
    if isinstance(exc, ResponseError) and str(exc).startswith(_CLUSTER_REPLIES):
        # A Redis Cluster node reached through a plain URL (start-up warns of it too):
        # the generations whose keys live on other nodes cannot be served.
        log.error("Redis answered %s: the URL names a cluster node", str(exc).split(" ")[0])
        return CLUSTER_BEHIND_PLAIN_URL
    log.error("unhandled error", exc_info=exc)
    return Failure(500, "api_error", "internal error")


ErrorShape = Callable[[Failure], dict[str, Any]]
"""How one format writes a failure's body (native here; the doors' in api/doors/errors.py)."""


def native_body(failure: Failure) -> dict[str, Any]:
    return error_body(failure.error_type, failure.message)


def failure_response(failure: Failure, shape: ErrorShape = native_body) -> JSONResponse:
    return JSONResponse(shape(failure), status_code=failure.status, headers=failure.headers)


async def _answer_natively(request: Request, exc: Exception) -> JSONResponse:
    return failure_response(failure_of(exc, request.headers.get("content-type")))


def install_error_handlers(app: FastAPI) -> None:
    """Native-shape answers for every route whose route class does not answer itself.

    Every class an answer is expected for is listed: Starlette answers those in its
    exception middleware and the connection lives on. `Exception` alone is left to
    the server-error middleware, which answers, re-raises, and so has uvicorn log a
    traceback and close the connection under the client's next request on it."""
    for exc_class in (
        ApiError,
        ClientDisconnect,
        RequestValidationError,
        StarletteHTTPException,
        RedisConnectionError,
        RedisTimeoutError,
        ResponseError,  # a full Redis, or a cluster's MOVED behind a plain URL: 503s
        Exception,
    ):
        app.add_exception_handler(exc_class, _answer_natively)
