"""The SSE stream of a generation, resumable from any event on any replica."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response

from api import openapi_docs
from api.deps import Authenticated, StateDep
from api.doors.stream import joined_door_stream, joined_responses_stream
from api.errors import ErrorAnswer, documented_errors
from api.formats import make_format
from api.formats.native import NativeFormat
from api.routes.generations import load_status
from api.streaming.cursor import START, cursor_key, parse_cursor
from api.streaming.direct import DirectSink
from api.streaming.sse import event_stream, refuse_stream
from services.errors import InvalidRequest
from services.generation import GenerationStatus
from services.store import is_finished

router = APIRouter(prefix="/v1/generations", tags=["events"], dependencies=[Authenticated])


@router.get(
    "/{gen_id}/events",
    response_class=Response,
    response_model=None,
    status_code=200,
    responses={
        **openapi_docs.event_stream(
            "Server-Sent Events: `start`, `delta`, …, one terminal event; 204 when the "
            "client already has the terminal event"
        ),
        **openapi_docs.also_as_event_stream(
            documented_errors(ErrorAnswer, 400, 401, 404, 422, 503), 503
        ),
    },
)
async def stream_events(
    gen_id: str,
    state: StateDep,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    last_event_id: Annotated[str | None, Query(max_length=256)] = None,
    format: Annotated[Literal["native", "openai", "anthropic", "responses"], Query()] = "native",
) -> Response:
    """Server-Sent Events from the event after `Last-Event-ID` (header wins over query)."""
    refused = refuse_stream(state)
    if refused is not None:
        return refused
    # An EventSource keeps its URL's ?last_event_id on reconnect but sends the newer
    # position in the header, so the header is the more recent of the two.
    cursor = parse_cursor(
        last_event_id_header if last_event_id_header is not None else last_event_id
    )
    status = await load_status(state, gen_id)
    bounds = await state.store.bounds(gen_id)
    if cursor != START and (
        bounds.last_event_id is None or cursor_key(cursor) > cursor_key(bounds.last_event_id)
    ):
        raise InvalidRequest(
            f"cursor '{cursor}' is not an event of generation '{gen_id}' "
            "(it is after the latest event)"
        )
    if cursor != START and cursor == bounds.last_event_id and await _finished(state, status):
        # The client has the terminal event: 204 is the SSE spec's "stop reconnecting".
        return Response(status_code=204, headers={"X-Generation-Id": gen_id})
    if format == "responses":
        return await joined_responses_stream(state, status, cursor=cursor)
    if format != "native":
        return await joined_door_stream(state, status, format, cursor)
    fmt = make_format(format, status)
    preamble: list[bytes] = []
    trimmed = bounds.first_event_id is not None and (
        bounds.first_retained_id is None or bounds.first_retained_id != bounds.first_event_id
    )
    if trimmed and (
        bounds.first_retained_id is None
        or cursor_key(cursor) < cursor_key(bounds.first_retained_id)
    ):
        snapshot = await load_status(state, gen_id)
        preamble.append(fmt.resync(snapshot))
        cursor = snapshot.last_event_id or cursor
        if is_finished(snapshot.status) and snapshot.last_event_id:
            # Replay the terminal event after the snapshot, so the stream still ends.
            cursor = _just_before(snapshot.last_event_id)
    # Native viewers share one encoding of each event, so the hub may write their
    # live events itself (api/streaming/direct.py); other formats keep state per viewer.
    sink = DirectSink() if type(fmt) is NativeFormat else None
    feed = state.hub.follow(gen_id, cursor, idle_s=state.settings.heartbeat_s, sink=sink)
    return event_stream(
        state, feed, fmt, preamble=preamble, headers={"X-Generation-Id": gen_id}, sink=sink
    )


async def _finished(state: StateDep, status: GenerationStatus) -> bool:
    """Whether the generation has ended (read again if it was running when first read)."""
    if is_finished(status.status):
        return True
    again = await state.store.status(status.id)
    return again is not None and is_finished(again.status)


def _just_before(entry_id: str) -> str:
    """The greatest stream id below `entry_id`, so that reading after it yields that entry."""
    ms, seq = cursor_key(entry_id)
    return f"{ms}-{seq - 1}" if seq > 0 else f"{ms - 1}-{2**64 - 1}"
