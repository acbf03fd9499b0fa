"""What both request translations share: model names, and validation errors as 400s.

Both APIs answer a bad parameter with a 400 `invalid_request_error` naming it, so a
pydantic error here becomes `InvalidDoorRequest` with the first offending field
as `param`, whichever of our models (the door's or `GenerationRequest`) found it.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from services.errors import InvalidRequest


class InvalidDoorRequest(InvalidRequest):
    """A 400 naming the request parameter at fault, as both APIs do."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def qualified_model(model: str, default_provider: str) -> str:
    """`PROVIDER/MODEL`; a bare name (what an existing app sends) goes to the door's provider.

    `gpt-4o-mini` through the OpenAI door is `openai/gpt-4o-mini`, `claude-sonnet-4-5`
    through the Anthropic door `anthropic/claude-sonnet-4-5`; a name with a `/`
    keeps its prefix, and an unknown prefix is refused when the request is submitted.
    """
    return model if "/" in model else f"{default_provider}/{model}"


def _location(error: Any) -> str:
    parts = [str(part) for part in error.get("loc", ())]
    return ".".join(parts)


def invalid_from_validation(exc: ValidationError) -> InvalidDoorRequest:
    """A precise 400 from pydantic's errors: each field and what is wrong with it."""
    errors = exc.errors()
    messages = []
    for error in errors[:5]:
        where = _location(error) or "body"
        if error.get("type") == "extra_forbidden":
            messages.append(f"Unrecognized request argument supplied: {where}")
        elif error.get("type") == "missing":
            messages.append(f"{where}: Field required")
        else:
            messages.append(f"{where}: {error.get('msg', 'invalid value')}")
    first = _location(errors[0]) if errors else None
    return InvalidDoorRequest("; ".join(messages), param=first or None)


def unsupported(what: str, param: str) -> InvalidDoorRequest:
    return InvalidDoorRequest(f"{what} is not supported by tokenrelay", param=param)


def json_object(body: Any) -> dict[str, Any]:
    """The parsed body (see api/json_body.py) as a JSON object, or a 400."""
    if not isinstance(body, dict):
        raise InvalidDoorRequest("request body must be a JSON object")
    return body
