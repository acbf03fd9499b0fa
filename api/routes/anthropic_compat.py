"""The Anthropic Messages front door: `POST /v1/messages`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from api import openapi_docs
from api.deps import Authenticated, StateDep
from api.door_errors import (
    DOOR_ERROR_STATUSES,
    AnthropicErrorAnswer,
    AnthropicRoute,
    GenerationFailed,
)
from api.door_stream import door_stream, wait_for_transcript
from api.errors import documented_errors
from api.formats.anthropic import AnthropicEventFormat, message
from api.json_body import checked_json_body
from api.sse import refuse_stream
from api.submission import submit_generation
from api.translate.anthropic_in import (
    MessagesRequest,
    parse_messages_request,
    to_generation_request,
)
from api.translate.common import json_object
from services.events import CancelledEvent, ErrorEvent

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
    if messages_request.stream and (refused := refuse_stream(state)) is not None:
        return refused  # full or draining: refuse before a generation is queued
    gen_id, created_at = await submit_generation(state, generation)
    if messages_request.stream:
        status = await state.store.status(gen_id)
        assert status is not None, "a generation just created has a status"
        fmt = AnthropicEventFormat(gen_id, generation.model, created_at)
        return await door_stream(state, status, fmt)
    transcript = await wait_for_transcript(state, gen_id)
    ending = transcript.ending
    if isinstance(ending, ErrorEvent):
        raise GenerationFailed(ending.error_type, ending.message, gen_id=gen_id)
    if isinstance(ending, CancelledEvent):
        raise GenerationFailed("cancelled", "the generation was cancelled", gen_id=gen_id)
    body = message(transcript, gen_id, generation.model)
    return JSONResponse(body, headers={"X-Generation-Id": gen_id})
