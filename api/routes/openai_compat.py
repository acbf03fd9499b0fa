"""The OpenAI Chat Completions front door: `POST /v1/chat/completions`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from api import openapi_docs
from api.deps import Authenticated, StateDep
from api.door_errors import DOOR_ERROR_STATUSES, GenerationFailed, OpenAIErrorAnswer, OpenAIRoute
from api.door_stream import door_stream, wait_for_transcript
from api.errors import documented_errors
from api.formats.openai import OpenAIChunkFormat, chat_completion
from api.json_body import checked_json_body
from api.sse import refuse_stream
from api.submission import submit_generation
from api.translate.common import json_object
from api.translate.openai_in import ChatCompletionRequest, parse_chat_request, to_generation_request
from services.events import CancelledEvent, ErrorEvent

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
    if chat.stream and (refused := refuse_stream(state)) is not None:
        return refused  # full or draining: refuse before a generation is queued
    gen_id, created_at = await submit_generation(state, generation)
    if chat.stream:
        if chat.include_usage:
            await state.store.set_stream_option(gen_id, "include_usage", "1")
        status = await state.store.status(gen_id)
        assert status is not None, "a generation just created has a status"
        fmt = OpenAIChunkFormat(
            gen_id, generation.model, created_at, include_usage=chat.include_usage
        )
        return await door_stream(state, status, fmt)
    transcript = await wait_for_transcript(state, gen_id)
    ending = transcript.ending
    if isinstance(ending, ErrorEvent):
        raise GenerationFailed(ending.error_type, ending.message, gen_id=gen_id)
    if isinstance(ending, CancelledEvent):
        raise GenerationFailed("cancelled", "the generation was cancelled", gen_id=gen_id)
    body = chat_completion(transcript, gen_id, generation.model, created_at)
    return JSONResponse(body, headers={"X-Generation-Id": gen_id})
