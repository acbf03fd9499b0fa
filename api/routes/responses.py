"""The OpenAI Responses front door: `POST /v1/responses`, and a response by its id.

A response is a generation (`resp_` + the generation's hex), so every replica
serves `GET /v1/responses/{id}`, its resumed stream and its cancel from what
the generation stores: its events, and the request options the `response`
object echoes (stored with it as the stream option `responses`). Background
mode works for every provider because every generation already runs in a
worker whether or not anyone watches: `background: true` only answers at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from api import openapi_docs
from api.deps import Authenticated, StateDep
from api.doors.answer import DoorRequest, answer_door_request
from api.doors.errors import DOOR_ERROR_STATUSES, OpenAIErrorAnswer, OpenAIRoute
from api.doors.responses_requests import (
    ResponsesRequest,
    parse_responses_request,
    response_options,
    to_generation_request,
)
from api.doors.stream import joined_responses_stream, transcript_so_far, wait_for_transcript
from api.doors.translation import InvalidDoorRequest, json_object
from api.errors import documented_errors
from api.formats.responses import (
    ResponseOptions,
    ResponseRenderer,
    ResponsesFormat,
    ending_status,
    generation_id,
)
from api.formats.transcript import Transcript
from api.json_body import checked_json_body
from api.routes.generations import load_status
from api.state import AppState
from api.streaming.sse import refuse_stream
from services import keys
from services.errors import Conflict, NotFound
from services.generation import GenerationStatus, Message, MessageToolCall

OPTIONS = "responses"
"""The stream option that holds a response's `ResponseOptions`."""

CANCEL_WAIT_S = 10.0
"""How long a cancel waits for the worker to stop before answering the state it sees."""

MAX_CHAIN = 1000
"""The longest `previous_response_id` chain rebuilt (a guard against a cycle)."""

router = APIRouter(
    prefix="/v1", tags=["responses"], dependencies=[Authenticated], route_class=OpenAIRoute
)

_ERRORS = openapi_docs.also_as_event_stream(
    documented_errors(OpenAIErrorAnswer, *DOOR_ERROR_STATUSES, 404, 422), 503
)


async def _load(state: AppState, resp_id: str) -> GenerationStatus:
    gen_id = generation_id(resp_id)
    if gen_id is None or not keys.is_generation_id(gen_id):
        raise NotFound(f"No response found with id '{resp_id[:80]}'.")
    try:
        return await load_status(state, gen_id)
    except NotFound:
        raise NotFound(
            f"No response found with id '{resp_id[:80]}' (unknown, or expired after "
            f"{state.settings.retention_s} s, TOKENRELAY_RETENTION_S)."
        ) from None


async def _options(state: AppState, gen_id: str) -> ResponseOptions:
    return ResponseOptions.from_stored(await state.store.stream_option(gen_id, OPTIONS))


def _renderer(status: GenerationStatus, options: ResponseOptions) -> ResponseRenderer:
    return ResponseRenderer(status.id, status.model, status.created_at, options)


def _answer(status: GenerationStatus, options: ResponseOptions, transcript: Transcript) -> Response:
    body = _renderer(status, options).snapshot(status, transcript)
    return JSONResponse(body, headers={"X-Generation-Id": status.id})


async def _earlier_turns(state: AppState, previous: str | None) -> list[Message]:
    """The conversation up to and including the response `previous`, from what is stored:
    each response of the chain keeps its own input, and its output is its status."""
    turns: list[list[Message]] = []
    seen: set[str] = set()
    while previous is not None:
        if previous in seen or len(seen) >= MAX_CHAIN:
            raise InvalidDoorRequest(
                "previous_response_id: the chain of responses is too long to rebuild",
                param="previous_response_id",
            )
        seen.add(previous)
        try:
            status = await _load(state, previous)
        except NotFound as exc:
            raise InvalidDoorRequest(
                f"previous_response_id: {exc.message} Send the conversation as input instead.",
                param="previous_response_id",
            ) from None
        if status.status != "completed":
            raise InvalidDoorRequest(
                f"previous_response_id: response '{previous}' has status '{status.status}'; "
                "only a completed response can be continued",
                param="previous_response_id",
            )
        stored = await state.store.stream_option(status.id, OPTIONS)
        if stored is None:
            raise InvalidDoorRequest(
                f"previous_response_id: '{previous}' was not created through POST /v1/responses, "
                "so its input is not stored: send the conversation as input instead",
                param="previous_response_id",
            )
        options = ResponseOptions.from_stored(stored)
        calls = [
            MessageToolCall(id=call.id, name=call.name, arguments=call.arguments or "{}")
            for call in status.tool_calls
            if call.id and call.name
        ]
        output = Message(role="assistant", content=status.content, tool_calls=calls or None)
        turns.append([*options.input, output])
        previous = options.previous_response_id
    return [message for turn in reversed(turns) for message in turn]


