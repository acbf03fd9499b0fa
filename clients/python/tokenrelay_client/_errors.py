"""Errors, split as the anthropic SDK splits them: status errors and connection errors.

`APIStatusError` subclasses mirror the server's answer types (400
invalid_request_error, 401 authentication_error, 403 permission_error, 404
not_found_error, 409 conflict_error, 413 request_too_large, 422, 429
rate_limit_error, 5xx). A status error is raised after the server answered, so
it is never retried blindly: 401, 403 and 404 will not change by asking again,
and a 429 is waited out only when the client was asked to
(`wait_on_rate_limit=True`). `APIConnectionError` is raised only after the
client has given up reconnecting.
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTooLargeError",
    "ServiceUnavailableError",
    "TokenRelayError",
    "UnprocessableEntityError",
    "error_for_response",
]


class TokenRelayError(Exception):
    """Base of every error this client raises."""


class APIConnectionError(TokenRelayError):
    """The server could not be reached (or kept dropping) after every retry."""

    def __init__(self, message: str, *, attempts: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.attempts = attempts


class APITimeoutError(APIConnectionError):
    """The server did not answer in time, after every retry."""


class APIStatusError(TokenRelayError):
    """The server answered with an error status: `{"error": {"type", "message"}}`."""

    status_code: int = 0

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        error_type: str,
        body: Any = None,
        headers: httpx.Headers | None = None,
    ) -> None:
        super().__init__(f"{status_code} {error_type}: {message}")
        self.message = message
        self.status_code = status_code
        self.type = error_type
        self.body = body
        self.headers = headers if headers is not None else httpx.Headers()

    @property
    def retry_after_s(self) -> float | None:
        """The server's `Retry-After`, in seconds, when it sent one."""
        return parse_retry_after(self.headers.get("retry-after"))


class BadRequestError(APIStatusError):
    """400: not JSON, an unknown provider, a malformed cursor."""


class AuthenticationError(APIStatusError):
    """401: missing, wrong, expired or tampered key or viewer token."""


class PermissionDeniedError(APIStatusError):
    """403: the key or viewer token may not do this."""


class NotFoundError(APIStatusError):
    """404: no such generation (or another tenant's, or expired)."""


class ConflictError(APIStatusError):
    """409: e.g. cancelling a generation that already finished."""


class RequestTooLargeError(APIStatusError):
    """413: the body is over the server's limit."""


class UnprocessableEntityError(APIStatusError):
    """422: invalid fields, each named in the message."""


class RateLimitError(APIStatusError):
    """429: over a limit; `retry_after_s` says when to ask again."""


class InternalServerError(APIStatusError):
    """5xx, raised once retries are exhausted."""


class ServiceUnavailableError(InternalServerError):
    """503: Redis unreachable, shutting down, or too many open streams."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: RequestTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (a number of seconds; dates are not sent here)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def error_for_response(response: httpx.Response) -> APIStatusError:
    """The typed error for an error answer whose body has been read."""
    body: Any = None
    error_type = "api_error"
    message = f"HTTP {response.status_code}"
    try:
        body = response.json()
    except ValueError:
        body = response.text or None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error_type = str(body["error"].get("type") or error_type)
        message = str(body["error"].get("message") or message)
    cls = _BY_STATUS.get(response.status_code)
    if cls is None:
        cls = InternalServerError if response.status_code >= 500 else APIStatusError
    return cls(
        message,
        status_code=response.status_code,
        error_type=error_type,
        body=body,
        headers=response.headers,
    )
