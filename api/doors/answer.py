"""What every front door does once a request is translated: queue the generation,
then stream it in the door's format, or wait for it and answer once.

The doors differ only in how a request is read and how the answer is written;
a `DoorRequest` carries those two differences, so the steps between (refusing a
stream before anything is queued, the stream options, the failure statuses of a
generation the client waited for) are written once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import JSONResponse, Response

from api.auth import current_principal
from api.doors.errors import GenerationFailed
from api.doors.stream import door_stream, responses_stream, wait_for_transcript
from api.formats.door import DoorFormat
from api.formats.responses import ResponsesFormat
from api.formats.transcript import Transcript
from api.state import AppState
from api.streaming.sse import refuse_stream
from api.submission import submit_generation
from services.events import CancelledEvent, ErrorEvent
from services.generation import GenerationRequest


@dataclass(frozen=True)
class DoorRequest:
    """A translated door request and how the door writes its answer."""

    generation: GenerationRequest
    stream: bool
    stream_format: Callable[[str, float], DoorFormat | ResponsesFormat]
    """(generation id, created_at) -> the writer of the door's SSE events."""
    final_answer: Callable[[Transcript, str, float], dict[str, Any]]
    """(transcript, generation id, created_at) -> the door's one JSON answer."""
    stream_options: Mapping[str, str] = field(default_factory=dict)
    """Options every later joiner of the stream must see (stored with the generation)."""
    accepted_answer: Callable[[str, float], dict[str, Any]] | None = None
    """(generation id, created_at) -> the answer at once, without waiting (background mode)."""


async def answer_door_request(state: AppState, door: DoorRequest) -> Response:
    if not door.stream:
        gen_id, created_at = await submit_generation(state, door.generation)
        for name, value in door.stream_options.items():
            await state.store.set_stream_option(gen_id, name, value)
        return await _answer_once(state, door, gen_id, created_at)
    if (refused := refuse_stream(state)) is not None:
        return refused  # full or draining: refuse before a generation is queued
    # The key's stream slot too is taken before anything is queued: over its
    # limit, the client gets the 429 in its door's shape and nothing runs.
    slot = await state.streams.reserve(current_principal())
    try:
        gen_id, created_at = await submit_generation(state, door.generation)
        for name, value in door.stream_options.items():
            await state.store.set_stream_option(gen_id, name, value)
        status = await state.store.status(gen_id)
        assert status is not None, "a generation just created has a status"
        fmt = door.stream_format(gen_id, created_at)
        if isinstance(fmt, ResponsesFormat):
            return await responses_stream(state, status, fmt, stream_slot=slot)
        return await door_stream(state, status, fmt, stream_slot=slot)
    except BaseException:
        await state.streams.release(slot)
        raise


async def _answer_once(
    state: AppState, door: DoorRequest, gen_id: str, created_at: float
) -> Response:
    if door.accepted_answer is not None:
        body = door.accepted_answer(gen_id, created_at)
        return JSONResponse(body, headers={"X-Generation-Id": gen_id})
    transcript = await wait_for_transcript(state, gen_id)
    ending = transcript.ending
    if isinstance(ending, ErrorEvent):
        raise GenerationFailed(ending.error_type, ending.message, gen_id=gen_id)
    if isinstance(ending, CancelledEvent):
        raise GenerationFailed("cancelled", "the generation was cancelled", gen_id=gen_id)
    body = door.final_answer(transcript, gen_id, created_at)
    return JSONResponse(body, headers={"X-Generation-Id": gen_id})
