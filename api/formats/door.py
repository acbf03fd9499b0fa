"""What the OpenAI and Anthropic SSE writers share: ids, openings, resets, resumes.

A writer is made per connection. It folds the generation's events into a
`Transcript` and renders the resulting steps as frames of its wire format.

Ids. One stored event may become several SSE events (Anthropic's `done` is a
`content_block_stop`, a `message_delta` and a `message_stop`). Only the last of
them carries the stored event's id; the ones before carry the id of the previous
stored event. So a client's `Last-Event-ID` always names a stored event whose
output it has received in full, and a resume can neither skip nor repeat output.

Resuming. A connection that starts after a cursor is a complete stream of its
format on its own, because SDKs parse every connection from scratch: it opens
with the format's opening events (OpenAI's role chunk, Anthropic's
`message_start`), re-announces every block the attempt has begun so far (with
empty content, so no text is repeated; Anthropic's open tool input is the one
exception, see api/formats/anthropic.py), then continues from the cursor. The
writer learns the state at the cursor by `absorb`ing the events before it.

Resets. A `reset` voids the attempt's output. If this client has none of it (it
joined after the reset, or the attempt had not produced anything), the reset is
invisible. Otherwise neither format can take text back, so the writer sends the
format's error event, whose `id:` is the reset, and the connection ends: the
client knows its partial text is void, and resuming from that id (which an
SSE client does by itself) reads the new attempt as a fresh answer.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from functools import lru_cache
from typing import Any

from api.formats.base import sse_frame
from api.formats.transcript import Appended, Opened, Step, Transcript, Voided
from services.events import Event, StoredEvent, decode_event
from services.generation import GenerationStatus


def compact_json(payload: Any) -> str:
    """JSON as both APIs send it: no spaces, UTF-8 as it is."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def door_id(prefix: str, gen_id: str) -> str:
    """A door's id for the generation (`chatcmpl-…`, `msg_…`), reversible by eye."""
    return prefix + gen_id.removeprefix("gen_")


def fallback_tool_call_id(prefix: str, gen_id: str, ordinal: int) -> str:
    """A stable id for a tool call whose provider gave none: the same on every replay."""
    return f"{prefix}{gen_id.removeprefix('gen_')[:24]}_{ordinal}"


@lru_cache(maxsize=4096)
def decoded(event_type: str, data: str) -> Event:
    """An event's model, parsed once for all the viewers that write it out.

    Every door viewer of a generation folds the same stored events; with the
    shared feed they are the same strings, whose hashes Python keeps, so the
    cache costs a lookup. The models are only read, never changed.
    """
    return decode_event(event_type, data)


Frame = tuple[str | None, str]
"""An SSE event to send: its `event:` name (None for none) and its one `data:` line."""


