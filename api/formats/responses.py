"""The OpenAI Responses wire format: its streaming events and the `response` object.

A stream is `response.created` and `response.in_progress`, then per output item
`response.output_item.added`; for a message `response.content_part.added`, its
`response.output_text.delta`s, `response.output_text.done` and
`response.content_part.done`; for a function call its
`response.function_call_arguments.delta`s and `.done`; then
`response.output_item.done`; and at the end `response.completed` (or
`response.incomplete` when the answer hit `max_output_tokens`, or
`response.failed`). A cancelled response ends with `response.failed` whose
`response.status` is `cancelled` (the Responses API has no streaming event of
its own for it). Items are the blocks of api/formats/transcript.py: output
index = block index, ids derived from the generation, the attempt and the index.

Sequence numbers. Every event carries `sequence_number`, and the numbering is a
pure function of the generation's stored events: each stored event renders the
same events on every replica and every connection, and the count of events
rendered before it is its first number. So `starting_after=N` resumes exactly
on any replica without storing anything per client: the writer folds the stored
events from the first, counting, and sends what comes after N.

Resets. A `reset` voids an attempt's output. A client that has output of the
void attempt gets an `error` event (code `stream_reset`, with the attempt and
the reason) and the connection ends; resuming after that event's sequence
number reads the new attempt. A client that has none of it (it starts before
the attempt's first output event, e.g. from the beginning) never sees the void
attempt nor its reset: their sequence numbers are skipped. The void attempt's
numbers stay allotted, so numbering never depends on the client.

Connection notices (a shutdown's `unavailable`, a lost cursor's `resync`) are
`error` events outside the numbering: they repeat the last number sent.

Each SSE event also carries an `id:`, the stored event it renders (as in
api/formats/door.py), so `GET /v1/generations/{id}/events?format=responses` and
`Last-Event-ID` join and resume the same stream.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from api.formats.base import sse_frame
from api.formats.door import (
    compact_json,
    decoded,
    door_id,
    fallback_tool_call_id,
    reset_cause,
)
from api.formats.openai import openai_transport
from api.formats.transcript import (
    Appended,
    Block,
    Closed,
    Ended,
    Opened,
    Started,
    Step,
    Transcript,
    Voided,
)
from services.events import CancelledEvent, DoneEvent, ErrorEvent, StoredEvent, Usage
from services.generation import GenerationStatus, Message

RESPONSE_PREFIX = "resp_"

# OpenAI's ResponseError codes for ours; the rest are `server_error`.
_ERROR_CODES = {
    "rate_limit_error": "rate_limit_exceeded",
    "invalid_request_error": "invalid_prompt",
}
_INCOMPLETE_REASONS = {
    "length": "max_output_tokens",
    "max_tokens": "max_output_tokens",
    "content_filter": "content_filter",
    "refusal": "content_filter",
}


def response_id(gen_id: str) -> str:
    """`resp_` and the generation's hex: every replica maps it back without a lookup."""
    return door_id(RESPONSE_PREFIX, gen_id)


def generation_id(resp_id: str) -> str | None:
    """The generation a response id names, or None for anything else."""
    if not resp_id.startswith(RESPONSE_PREFIX):
        return None
    return "gen_" + resp_id.removeprefix(RESPONSE_PREFIX)


class ResponseOptions(BaseModel):
    """What a response echoes of its request in every `response` object.

    Stored with the generation (a stream option), so any replica renders the same
    object for `GET /v1/responses/{id}`, a resumed stream and `?format=responses`.
    """

    instructions: str | None = None
    tools: list[dict[str, Any]] = Field(default_factory=list)
    tool_choice: str | dict[str, Any] = "auto"
    metadata: dict[str, str] = Field(default_factory=dict)
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    parallel_tool_calls: bool = True
    previous_response_id: str | None = None
    background: bool = False
    store: bool = True
    user: str | None = None
    input: list[Message] = Field(default_factory=list)
    """This request's own input (not the instructions, not the earlier turns):
    `previous_response_id` rebuilds a conversation from the chain of these."""

    def to_stored(self) -> str:
        return self.model_dump_json(exclude_defaults=True)

    @classmethod
    def from_stored(cls, stored: str | None) -> ResponseOptions:
        """The stored options; defaults for a generation made elsewhere (native, other doors)."""
        if not stored:
            return cls()
        try:
            return cls.model_validate_json(stored)
        except ValidationError:
            return cls()


