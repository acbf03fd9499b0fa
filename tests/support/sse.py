"""A small SSE client for tests: reads events exactly as sent, comments included.

Written against the WHATWG event-stream parsing rules (fields, multi-line data,
comments, `retry`), so tests see what a browser's EventSource would see, and can
also assert on what EventSource hides (heartbeat comments).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class SseEvent:
    id: str | None
    event: str
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SseReading:
    status_code: int
    headers: httpx.Headers
    events: list[SseEvent] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    retries: list[int] = field(default_factory=list)
    closed_by_server: bool = False

    @property
    def last_id(self) -> str | None:
        ids = [e.id for e in self.events if e.id]
        return ids[-1] if ids else None


async def iter_sse(response: httpx.Response) -> AsyncIterator[SseEvent | str | int]:
    """Yields SseEvent, a comment string, or a retry int, in wire order."""
    event_id: str | None = None
    event_type = ""
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield SseEvent(event_id, event_type or "message", "\n".join(data))
            event_type, data = "", []
            continue
        if line.startswith(":"):
            yield line[1:].strip()
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "event":
            event_type = value
        elif name == "id":
            event_id = value
        elif name == "retry" and value.isdigit():
            yield int(value)


async def read_sse(
    client: httpx.AsyncClient,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    max_events: int | None = None,
    timeout_s: float = 30,
) -> SseReading:
    """Read a stream until the server closes it, or until `max_events` events arrived."""
    async with client.stream(
        "GET", url, headers=headers, params=params, timeout=timeout_s
    ) as response:
        reading = SseReading(response.status_code, response.headers)
        if response.status_code != 200:
            await response.aread()
            return reading
        async for item in iter_sse(response):
            if isinstance(item, SseEvent):
                reading.events.append(item)
                if max_events is not None and len(reading.events) >= max_events:
                    return reading
            elif isinstance(item, int):
                reading.retries.append(item)
            else:
                reading.comments.append(item)
        reading.closed_by_server = True
        return reading


def assemble_text(events: list[SseEvent]) -> str:
    """What a viewer shows: deltas appended, cleared by each `reset`."""
    text = ""
    for event in events:
        if event.event == "delta":
            text += event.json().get("text") or ""
        elif event.event == "reset":
            text = ""
        elif event.event == "resync":
            text = event.json()["content"]
    return text