class DoorFormat(ABC):
    """Base of the per-connection OpenAI and Anthropic writers."""

    def __init__(self, gen_id: str, model: str, created_at: float) -> None:
        self.gen_id = gen_id
        self.model = model
        self.created = int(created_at)
        self.transcript = Transcript()
        self.opened = False
        """This connection has sent its opening events."""
        self.delivered = False
        """The client has output of the current attempt (here, or before its cursor)."""
        self.last_id: str | None = None
        """The last stored event folded in; every frame sent so far is complete up to it."""
        self.current_id: str | None = None
        """The id of the stored event being encoded."""
        self.closed = False
        """This connection must end now (after a reset the client saw output of, or a resync)."""

    @property
    def ended(self) -> bool:
        """The terminal event was folded in."""
        return self.transcript.ending is not None

    def absorb(self, event: StoredEvent) -> None:
        """Fold an event the client already has (one at or before its cursor)."""
        for step in self.transcript.apply(decoded(event.type, event.data)):
            self._note_delivery(step)
        self.last_id = event.id

    def opening(self) -> bytes:
        """The opening of a resumed connection: the state at the cursor, without content."""
        self.opened = True
        return self._encode_frames(self.opening_frames(), self.last_id, self.last_id)

    def encode(self, event: StoredEvent) -> bytes:
        if self.closed:
            return b""
        self.current_id = event.id
        frames: list[Frame] = []
        if not self.opened:
            frames.extend(self.opening_frames())
            self.opened = True
        for step in self.transcript.apply(decoded(event.type, event.data)):
            if isinstance(step, Voided) and self.delivered:
                frames.extend(self.reset_frames(step))
                self.closed = True
            else:
                frames.extend(self.render(step))
            self._note_delivery(step)
        earlier_id = self.last_id or event.id
        self.last_id = event.id
        return self._encode_frames(frames, earlier_id, event.id)

    def interrupted(self) -> bytes:
        """Sent when the server ends the connection before the generation ended (shutdown)."""
        message = (
            "the server closed this stream before the generation ended (it is still running): "
            f"resume with GET /v1/generations/{self.gen_id}/events?format={self.name} and "
            f"Last-Event-ID: {self.last_id or '0-0'}"
        )
        self.closed = True
        return self._encode_frames(
            self.error_frames("unavailable", message, resume_from=self.last_id or "0-0"),
            self.last_id,
            self.last_id,
        )

    def transport(self, chunk: bytes) -> bytes:
        """The bytes of the SSE body as this format's clients can parse them (as is, here)."""
        return chunk

    def resync(self, snapshot: GenerationStatus) -> bytes:
        message = (
            "the events after your Last-Event-ID are no longer retained: rebuild the answer "
            f"from GET /v1/generations/{snapshot.id}"
        )
        self.closed = True
        last = snapshot.last_event_id
        return self._encode_frames(self.error_frames("resync", message), last, last)

    def _note_delivery(self, step: Step) -> None:
        if isinstance(step, Opened | Appended):
            self.delivered = True
        elif isinstance(step, Voided):
            self.delivered = False

    def reset_message(self, step: Voided) -> str:
        return (
            f"{reset_cause(step.reason, step.attempt)}: discard the partial text received so "
            f"far. Read the new attempt with GET /v1/generations/{self.gen_id}/events?"
            f"format={self.name} and Last-Event-ID: {self.current_id}"
        )

    def reset_frames(self, step: Voided) -> list[Frame]:
        return self.error_frames(
            "stream_reset",
            self.reset_message(step),
            resume_from=self.current_id,
            reset={"attempt": step.attempt, "reason": step.reason},
        )

    @staticmethod
    def _encode_frames(frames: list[Frame], earlier_id: str | None, own_id: str | None) -> bytes:
        if not frames:
            return b""
        last = len(frames) - 1
        return b"".join(
            sse_frame(own_id if index == last else earlier_id, event, data)
            for index, (event, data) in enumerate(frames)
        )

    @property
    @abstractmethod
    def name(self) -> str:
        """The `format=` name of this writer."""

    @abstractmethod
    def opening_frames(self) -> list[Frame]:
        """The opening events, re-announcing the blocks the attempt has begun so far."""

    @abstractmethod
    def render(self, step: Step) -> list[Frame]:
        """The frames for one step of the transcript."""

    @abstractmethod
    def error_frames(
        self,
        error_type: str,
        message: str,
        *,
        resume_from: str | None = None,
        reset: dict[str, Any] | None = None,
    ) -> list[Frame]:
        """The format's in-stream error event.

        Its `code` is tokenrelay's own error type (`stream_reset`, `unavailable`,
        `resync`, `cancelled`, or the provider failure's type), whatever name the
        format gives the error. `resume_from`, when the generation goes on, is the
        `Last-Event-ID` to read it from; it is sent with the generation's id as extra
        fields of the error object (`generation_id`, `last_event_id`), so a program
        can resume. `reset`, for a `stream_reset`, is the new attempt and the reason
        (`attempt`, `reason`: `worker_restarted` or the provider failure's type).
        """

    def extra_fields(
        self, resume_from: str | None, reset: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        fields: dict[str, Any] = dict(reset or {})
        if resume_from is not None:
            fields.update(generation_id=self.gen_id, last_event_id=resume_from)
        return fields


def reset_cause(reason: str, attempt: int) -> str:
    """Why an attempt's output was voided, true to what happened."""
    if reason == "worker_restarted":
        return (
            "the worker running this generation stopped after partial output, and another "
            f"worker restarted it as attempt {attempt}"
        )
    return (
        f"the provider failed after partial output ({reason}) and the answer restarts as "
        f"attempt {attempt}"
    )
