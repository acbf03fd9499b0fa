"""The one place where errors become HTTP answers.

Every answer is `{"error": {"type", "message"}}`. Request validation is split the
way clients need it: a body that is not JSON is a 400, JSON with wrong fields a
422 naming each field. Redis being unreachable is a 503 with `Retry-After`.
Anything unexpected is logged (type and raise site only, see cli/logs.py) and
answered as a bare 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.errors import ApiError

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
    403: "Refused: with auth off, a state-changing request from another site's page",
    404: "Unknown or expired generation",
    409: "Conflict: the generation already finished, or was cancelled while awaited",
    413: "Body over TOKENRELAY_MAX_BODY_BYTES",
    415: "Body not sent as Content-Type: application/json",
    422: "Invalid fields, each named",
    429: "Rate limited",
    502: "The provider failed",
    503: "Unavailable: Redis unreachable, shutting down, or too many open streams; see Retry-After",
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


def error_response(
    status: int, error_type: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(error_type, message), status_code=status, headers=headers)


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


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status_code, exc.error_type, exc.message, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    content_type = request.headers.get("content-type")
    status, message = describe_validation_errors(list(exc.errors()), content_type)
    return error_response(status, _STATUS_TYPES[status], message)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 400 and message == "There was an error parsing the body":
        message = "request body is not valid JSON (or not UTF-8)"
    error_type = _STATUS_TYPES.get(exc.status_code, "api_error")
    return error_response(exc.status_code, error_type, message, dict(exc.headers or {}))


async def _redis_down(_: Request, exc: Exception) -> JSONResponse:
    log.warning("Redis unavailable: %s", type(exc).__name__)
    return error_response(
        503, "unavailable", "the event store is unavailable; retry shortly", {"Retry-After": "2"}
    )


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", exc_info=exc)
    return error_response(500, "api_error", "internal error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RedisConnectionError, _redis_down)
    app.add_exception_handler(RedisTimeoutError, _redis_down)
    app.add_exception_handler(Exception, _unexpected)
