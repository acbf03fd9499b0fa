"""A generation's events written out in a front door's format, live or resumed.

Used by `POST /v1/chat/completions` and `POST /v1/messages` (from the first event)
and by `GET /v1/generations/{id}/events?format=openai|anthropic` (from any cursor).
Before following the live feed from the cursor, the writer folds the events the
client already has (see api/formats/door.py for why). Two adjustments make the
cursor honest:

- a client with no output of its attempt (no cursor, or a cursor at a reset)
  never needs a void attempt: if the generation has been reset since, it starts
  after the last `reset`, as a fresh answer;
- a client that has the terminal event is answered 204 by the events route
  (api/routes/events.py), which tells an EventSource to stop reconnecting.

The Responses format resumes by sequence number instead (`responses_stream`):
its writer folds every stored event from the first, so that the numbering is
the same everywhere, and sends what the client lacks (api/formats/responses.py).

The non-streaming answers wait here for the terminal event, through the same
feed, and fold the transcript they are built from.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import Protocol

from starlette.responses import Response

from api.formats import make_format
from api.formats.door import DoorFormat
from api.formats.openai import OpenAIChunkFormat
from api.formats.responses import ResponseOptions, ResponsesFormat
from api.formats.transcript import Transcript
from api.state import AppState
from api.streaming.cursor import START, cursor_key
from api.streaming.hub import empty_feed
from api.streaming.sse import EventStreamResponse, event_stream
from services.errors import InvalidRequest, Unavailable
from services.events import StoredEvent
from services.generation import GenerationStatus

_PAGE = 500


async def _events_through(state: AppState, gen_id: str, last: str) -> list[StoredEvent]:
    """Every retained event up to and including `last`, oldest first."""
    events: list[StoredEvent] = []
    cursor, limit = START, cursor_key(last)
    while True:
        page = await state.store.read_after(gen_id, cursor, _PAGE)
        for event in page:
            if cursor_key(event.id) > limit:
                return events
            events.append(event)
        if len(page) < _PAGE:
            return events
        cursor = page[-1].id


def _has_current_output(events: list[StoredEvent]) -> bool:
    """Whether `events` include output of the attempt they end in (a delta after the last reset)."""
    for event in reversed(events):
        if event.type == "delta":
            return True
        if event.type == "reset":
            return False
    return False


async def _history(
    state: AppState, gen_id: str, attempt: int, cursor: str
) -> tuple[list[StoredEvent], str] | None:
    """The events the client has, and the cursor to follow from; None if they are gone."""
    bounds = await state.store.bounds(gen_id)
    if bounds.first_event_id is not None and bounds.first_retained_id != bounds.first_event_id:
        return None
    history = [] if cursor == START else await _events_through(state, gen_id, cursor)
    if attempt > 1 and bounds.last_event_id is not None and not _has_current_output(history):
        # The client has no output of its attempt: any later reset is invisible to it,
        # so it starts after the latest one instead of reading void attempts.
        events = await _events_through(state, gen_id, bounds.last_event_id)
        resets = [index for index, event in enumerate(events) if event.type == "reset"]
        if resets and len(events[: resets[-1] + 1]) > len(history):
            history = events[: resets[-1] + 1]
    return history, (history[-1].id if history else START)


class _Writer(Protocol):
    """What the feed and body wrappers need of a door's writer."""

    @property
    def closed(self) -> bool: ...

    @property
    def ended(self) -> bool: ...

    def transport(self, chunk: bytes) -> bytes: ...

    def interrupted(self) -> bytes: ...


async def _until_closed(
    feed: AsyncGenerator[StoredEvent | None, None], fmt: _Writer
) -> AsyncGenerator[StoredEvent | None, None]:
    """The feed, ended as soon as the writer has closed its connection (after a reset)."""
    try:
        async for item in feed:
            yield item
            if fmt.closed:
                return
    finally:
        close = getattr(feed, "aclose", None)
        if close is not None:
            await close()


async def _with_interruption(
    body: AsyncGenerator[bytes, None], fmt: _Writer
) -> AsyncGenerator[bytes, None]:
    """The SSE body, plus the format's error when it ends before the generation did.

    SDKs take the end of the response for the end of the answer, so a stream closed
    by a shutdown must say that it was cut, and where to resume.
    """
    async with contextlib.aclosing(body) as chunks:
        async for chunk in chunks:
            yield fmt.transport(chunk)
    if not fmt.ended and not fmt.closed:
        yield fmt.interrupted()


async def door_stream(
    state: AppState,
    status: GenerationStatus,
    fmt: DoorFormat,
    cursor: str = START,
    *,
    stream_slot: tuple[str, str] | None = None,
) -> EventStreamResponse:
    """The SSE response for one client of a generation, in `fmt`'s format, after `cursor`.

    `status` is the generation's status when the client connected (its attempt
    count tells whether a cursor-less client must skip void attempts);
    `stream_slot` the key's stream slot, when it was taken before queuing.
    """
    gen_id = status.id
    found = await _history(state, gen_id, status.attempt, cursor)
    preamble: list[bytes] = []
    feed: AsyncGenerator[StoredEvent | None, None]
    if found is None:
        preamble.append(fmt.resync(await state.store.status(gen_id) or status))
        feed = empty_feed()
    else:
        history, cursor = found
        for event in history:
            fmt.absorb(event)
        if cursor != START:
            preamble.append(fmt.opening())
        live = state.hub.follow(gen_id, cursor, idle_s=state.settings.heartbeat_s)
        feed = _until_closed(live, fmt)
    return event_stream(
        state,
        feed,
        fmt,
        preamble=preamble,
        headers={"X-Generation-Id": gen_id},
        wrap_body=lambda body: _with_interruption(body, fmt),
        stream_slot=stream_slot,
    )


