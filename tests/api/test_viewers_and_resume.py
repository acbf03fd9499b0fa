"""Many viewers, disconnects and resumes: every viewer assembles exactly the same text."""

from __future__ import annotations

import asyncio

import httpx

from tests.api.test_stream_basics import create, expected_story
from tests.support.sse import SseEvent, assemble_text, read_sse
from tests.support.stack import Stack

PROMPT = "three viewers watch"


def assert_no_gap_or_duplicate(events: list[SseEvent]) -> None:
    ids = [e.id for e in events]
    assert all(ids), "every event carries an id"
    assert len(set(ids)) == len(ids), "no event delivered twice"
    keys = [tuple(map(int, i.split("-"))) for i in ids if i]
    assert keys == sorted(keys), "ids strictly increase"
    assert sum(e.event in ("done", "error", "cancelled") for e in events) == 1


async def test_three_viewers_one_resuming_by_header_one_by_query(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    tokens = 150
    created = await create(
        client, max_tokens=tokens, messages=[{"role": "user", "content": PROMPT}]
    )
    url = created["events_url"]

    async def steady() -> list[SseEvent]:
        return (await read_sse(client, url)).events

    async def resume_by(mode: str) -> list[SseEvent]:
        first = await read_sse(client, url, max_events=8)
        assert not first.closed_by_server
        assert first.last_id is not None
        await asyncio.sleep(0.2)  # stay away while more tokens are published
        if mode == "header":
            rest = await read_sse(client, url, headers={"Last-Event-ID": first.last_id})
        else:
            rest = await read_sse(client, url, params={"last_event_id": first.last_id})
        assert rest.closed_by_server
        return first.events + rest.events

    whole, by_header, by_query = await asyncio.gather(
        steady(), resume_by("header"), resume_by("query")
    )
    expected = expected_story(PROMPT, tokens)
    for events in (whole, by_header, by_query):
        assert_no_gap_or_duplicate(events)
        assert assemble_text(events) == expected
    assert [e.id for e in by_header] == [e.id for e in whole]
    assert [e.id for e in by_query] == [e.id for e in whole]


async def test_header_cursor_wins_over_the_query_cursor(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    """An EventSource reconnect keeps its URL (?last_event_id=old) and sends the newer header."""
    created = await create(client, max_tokens=20)
    whole = await read_sse(client, created["events_url"])
    old, newer = whole.events[1].id, whole.events[5].id
    assert old and newer
    resumed = await read_sse(
        client,
        created["events_url"],
        params={"last_event_id": old},
        headers={"Last-Event-ID": newer},
    )
    assert [e.id for e in resumed.events] == [e.id for e in whole.events[6:]]


async def test_late_joiner_gets_full_replay_and_close(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    created = await create(client, max_tokens=30)
    first = await read_sse(client, created["events_url"])
    late = await read_sse(client, created["events_url"])
    assert late.closed_by_server
    assert [(e.id, e.event, e.data) for e in late.events] == [
        (e.id, e.event, e.data) for e in first.events
    ]
    assert assemble_text(late.events) == expected_story("tell me a story", 30)
    # resuming from the terminal event's id: 204, the SSE spec's "stop reconnecting"
    after_end = await read_sse(
        client, created["events_url"], headers={"Last-Event-ID": first.events[-1].id or ""}
    )
    assert after_end.status_code == 204 and after_end.events == []


async def test_closing_the_connection_never_cancels(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    created = await create(client, max_tokens=80)
    partial = await read_sse(client, created["events_url"], max_events=3)
    assert not partial.closed_by_server
    status = {}
    for _ in range(200):
        status = (await client.get(f"/v1/generations/{created['id']}")).json()
        if status["status"] in ("completed", "failed", "cancelled"):
            break
        await asyncio.sleep(0.1)
    assert status["status"] == "completed"
    assert status["content"] == expected_story("tell me a story", 80)


async def test_cancel_of_a_running_generation(client: httpx.AsyncClient, stack: Stack) -> None:
    created = await create(client, max_tokens=5000)
    watcher = asyncio.create_task(read_sse(client, created["events_url"]))
    # wait for output to flow, then cancel
    for _ in range(100):
        status = (await client.get(f"/v1/generations/{created['id']}")).json()
        if status["content"]:
            break
        await asyncio.sleep(0.05)
    response = await client.post(f"/v1/generations/{created['id']}/cancel")
    assert response.status_code == 202, response.text
    reading = await asyncio.wait_for(watcher, timeout=30)
    assert reading.closed_by_server
    assert reading.events[-1].event == "cancelled"
    assert reading.events[-1].json() == {}
    assert_no_gap_or_duplicate(reading.events)
    final = (await client.get(f"/v1/generations/{created['id']}")).json()
    assert final["status"] == "cancelled"
    assert final["content"] == assemble_text(reading.events)
    assert len(final["content"]) < len(expected_story("tell me a story", 5000))

    again = await client.post(f"/v1/generations/{created['id']}/cancel")
    assert again.status_code == 409
    assert "already finished" in again.json()["error"]["message"]


async def test_status_reports_progress(client: httpx.AsyncClient, stack: Stack) -> None:
    created = await create(client, max_tokens=10, metadata={"user": "u-1"})
    await read_sse(client, created["events_url"])
    status = (await client.get(f"/v1/generations/{created['id']}")).json()
    assert status["model"] == "demo/story"
    assert status["usage"] == {"input_tokens": 4, "output_tokens": 10}
    assert status["finish_reason"] == "stop"
    assert status["error"] is None
    assert status["tool_calls"] == []
    assert status["metadata"] == {"user": "u-1"}
    assert status["created_at"] <= status["started_at"] <= status["finished_at"]


async def test_echo_and_length_finish(client: httpx.AsyncClient, stack: Stack) -> None:
    text = "Echo me back, exactly: with  double spaces\nand a newline."
    created = await create(client, model="demo/echo", messages=[{"role": "user", "content": text}])
    reading = await read_sse(client, created["events_url"])
    assert assemble_text(reading.events) == text
    truncated = await create(
        client, model="demo/echo", max_tokens=2, messages=[{"role": "user", "content": text}]
    )
    reading = await read_sse(client, truncated["events_url"])
    assert assemble_text(reading.events) == "Echo me"
    assert reading.events[-1].json()["finish_reason"] == "length"


async def test_models_and_health(client: httpx.AsyncClient) -> None:
    models = (await client.get("/v1/models")).json()
    ids = [m["id"] for m in models["data"]]
    assert "demo/echo" in ids and "demo/story" in ids
    assert not any(i.startswith("openai/") for i in ids), "openai is not configured here"
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/readyz")).json() == {"status": "ready"}


async def test_openapi_document_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/v1/generations/{gen_id}/events" in paths
    assert "/v1/generations" in paths