def usage_body(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def _item_id(gen_id: str, kind: str, attempt: int, index: int) -> str:
    return f"{kind}_{gen_id.removeprefix('gen_')}_{attempt}_{index}"


def ending_status(ending: DoneEvent | ErrorEvent | CancelledEvent | None) -> str:
    """A response's `status` once its generation ended (`in_progress` before)."""
    if ending is None:
        return "in_progress"
    if isinstance(ending, DoneEvent):
        return "incomplete" if ending.finish_reason in _INCOMPLETE_REASONS else "completed"
    if isinstance(ending, CancelledEvent):
        return "cancelled"
    return "failed"


@dataclass
class ResponseRenderer:
    """Builds the items and `response` objects of one generation."""

    gen_id: str
    model: str
    created_at: float
    options: ResponseOptions

    def call_id(self, transcript: Transcript, index: int) -> str:
        block = transcript.blocks[index]
        ordinal = sum(1 for earlier in transcript.blocks[:index] if earlier.kind == "tool_use")
        return block.call_id or fallback_tool_call_id("call_", self.gen_id, ordinal)

    def item_id(self, transcript: Transcript, index: int) -> str:
        kind = "msg" if transcript.blocks[index].kind == "text" else "fc"
        return _item_id(self.gen_id, kind, transcript.attempt, index)

    @staticmethod
    def text_part(text: str) -> dict[str, Any]:
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}

    def item(
        self, transcript: Transcript, index: int, status: str, *, empty: bool = False
    ) -> dict[str, Any]:
        block: Block = transcript.blocks[index]
        item_id = self.item_id(transcript, index)
        if block.kind == "text":
            content = [] if empty else [self.text_part(block.content)]
            return {
                "id": item_id,
                "type": "message",
                "status": status,
                "content": content,
                "role": "assistant",
            }
        return {
            "id": item_id,
            "type": "function_call",
            "status": status,
            "arguments": "" if empty else block.content,
            "call_id": self.call_id(transcript, index),
            "name": block.name or "",
        }

    def output(self, transcript: Transcript) -> list[dict[str, Any]]:
        ending = transcript.ending
        finished = "completed" if ending_status(ending) == "completed" else "incomplete"
        return [
            self.item(
                transcript,
                index,
                "in_progress" if ending is None and index == transcript.open_block else finished,
            )
            for index in range(len(transcript.blocks))
        ]

    def response(self, status: str, transcript: Transcript | None = None) -> dict[str, Any]:
        """The `response` object in `status`; with the transcript's output and ending if given."""
        options = self.options
        ending = transcript.ending if transcript is not None else None
        error = incomplete = None
        usage: Usage | None = None
        if isinstance(ending, ErrorEvent):
            error = {
                "code": _ERROR_CODES.get(ending.error_type, "server_error"),
                "message": f"{ending.message} ({ending.error_type})",
            }
        elif isinstance(ending, CancelledEvent):
            error = None
        elif isinstance(ending, DoneEvent):
            usage = ending.usage or Usage()
            reason = _INCOMPLETE_REASONS.get(ending.finish_reason)
            incomplete = {"reason": reason} if reason else None
        return {
            "id": response_id(self.gen_id),
            "object": "response",
            "created_at": int(self.created_at),
            "status": status,
            "background": options.background,
            "error": error,
            "incomplete_details": incomplete,
            "instructions": options.instructions,
            "max_output_tokens": options.max_output_tokens,
            "max_tool_calls": None,
            "model": self.model,
            "output": self.output(transcript) if transcript is not None else [],
            "parallel_tool_calls": options.parallel_tool_calls,
            "previous_response_id": options.previous_response_id,
            "reasoning": {"effort": None, "summary": None},
            "service_tier": "default",
            "store": options.store,
            "temperature": options.temperature if options.temperature is not None else 1.0,
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": options.tool_choice,
            "tools": options.tools,
            "top_p": options.top_p if options.top_p is not None else 1.0,
            "truncation": "disabled",
            "usage": usage_body(usage),
            "user": options.user,
            "metadata": options.metadata,
        }

    def snapshot(self, status: GenerationStatus, transcript: Transcript) -> dict[str, Any]:
        """`GET /v1/responses/{id}`: the response as it stands."""
        if status.status == "queued":
            state = "queued"
        elif transcript.ending is not None:
            state = ending_status(transcript.ending)
        else:
            state = "in_progress"
        return self.response(state, transcript)


@dataclass(frozen=True, slots=True)
class _Frame:
    sequence: int
    payload: str
    output: bool
    """Part of an attempt's output (items, parts, deltas), as opposed to the lifecycle."""
    sse_id: str | None
    """Its `id:`: the stored event it renders if it is that event's last frame, else
    the event before (as in api/formats/door.py)."""


