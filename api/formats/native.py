"""tokenrelay's own SSE format: the stored events, verbatim."""

from __future__ import annotations

from api.formats.base import sse_frame
from services.events import StoredEvent
from services.generation import GenerationStatus


class NativeFormat:
    def encode(self, event: StoredEvent) -> bytes:
        return sse_frame(event.id, event.type, event.data)

    def resync(self, snapshot: GenerationStatus) -> bytes:
        data = snapshot.model_dump_json()
        return sse_frame(snapshot.last_event_id, "resync", data)
