"""The Anthropic Messages front door: `POST /v1/messages` and `POST /v1/messages/count_tokens`.

Token counts are the provider's: forwarded upstream for `anthropic/` models (the
body as sent, with the provider's model name), and exact for `demo/` models (the
count the demo provider reports as input usage). Other providers have no
counting endpoint this door could forward to: a 400 that says so.
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from api import openapi_docs
from api.deps import Authenticated, StateDep
from api.doors.answer import DoorRequest, answer_door_request
from api.doors.anthropic_requests import (
    MessagesRequest,
    parse_messages_request,
    to_generation_request,
)
from api.doors.errors import (
    DOOR_ERROR_STATUSES,
    AnthropicErrorAnswer,
    AnthropicRoute,
)
from api.doors.translation import InvalidDoorRequest, json_object
from api.errors import documented_errors
from api.formats.anthropic import AnthropicEventFormat, message
from api.json_body import checked_json_body
from api.state import AppState
from services.errors import Unavailable
from services.providers.demo import input_tokens

ANTHROPIC_API = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
COUNT_TIMEOUT_S = 30.0

router = APIRouter(
    prefix="/v1", tags=["anthropic"], dependencies=[Authenticated], route_class=AnthropicRoute
)


@router.post(
    "/messages",
    response_model=None,
    response_class=Response,
    openapi_extra=openapi_docs.json_request_body(MessagesRequest),
    responses={
        **openapi_docs.event_stream(
            "One `message`, or with `stream: true` the Messages streaming events", or_json=True
        ),
        **openapi_docs.also_as_event_stream(
            documented_errors(AnthropicErrorAnswer, *DOOR_ERROR_STATUSES), 503
        ),
    },
)
async def create_message(request: Request, state: StateDep) -> Response:
    """Anthropic Messages, for any model: the streaming event sequence or one `message`."""
    messages_request = parse_messages_request(json_object(checked_json_body(request)))
    generation = to_generation_request(messages_request)
    model = generation.model
    return await answer_door_request(
        state,
        DoorRequest(
            generation=generation,
            stream=bool(messages_request.stream),
            stream_format=lambda gen_id, created_at: AnthropicEventFormat(
                gen_id, model, created_at
            ),
            final_answer=lambda transcript, gen_id, _: message(transcript, gen_id, model),
        ),
    )


@router.post(
    "/messages/count_tokens",
    response_model=None,
    openapi_extra=openapi_docs.json_request_body(MessagesRequest),
    responses=documented_errors(AnthropicErrorAnswer, *DOOR_ERROR_STATUSES),
)
async def count_message_tokens(request: Request, state: StateDep) -> Response:
    """The input tokens of a Messages request: Anthropic's count, or the demo provider's."""
    body = json_object(checked_json_body(request))
    # Parsed as a Messages request (which needs max_tokens, count_tokens does not).
    parsed = parse_messages_request({"max_tokens": 1, **body, "stream": False})
    generation = to_generation_request(parsed)
    provider, model = generation.provider, generation.provider_model
    if provider == "demo":
        return JSONResponse({"input_tokens": input_tokens(generation)})
    if provider == "anthropic" and state.settings.anthropic_api_key is not None:
        return await _count_upstream(state, {**body, "model": model})
    raise InvalidDoorRequest(
        f"count_tokens is served for anthropic/ (when configured) and demo/ models, not for "
        f"'{generation.model}': {provider} has no token counting endpoint to forward to",
        param="model",
    )


async def _count_upstream(state: AppState, body: dict[str, Any]) -> Response:
    settings = state.settings
    key = settings.anthropic_api_key.get_secret_value() if settings.anthropic_api_key else ""
    base = (settings.anthropic_base_url or ANTHROPIC_API).rstrip("/")
    headers = {"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION}
    try:
        async with httpx.AsyncClient(timeout=COUNT_TIMEOUT_S) as http:
            upstream = await http.post(
                f"{base}/v1/messages/count_tokens", json=body, headers=headers
            )
    except httpx.HTTPError:
        raise Unavailable("the Anthropic API did not answer the token count; retry") from None
    try:
        answer = upstream.json()
    except ValueError:
        raise Unavailable(
            f"the Anthropic API answered the token count with status {upstream.status_code} "
            "and no JSON; retry"
        ) from None
    # Anthropic's own answer, count or error, in its own shape.
    return JSONResponse(answer, status_code=upstream.status_code)
