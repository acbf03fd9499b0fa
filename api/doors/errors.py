"""Errors of the front doors, in each door's own shape.

The `openai` and `anthropic` SDKs choose their exception class from the status
and read the message from the body, so each door answers in its API's shape:
OpenAI's `{"error": {"message", "type", "param", "code"}}` and Anthropic's
`{"type": "error", "error": {"type", "message"}}`. Both APIs report invalid
fields as 400, so our 422 is a 400 there. A route class installs this only on
the doors' routes (auth failures included, since dependencies run inside the
route handler); everything else keeps the native shape of api/errors.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any, Literal

from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from api.errors import ErrorDetail, ErrorShape, Failure, failure_of, failure_response
from api.formats import anthropic as anthropic_format
from api.formats import openai as openai_format
from api.json_body import JsonBodyRoute
from services.errors import ApiError

log = logging.getLogger(__name__)

# How a generation that failed is answered when the client waited for it
# (non-streaming): the failure's type decides the status, so SDKs retry what
# may succeed (429, 5xx) and raise at once what will not (400).
_FAILURE_STATUS = {
    "invalid_request_error": 400,
    "not_found_error": 400,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "overloaded_error": 503,
    "unavailable": 503,
    "timeout": 504,
    "cancelled": 409,
}

_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
}


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIErrorAnswer(BaseModel):
    """What `openai_body` answers, as the OpenAPI document describes it."""

    error: OpenAIErrorDetail


class AnthropicErrorAnswer(BaseModel):
    """What `anthropic_body` answers, as the OpenAPI document describes it."""

    type: Literal["error"]
    error: ErrorDetail


DOOR_ERROR_STATUSES = (400, 401, 403, 409, 413, 415, 429, 502, 503, 504)
"""What a door may answer besides 200: its body checks, auth, the origin check, and
the statuses a failed generation maps to when the client waited for it."""


class GenerationFailed(ApiError):
    """A generation the client waited for ended with `error` or `cancelled`."""

    def __init__(self, error_type: str, message: str, *, gen_id: str) -> None:
        super().__init__(message, headers={"X-Generation-Id": gen_id})
        self.status_code = _FAILURE_STATUS.get(error_type, 502)
        self.error_type = error_type
        if error_type == "cancelled":
            # Both SDKs retry a 409 unless told not to; a retry would run it again.
            self.headers["x-should-retry"] = "false"


def openai_body(failure: Failure) -> dict[str, Any]:
    body = openai_format.error_body(failure.error_type, failure.message, code=None)
    body["error"]["param"] = failure.param
    if failure.status == 401:
        body["error"]["code"] = "invalid_api_key"
    return body


def anthropic_body(failure: Failure) -> dict[str, Any]:
    door_type = _ANTHROPIC_TYPES.get(failure.status, "api_error")
    if failure.status >= 500 and failure.error_type == "overloaded_error":
        door_type = "overloaded_error"
    return anthropic_format.error_body(door_type, failure.message)


def door_route_class(shape: ErrorShape) -> type[APIRoute]:
    """A route whose errors, from the body checks, dependencies and handler alike, are
    written in `shape`. Both APIs report invalid fields as 400, so a 422 is a 400 here."""

    class DoorRoute(JsonBodyRoute):
        error_shape = staticmethod(shape)

        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handle = super().get_route_handler()

            async def handle_in_door_shape(request: Request) -> Response:
                try:
                    return await handle(request)
                except Exception as exc:
                    failure = failure_of(exc)
                    if failure.status == 422:
                        failure = replace(failure, status=400)
                    return failure_response(failure, shape)

            return handle_in_door_shape

    return DoorRoute


OpenAIRoute = door_route_class(openai_body)
AnthropicRoute = door_route_class(anthropic_body)