class ResponsesFormat:
    """The per-connection writer of the Responses event stream.

    `after` is the last sequence number the client has (-1: none). The writer is
    fed the stored events from the first (`replay` for those already stored when
    the client connected, then `encode` for the live ones); see the module
    docstring for the numbering and for resets.
    """

    name = "responses"

    def __init__(
        self,
        gen_id: str,
        model: str,
        created_at: float,
        options: ResponseOptions,
        *,
        after: int = -1,
    ) -> None:
        self.renderer = ResponseRenderer(gen_id, model, created_at, options)
        self.gen_id = gen_id
        self.transcript = Transcript()
        self.after = after
        self.sequence = 0
        """The next sequence number to allot."""
        self.sent = after
        """The last sequence number this client has."""
        self.last_id: str | None = None
        self.closed = False
        self.delivered = False
        """The client has output of the current attempt."""
        self._delta_key: tuple[int, int] | None = None
        self._delta_envelope = ("", "")
        self._attempt_frames: list[_Frame] | None = None
        """While replaying history: the current attempt's frames, held until its fate is known."""

    @property
    def ended(self) -> bool:
        return self.transcript.ending is not None

    # Rendering: the same frames for every client.

    def _frame(self, payload: dict[str, Any], *, output: bool) -> _Frame:
        payload["sequence_number"] = self.sequence
        frame = _Frame(self.sequence, compact_json(payload), output, self.last_id)
        self.sequence += 1
        return frame

    def _render(self, step: Step) -> list[_Frame]:
        transcript, renderer = self.transcript, self.renderer
        if isinstance(step, Started):
            if self.sequence > 0:
                return []
            return [
                self._frame(
                    {"type": "response.created", "response": renderer.response("in_progress")},
                    output=False,
                ),
                self._frame(
                    {"type": "response.in_progress", "response": renderer.response("in_progress")},
                    output=False,
                ),
            ]
        if isinstance(step, Opened):
            index = step.block
            item = renderer.item(transcript, index, "in_progress", empty=True)
            frames = [
                self._frame(
                    {"type": "response.output_item.added", "output_index": index, "item": item},
                    output=True,
                )
            ]
            if item["type"] == "message":
                frames.append(
                    self._frame(
                        {
                            "type": "response.content_part.added",
                            "item_id": item["id"],
                            "output_index": index,
                            "content_index": 0,
                            "part": renderer.text_part(""),
                        },
                        output=True,
                    )
                )
            return frames
        if isinstance(step, Appended):
            return [self._delta(step)]
        if isinstance(step, Closed):
            return self._closed(step.block)
        if isinstance(step, Voided):
            if not step.had_output:
                return []
            return [self._frame(self._reset_error(step), output=False)]
        if isinstance(step, Ended):
            status = ending_status(step.event)
            kind = {
                "completed": "response.completed",
                "incomplete": "response.incomplete",
            }.get(status, "response.failed")
            return [
                self._frame(
                    {"type": kind, "response": renderer.response(status, transcript)},
                    output=False,
                )
            ]
        return []

    def _delta(self, step: Appended) -> _Frame:
        """The hot path (one per delta per viewer): the same bytes `_frame` would write,
        with the envelope of the block rendered once."""
        key = (self.transcript.attempt, step.block)
        if self._delta_key != key:
            index = step.block
            item_id = compact_json(self.renderer.item_id(self.transcript, index))
            if self.transcript.blocks[index].kind == "text":
                head = (
                    f'{{"type":"response.output_text.delta","item_id":{item_id},'
                    f'"output_index":{index},"content_index":0,"delta":'
                )
                tail = ',"logprobs":[],"sequence_number":'
            else:
                head = (
                    f'{{"type":"response.function_call_arguments.delta","item_id":{item_id},'
                    f'"output_index":{index},"delta":'
                )
                tail = ',"sequence_number":'
            self._delta_key, self._delta_envelope = key, (head, tail)
        head, tail = self._delta_envelope
        payload = f"{head}{compact_json(step.content)}{tail}{self.sequence}}}"
        frame = _Frame(self.sequence, payload, True, self.last_id)
        self.sequence += 1
        return frame

    def _closed(self, index: int) -> list[_Frame]:
        transcript, renderer = self.transcript, self.renderer
        ending = transcript.ending
        status = (
            "completed" if ending is None or ending_status(ending) == "completed" else "incomplete"
        )
        block = transcript.blocks[index]
        item = renderer.item(transcript, index, status)
        frames: list[_Frame] = []
        if block.kind == "text":
            common = {"item_id": item["id"], "output_index": index, "content_index": 0}
            frames.append(
                self._frame(
                    {
                        "type": "response.output_text.done",
                        **common,
                        "text": block.content,
                        "logprobs": [],
                    },
                    output=True,
                )
            )
            frames.append(
                self._frame(
                    {
                        "type": "response.content_part.done",
                        **common,
                        "part": renderer.text_part(block.content),
                    },
                    output=True,
                )
            )
        else:
            frames.append(
                self._frame(
                    {
                        "type": "response.function_call_arguments.done",
                        "item_id": item["id"],
                        "output_index": index,
                        "name": item["name"],
                        "arguments": block.content,
                    },
                    output=True,
                )
            )
        frames.append(
            self._frame(
                {"type": "response.output_item.done", "output_index": index, "item": item},
                output=True,
            )
        )
        return frames

    def _reset_error(self, step: Voided) -> dict[str, Any]:
        return {
            "type": "error",
            "code": "stream_reset",
            "message": reset_cause(step.reason, step.attempt)
            + f": discard the partial output received so far and resume with GET "
            f"/v1/responses/{response_id(self.gen_id)}?stream=true&starting_after={self.sequence}",
            "param": None,
            "attempt": step.attempt,
            "reason": step.reason,
        }

    # Delivery: what this client gets of those frames.

    def _steps(self, event: StoredEvent) -> list[tuple[Step, list[_Frame]]]:
        """The steps of `event` and their frames; its last frame carries its id."""
        steps = [
            (step, self._render(step))
            for step in self.transcript.apply(decoded(event.type, event.data))
        ]
        for _, frames in reversed(steps):
            if frames:
                frames[-1] = replace(frames[-1], sse_id=event.id)
                break
        self.last_id = event.id
        return steps

    def _deliver(self, frames: list[_Frame]) -> list[_Frame]:
        fresh = [frame for frame in frames if frame.sequence > self.sent]
        if fresh:
            self.sent = fresh[-1].sequence
        if any(frame.output for frame in frames):
            self.delivered = True
        return fresh

    def replay(self, event: StoredEvent) -> bytes:
        """A stored event from before the client connected: the frames after its cursor.

        A void attempt's frames are held until its reset tells whether the client
        had any of them (see the module docstring).
        """
        out: list[_Frame] = []
        for step, frames in self._steps(event):
            if self.closed:
                break
            if isinstance(step, Started | Voided):
                held, self._attempt_frames = self._attempt_frames or [], []
                client_had = any(f.output and f.sequence <= self.after for f in held)
                if isinstance(step, Voided) and step.had_output and not client_had:
                    continue  # the void attempt and its reset are invisible to this client
                out.extend(self._deliver(held))
                fresh = self._deliver(frames)
                out.extend(fresh)
                if isinstance(step, Voided) and step.had_output:
                    self.delivered = False
                    self.closed = bool(fresh)  # the client reads the reset here, then resumes
                continue
            if self._attempt_frames is None:
                self._attempt_frames = []
            self._attempt_frames.extend(frames)
            if isinstance(step, Ended):
                out.extend(self._deliver(self._attempt_frames))
                self._attempt_frames = []
        return self._encode(out)

    def caught_up(self) -> bytes:
        """The end of the stored events: send the current attempt's held frames."""
        held, self._attempt_frames = self._attempt_frames or [], None
        return self._encode(self._deliver(held))

    def encode(self, event: StoredEvent) -> bytes:
        """A live event."""
        if self.closed:
            return b""
        out: list[_Frame] = []
        for step, frames in self._steps(event):
            if isinstance(step, Voided):
                fresh = self._deliver(frames) if step.had_output and self.delivered else []
                out.extend(fresh)
                self.delivered = False
                if fresh:
                    self.closed = True
                    break
                continue
            out.extend(self._deliver(frames))
        return self._encode(out)

    @property
    def last_sequence(self) -> int:
        """The last sequence number allotted so far (-1 for none)."""
        return self.sequence - 1

    @staticmethod
    def _encode(frames: list[_Frame]) -> bytes:
        return b"".join(
            sse_frame(frame.sse_id, _event_name(frame), frame.payload) for frame in frames
        )

    def _notice(self, code: str, message: str) -> bytes:
        payload = {
            "type": "error",
            "code": code,
            "message": message,
            "param": None,
            "sequence_number": max(self.sent, 0),
            "generation_id": self.gen_id,
            "last_event_id": self.last_id or "0-0",
            "starting_after": self.sent,
        }
        self.closed = True
        return sse_frame(self.last_id, "error", compact_json(payload))

    def interrupted(self) -> bytes:
        return self._notice(
            "unavailable",
            "the server closed this stream before the response ended (it is still running): "
            f"resume with GET /v1/responses/{response_id(self.gen_id)}?stream=true"
            f"&starting_after={self.sent}",
        )

    def resync(self, snapshot: GenerationStatus) -> bytes:
        return self._notice(
            "resync",
            "the events of this response are no longer all retained, so its sequence numbers "
            f"cannot be rebuilt: read it with GET /v1/responses/{response_id(snapshot.id)}",
        )

    def transport(self, chunk: bytes) -> bytes:
        return openai_transport(chunk)


def _event_name(frame: _Frame) -> str:
    # The payload starts with {"type":"NAME", and NAME has no quote in it.
    return frame.payload[9 : frame.payload.index('"', 9)]
