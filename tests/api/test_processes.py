"""Promises about processes: replicas are interchangeable, auth, heartbeats."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from tests.api.test_stream_basics import expected_story
from tests.api.test_viewers_and_resume import assert_no_gap_or_duplicate
from tests.support.processes import ApiProcess, stack_env
from tests.support.sse import assemble_text, read_sse
from tests.support.stack import Stack


@pytest.fixture()
def second_api(stack: Stack) -> Iterator[ApiProcess]:
    api = ApiProcess(stack.env).wait_ready()
    yield api
    api.stop()


async def test_viewer_resumes_on_another_replica_after_sigkill(
    stack: Stack, second_api: ApiProcess
) -> None:
    doomed = ApiProcess(stack.env).wait_ready()
    prompt = "replicas are interchangeable"
    body = {
        "model": "demo/story",
        "max_tokens": 300,
        "messages": [{"role": "user", "content": prompt}],
    }
    try:
        async with httpx.AsyncClient(base_url=doomed.base_url, timeout=30) as api1:
            created = (await api1.post("/v1/generations", json=body)).json()
            first = await read_sse(api1, created["events_url"], max_events=10)
            partial_events = list(first.events)
            # keep reading on API 1 until it is killed under us
            reader = asyncio.create_task(
                read_sse(
                    api1, created["events_url"], headers={"Last-Event-ID": first.last_id or ""}
                )
            )
            await asyncio.sleep(0.3)
            doomed.kill()
            try:
                cut = await reader
                partial_events += cut.events
            except httpx.HTTPError:
                pass  # the connection died mid-chunk; what was parsed before is all we had
    finally:
        doomed.stop()
    assert all(e.event != "done" for e in partial_events), "API 1 died mid-stream"
    last_seen = partial_events[-1].id
    async with httpx.AsyncClient(base_url=second_api.base_url, timeout=30) as api2:
        rest = await read_sse(
            api2, created["events_url"], headers={"Last-Event-ID": last_seen or ""}
        )
    events = partial_events + rest.events
    assert rest.closed_by_server
    assert_no_gap_or_duplicate(events)
    assert assemble_text(events) == expected_story(prompt, 300)


async def test_heartbeat_and_cancel_of_a_queued_generation(stack: Stack) -> None:
    # An API whose queue no worker serves: the generation stays queued and idle.
    idle_api = ApiProcess(
        stack_env(
            stack.redis_url,
            TOKENRELAY_QUEUE_NAME="tokenrelay:unserved",
            TOKENRELAY_HEARTBEAT_S="0.3",
        )
    ).wait_ready()
    try:
        async with httpx.AsyncClient(base_url=idle_api.base_url, timeout=30) as client:
            created = (
                await client.post(
                    "/v1/generations",
                    json={
                        "model": "demo/echo",
                        "messages": [{"role": "user", "content": "never runs"}],
                    },
                )
            ).json()
            watcher = asyncio.create_task(read_sse(client, created["events_url"]))
            await asyncio.sleep(1.5)
            assert not watcher.done()
            cancelled = await client.post(f"/v1/generations/{created['id']}/cancel")
            assert cancelled.status_code == 202
            assert cancelled.json()["status"] == "cancelled"
            reading = await asyncio.wait_for(watcher, timeout=10)
            assert reading.closed_by_server
            assert "ping" in reading.comments
            assert [e.event for e in reading.events] == ["cancelled"]
            status = (await client.get(f"/v1/generations/{created['id']}")).json()
            assert status["status"] == "cancelled" and status["attempt"] == 0
    finally:
        idle_api.stop()


async def test_api_keys_in_both_header_forms(stack: Stack) -> None:
    secured = ApiProcess(
        stack_env(stack.redis_url, TOKENRELAY_API_KEYS="key-one, key-two")
    ).wait_ready()
    body = {"model": "demo/echo", "messages": [{"role": "user", "content": "secret hello"}]}
    try:
        async with httpx.AsyncClient(base_url=secured.base_url, timeout=30) as client:
            missing = await client.post("/v1/generations", json=body)
            assert missing.status_code == 401
            assert missing.json()["error"]["type"] == "authentication_error"
            wrong = await client.get("/v1/models", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            assert "nope" not in wrong.text
            ok = await client.post(
                "/v1/generations", json=body, headers={"Authorization": "Bearer key-two"}
            )
            assert ok.status_code == 202
            events_url = ok.json()["events_url"]
            assert (await client.get(events_url)).status_code == 401
            reading = await read_sse(client, events_url, headers={"x-api-key": "key-one"})
            assert assemble_text(reading.events) == "secret hello"
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/readyz")).status_code == 200
        assert "key-one" not in secured.log() and "key-two" not in secured.log()
    finally:
        secured.stop()
