"""The Anthropic Messages front door: `POST /v1/messages`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

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
from api.doors.translation import json_object
from api.errors import documented_errors
from api.formats.anthropic import AnthropicEventFormat, message
from api.json_body import checked_json_body

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
