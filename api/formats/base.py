"""How a generation's events are written out on an SSE connection.

A format is made per connection (OpenAI and Anthropic writers keep a little
state, such as whether the opening chunk was sent). It returns the bytes for each
stored event, possibly none, and may add bytes after the terminal event.
"""

from __future__ import annotations

from typing import Protocol

from services.events import StoredEvent
from services.generation import GenerationStatus


class StreamFormat(Protocol):
    def encode(self, event: StoredEvent) -> bytes:
        """Bytes to send for `event`; empty to send nothing."""
        ...

    def resync(self, snapshot: GenerationStatus) -> bytes:
        """Bytes telling the client its cursor is gone and how to rebuild."""
        ...


def sse_frame(event_id: str | None, event: str | None, data: str) -> bytes:
    """One SSE event. `data` must be a single line (compact JSON always is)."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event is not None:
        lines.append(f"event: {event}")
    lines.append(f"data: {data}")
    return ("\n".join(lines) + "\n\n").encode()
