"""One translation of provider failures into tokenrelay's `ProviderError`.

Both SDKs report the same kinds of failure (an HTTP status with a JSON error
body, a connection that failed or timed out, an error event inside a stream),
so the OpenAI and Anthropic adapters extract those facts and this module alone
decides the public `type`, whether a retry could help, and the message.

Messages are ours, with the provider's own explanation appended for the client
errors a user must fix (a bad parameter, an unknown model). Anything that looks
like an API key is redacted first: OpenAI's 401 message, for one, quotes part of
the key it rejected.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping

from services.errors import ProviderError

_MAX_MESSAGE = 400
_KEY_LIKE = re.compile(r"\b(?:sk|pk|rk|key)[-_][A-Za-z0-9_\-*.]{6,}", re.IGNORECASE)

# HTTP status -> (public type, retryable). Statuses not listed: 5xx is a
# retryable provider_error, any other 4xx a final invalid_request_error.
_BY_STATUS: dict[int, tuple[str, bool]] = {
    400: ("invalid_request_error", False),
    401: ("authentication_error", False),
    403: ("permission_error", False),
    404: ("not_found_error", False),
    408: ("timeout", True),
    409: ("provider_error", True),
    413: ("request_too_large", False),
    422: ("invalid_request_error", False),
    429: ("rate_limit_error", True),
    529: ("overloaded_error", True),
}

# The provider's own error `type` in a body or stream error event -> ours.
_BY_BODY_TYPE: dict[str, tuple[str, bool]] = {
    "overloaded_error": ("overloaded_error", True),
    "rate_limit_error": ("rate_limit_error", True),
    "api_error": ("provider_error", True),
    "server_error": ("provider_error", True),
    "timeout_error": ("timeout", True),
    "invalid_request_error": ("invalid_request_error", False),
    "authentication_error": ("authentication_error", False),
    "permission_error": ("permission_error", False),
    "not_found_error": ("not_found_error", False),
    "request_too_large": ("request_too_large", False),
}

_CLIENT_FAULTS = frozenset({"invalid_request_error", "not_found_error", "request_too_large"})


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """The text without API keys: the configured ones verbatim, and key-like tokens."""
    for secret in secrets:
        if len(secret) >= 8:  # shorter "keys" are placeholders; replacing them mangles text
            text = text.replace(secret, "[redacted]")
    text = _KEY_LIKE.sub("[redacted]", text)
    return text[:_MAX_MESSAGE]


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """The provider's requested wait: `retry-after-ms`, or `retry-after` (seconds or a date)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(raw)
    if parsed is None:
        return None
    return max(0.0, email.utils.mktime_tz(parsed) - time.time())


def status_error(
    status: int | None,
    *,
    body_type: str | None,
    body_code: str | None,
    upstream_message: str | None,
    retry_after: float | None,
    secrets: tuple[str, ...] = (),
) -> ProviderError:
    """A failed HTTP answer, or an error event inside a 200 stream (`status` 200 or None)."""
    mid_stream = status is None or status < 400
    if mid_stream and body_code is not None and body_code.isdigit():
        status = int(body_code)  # vLLM's mid-stream errors carry the HTTP status as `code`
    if status is not None and status >= 400 and status != 529 and body_type != "overloaded_error":
        error_type, retryable = _BY_STATUS.get(
            status,
            ("provider_error", True) if status >= 500 else ("invalid_request_error", False),
        )
    else:
        error_type, retryable = _BY_BODY_TYPE.get(body_type or "", ("provider_error", True))
        if status == 529:
            error_type, retryable = "overloaded_error", True
    if body_code == "insufficient_quota":
        retryable = False  # a 429 that waiting will not fix
    where = "an error event mid-stream" if mid_stream else f"HTTP {status}"
    message = f"the provider answered {where} ({error_type})"
    if upstream_message and (error_type in _CLIENT_FAULTS or mid_stream):
        message += f": {redact(upstream_message, secrets)}"
    return ProviderError(error_type, message, retryable=retryable, retry_after_s=retry_after)


def connection_error(exc: BaseException, *, timed_out: bool) -> ProviderError:
    """A failed connection (`timed_out`: as the SDK reported it) as our error.

    A timeout is one only when a `TimeoutError` lies under `exc`: the SDKs' aiohttp
    transport reports a refused connection as a connect timeout (its exception map
    sends every `ClientConnectionError` there), which would tell a user to wait for
    a provider that is not listening. A timeout with nothing under it is taken at
    its word.
    """
    if timed_out and _cause_of(exc) is not None:
        timed_out = any(isinstance(cause, TimeoutError) for cause in _causes(exc))
    if timed_out:
        return ProviderError(
            "timeout", "the connection to the provider timed out (connect timeout)", retryable=True
        )
    return ProviderError(
        "connection_error", "the connection to the provider failed or was dropped", retryable=True
    )


def _cause_of(exc: BaseException) -> BaseException | None:
    return exc.__cause__ or exc.__context__


def _causes(exc: BaseException) -> list[BaseException]:
    """What `exc` was raised from, and what that was raised from, down to the root."""
    found: list[BaseException] = []
    cause = _cause_of(exc)
    while cause is not None and all(cause is not seen for seen in found):
        found.append(cause)
        cause = _cause_of(cause)
    return found


def malformed_stream(detail: str) -> ProviderError:
    return ProviderError(
        "provider_error", f"the provider sent a malformed stream ({detail})", retryable=True
    )
