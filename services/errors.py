"""The error hierarchy of tokenrelay.

`ApiError` subclasses carry their HTTP status and public `type`; the API turns
them into `{"error": {"type", "message"}}` in one place (api/errors.py).
`ProviderError` is what a provider adapter raises; the worker decides from
`retryable` whether another attempt could help.
"""

from __future__ import annotations


class TokenrelayError(Exception):
    """Base of every error tokenrelay raises on purpose."""


class ApiError(TokenrelayError):
    status_code = 500
    error_type = "api_error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class InvalidRequest(ApiError):
    status_code = 400
    error_type = "invalid_request_error"


class AuthenticationFailed(ApiError):
    status_code = 401
    error_type = "authentication_error"


class Forbidden(ApiError):
    status_code = 403
    error_type = "permission_error"


class NotFound(ApiError):
    status_code = 404
    error_type = "not_found_error"


class Conflict(ApiError):
    status_code = 409
    error_type = "conflict_error"


class UnsupportedMediaType(ApiError):
    status_code = 415
    error_type = "invalid_request_error"


class InvalidFields(ApiError):
    status_code = 422
    error_type = "invalid_request_error"


class RateLimited(ApiError):
    """Over a limit (services/limits.py): nothing was queued; `Retry-After` says when to retry."""

    status_code = 429
    error_type = "rate_limit_error"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


class Unavailable(ApiError):
    status_code = 503
    error_type = "unavailable"

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


class ProviderError(TokenrelayError):
    """A provider call failed. `error_type` is the public `error` event type."""

    def __init__(
        self,
        error_type: str,
        message: str,
        *,
        retryable: bool,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.retryable = retryable
        self.retry_after_s = retry_after_s
