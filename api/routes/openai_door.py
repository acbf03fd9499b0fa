"""The OpenAI Chat Completions front door: `POST /v1/chat/completions`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api import openapi_docs
from api.deps import Authenticated, StateDep
from api.doors.answer import DoorRequest, answer_door_request
from api.doors.errors import DOOR_ERROR_STATUSES, OpenAIErrorAnswer, OpenAIRoute
from api.doors.openai_requests import (
    ChatCompletionRequest,
    parse_chat_request,
    to_generation_request,
)
from api.doors.translation import json_object
from api.errors import documented_errors
from api.formats.openai import OpenAIChunkFormat, chat_completion
from api.json_body import checked_json_body

router = APIRouter(
    prefix="/v1", tags=["openai"], dependencies=[Authenticated], route_class=OpenAIRoute
)


@router.post(
    "/chat/completions",
    response_model=None,
    response_class=Response,
    openapi_extra=openapi_docs.json_request_body(ChatCompletionRequest),
    responses={
        **openapi_docs.event_stream(
            "One `chat.completion`, or with `stream: true` `chat.completion.chunk` events "
            "ending with `data: [DONE]`",
            or_json=True,
        ),
        **openapi_docs.also_as_event_stream(
            documented_errors(OpenAIErrorAnswer, *DOOR_ERROR_STATUSES), 503
        ),
    },
)
async def create_chat_completion(request: Request, state: StateDep) -> Response:
    """OpenAI Chat Completions for any model: chunks over SSE, or one `chat.completion`."""
    chat = parse_chat_request(json_object(checked_json_body(request)))
    generation = to_generation_request(chat)
    model = generation.model
    return await answer_door_request(
        state,
        DoorRequest(
            generation=generation,
            stream=bool(chat.stream),
            stream_format=lambda gen_id, created_at: OpenAIChunkFormat(
                gen_id, model, created_at, include_usage=chat.include_usage
            ),
            final_answer=lambda transcript, gen_id, created_at: chat_completion(
                transcript, gen_id, model, created_at
            ),
            stream_options={"include_usage": "1"} if chat.include_usage else {},
        ),
    )