@router.post(
    "/responses",
    response_model=None,
    response_class=Response,
    openapi_extra=openapi_docs.json_request_body(ResponsesRequest),
    responses={
        **openapi_docs.event_stream(
            "One `response`, or with `stream: true` the Responses streaming events, each with "
            "its `sequence_number`",
            or_json=True,
        ),
        **_ERRORS,
    },
)
async def create_response(request: Request, state: StateDep) -> Response:
    """OpenAI Responses for any model: events over SSE, one `response`, or (background) at once."""
    body = parse_responses_request(json_object(checked_json_body(request)))
    earlier = await _earlier_turns(state, body.previous_response_id)
    generation = to_generation_request(body, earlier)
    options = response_options(body)
    model = generation.model

    def renderer(gen_id: str, created_at: float) -> ResponseRenderer:
        return ResponseRenderer(gen_id, model, created_at, options)

    def final(transcript: Transcript, gen_id: str, created_at: float) -> dict[str, Any]:
        return renderer(gen_id, created_at).response(ending_status(transcript.ending), transcript)

    return await answer_door_request(
        state,
        DoorRequest(
            generation=generation,
            stream=bool(body.stream),
            stream_format=lambda gen_id, created_at: ResponsesFormat(
                gen_id, model, created_at, options
            ),
            final_answer=final,
            stream_options={OPTIONS: options.to_stored()},
            accepted_answer=(
                (lambda gen_id, created_at: renderer(gen_id, created_at).response("queued"))
                if body.background
                else None
            ),
        ),
    )


@router.get(
    "/responses/{response_id}",
    response_model=None,
    response_class=Response,
    responses={
        **openapi_docs.event_stream(
            "The `response` as it stands, or with `stream=true` its events after `starting_after`",
            or_json=True,
        ),
        **_ERRORS,
    },
)
async def get_response(
    response_id: str,
    state: StateDep,
    stream: Annotated[bool, Query()] = False,
    starting_after: Annotated[int | None, Query(ge=-1)] = None,
) -> Response:
    """A response's status and output, or its events after `starting_after` (any replica)."""
    if stream and (refused := refuse_stream(state)) is not None:
        return refused
    status = await _load(state, response_id)
    if stream:
        after = starting_after if starting_after is not None else -1
        return await joined_responses_stream(state, status, after=after)
    options = await _options(state, status.id)
    return _answer(status, options, await transcript_so_far(state, status.id))


@router.post(
    "/responses/{response_id}/cancel",
    response_model=None,
    response_class=Response,
    responses=_ERRORS,
)
async def cancel_response(response_id: str, state: StateDep) -> Response:
    """Cancel a queued or running response (any, not only background ones); answers the response."""
    status = await _load(state, response_id)
    outcome = await state.store.request_cancel(status.id)
    if outcome == "missing":
        raise NotFound(f"No response found with id '{response_id[:80]}'.")
    if outcome == "finished":
        current = await load_status(state, status.id)
        if current.status != "cancelled":
            raise Conflict(
                f"Cannot cancel response '{response_id}': it already finished with status "
                f"'{current.status}'."
            )
    if outcome == "requested":
        # The worker stops at its next read; answer once it has, as OpenAI does.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wait_for_transcript(state, status.id), CANCEL_WAIT_S)
    current = await load_status(state, status.id)
    options = await _options(state, status.id)
    return _answer(current, options, await transcript_so_far(state, status.id))