async def wait_for_transcript(state: AppState, gen_id: str) -> Transcript:
    """Fold the generation's events until its terminal one (for non-streaming answers).

    The hub ends every feed when the process starts draining, so a feed that ends
    without a terminal event means either that, or a feed cut short: both a 503.
    """
    transcript = Transcript()
    feed = state.hub.follow(gen_id, START, idle_s=state.settings.heartbeat_s)
    async with contextlib.aclosing(feed):
        async for item in feed:
            if item is None:
                continue
            transcript.apply(item.decoded())
            if item.is_terminal:
                return transcript
    if state.draining.is_set():
        shutting_down = Unavailable(
            f"the server is shutting down; generation {gen_id} goes on, read its "
            f"result with GET /v1/generations/{gen_id}",
            retry_after_s=1,
        )
        shutting_down.headers["X-Generation-Id"] = gen_id
        raise shutting_down
    raise Unavailable(f"the event feed of {gen_id} ended early; retry")


async def joined_door_stream(
    state: AppState, status: GenerationStatus, format_name: str, cursor: str
) -> EventStreamResponse:
    """`GET .../events?format=openai|anthropic`: the stream its creator got, from `cursor`."""
    fmt = make_format(format_name, status)
    assert isinstance(fmt, DoorFormat), f"format '{format_name}' is not a front-door format"
    if isinstance(fmt, OpenAIChunkFormat):
        fmt.include_usage = await state.store.stream_option(status.id, "include_usage") == "1"
    return await door_stream(state, status, fmt, cursor)


async def responses_stream(
    state: AppState,
    status: GenerationStatus,
    fmt: ResponsesFormat,
    *,
    cursor: str = START,
    stream_slot: tuple[str, str] | None = None,
) -> Response:
    """The Responses event stream for one client, after `fmt.after` or after `cursor`.

    `fmt.after` is the `starting_after` of `GET /v1/responses/{id}?stream=true`;
    `cursor` the `Last-Event-ID` of `?format=responses`, turned into the sequence
    number of the last event it covers. A client that has the last event of a
    finished response gets 204.
    """
    gen_id = status.id
    bounds = await state.store.bounds(gen_id)
    headers = {"X-Generation-Id": gen_id}
    preamble: list[bytes] = []
    feed: AsyncGenerator[StoredEvent | None, None]
    if bounds.first_event_id is not None and bounds.first_retained_id != bounds.first_event_id:
        preamble.append(fmt.resync(await state.store.status(gen_id) or status))
        feed = empty_feed()
    else:
        history = (
            await _events_through(state, gen_id, bounds.last_event_id)
            if bounds.last_event_id is not None
            else []
        )
        if cursor != START:
            fmt.after = fmt.sent = _sequence_through(fmt, history, cursor)
        for event in history:
            preamble.append(fmt.replay(event))
        preamble.append(fmt.caught_up())
        if fmt.ended and fmt.after >= fmt.last_sequence:
            if fmt.after > fmt.last_sequence:
                raise InvalidRequest(
                    f"starting_after {fmt.after} is after the last event of this response "
                    f"({fmt.last_sequence})"
                )
            return Response(status_code=204, headers=headers)
        if fmt.ended or fmt.closed:
            feed = empty_feed()
        else:
            start = history[-1].id if history else START
            live = state.hub.follow(gen_id, start, idle_s=state.settings.heartbeat_s)
            feed = _until_closed(live, fmt)
    return event_stream(
        state,
        feed,
        fmt,
        preamble=preamble,
        headers=headers,
        wrap_body=lambda body: _with_interruption(body, fmt),
        stream_slot=stream_slot,
    )


def _sequence_through(fmt: ResponsesFormat, history: list[StoredEvent], cursor: str) -> int:
    """The last sequence number the events up to `cursor` render."""
    scratch = ResponsesFormat(fmt.gen_id, "", 0.0, ResponseOptions())
    limit = cursor_key(cursor)
    for event in history:
        if cursor_key(event.id) > limit:
            break
        scratch.replay(event)
    return scratch.last_sequence


async def transcript_so_far(state: AppState, gen_id: str) -> Transcript:
    """The generation's stored events folded (for `GET /v1/responses/{id}`)."""
    transcript = Transcript()
    bounds = await state.store.bounds(gen_id)
    if bounds.last_event_id is not None:
        for event in await _events_through(state, gen_id, bounds.last_event_id):
            transcript.apply(event.decoded())
    return transcript


async def joined_responses_stream(
    state: AppState, status: GenerationStatus, *, after: int = -1, cursor: str = START
) -> Response:
    """A response's stream in the Responses format, with the options it was created with."""
    options = ResponseOptions.from_stored(await state.store.stream_option(status.id, "responses"))
    fmt = ResponsesFormat(status.id, status.model, status.created_at, options, after=after)
    return await responses_stream(state, status, fmt, cursor=cursor)
