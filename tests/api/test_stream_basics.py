"""A generation's SSE stream, end to end through real API and worker processes."""

from __future__ import annotations

from typing import Any

import httpx

from services.providers.demo import story_tokens
from tests.support.sse import assemble_text, read_sse
from tests.support.stack import Stack


async def create(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    body.setdefault("model", "demo/story")
    body.setdefault("messages", [{"role": "user", "content": "tell me a story"}])
    response = await client.post("/v1/generations", json=body)
    assert response.status_code == 202, response.text
    created: dict[str, Any] = response.json()
    return created


def expected_story(prompt: str, tokens: int) -> str:
    return "".join(story_tokens(prompt, tokens))


async def test_stream_assembles_exact_text_with_increasing_ids(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    created = await create(client, max_tokens=60)
    assert created["status"] == "queued"
    assert created["events_url"] == f"/v1/generations/{created['id']}/events"

    reading = await read_sse(client, created["events_url"])

    assert reading.status_code == 200
    assert reading.closed_by_server
    assert reading.retries and reading.retries[0] > 0
    assert reading.headers["cache-control"] == "no-cache, no-transform"
    assert reading.headers["x-accel-buffering"] == "no"
    assert reading.headers["content-type"].startswith("text/event-stream")
    assert "connection" not in reading.headers
    assert "content-encoding" not in reading.headers
    kinds = [e.event for e in reading.events]
    assert kinds[0] == "start"
    assert kinds[-1] == "done"
    assert sum(k in ("done", "error", "cancelled") for k in kinds) == 1
    ids = [tuple(map(int, e.id.split("-"))) for e in reading.events if e.id]
    assert len(ids) == len(reading.events)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert assemble_text(reading.events) == expected_story("tell me a story", 60)
    done = reading.events[-1].json()
    assert done == {"finish_reason": "stop", "usage": {"input_tokens": 4, "output_tokens": 60}}

    status = (await client.get(f"/v1/generations/{created['id']}")).json()
    assert status["status"] == "completed"
    assert status["content"] == expected_story("tell me a story", 60)
    assert status["last_event_id"] == reading.events[-1].id
    assert status["attempt"] == 1


async def test_start_event_names_the_model_plainly(client: httpx.AsyncClient, stack: Stack) -> None:
    created = await create(client, max_tokens=1)
    reading = await read_sse(client, created["events_url"])
    start = reading.events[0]
    assert start.event == "start"
    assert '"model":"demo/story"' in start.data
    assert start.json() == {"generation_id": created["id"], "model": "demo/story", "attempt": 1}
