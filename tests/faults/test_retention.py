"""Retention, the size guard, `resync` for a trimmed cursor, and the start-up Redis checks."""

from __future__ import annotations

import asyncio

import httpx
import redis as sync_redis
from redis.asyncio import Redis

from services import keys
from services.redis_checks import warn_about_redis_settings
from tests.faults.support import (
    Processes,
    RedisServer,
    create,
    expected_story,
    fault_env,
    watch,
)
from tests.support.polling import wait_for
from tests.support.sse import SseEvent, assemble_text, read_sse


async def test_cursor_before_trimmed_history_of_a_finished_stream_gets_resync(
    procs: Processes, own_redis: RedisServer
) -> None:
    worker, api = procs.worker(), procs.api()
    worker.wait_ready()
    api.wait_ready()
    gen_id = await create(api.base_url, max_tokens=30)
    complete = await watch(api.base_url, gen_id)
    first_id = complete.events[0].id
    with sync_redis.Redis.from_url(own_redis.url, decode_responses=True) as client:
        client.xtrim(keys.events(gen_id), maxlen=2, approximate=False)

    async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as http:
        for cursor in (None, first_id):
            headers = {"Last-Event-ID": cursor} if cursor else None
            reading = await read_sse(http, f"/v1/generations/{gen_id}/events", headers=headers)
            assert reading.closed_by_server
            assert [e.event for e in reading.events] == ["resync", "done"]
            snapshot = reading.events[0].json()
            assert snapshot["status"] == "completed"
            assert snapshot["last_event_id"] == complete.events[-1].id
            assert reading.events[-1].id == complete.events[-1].id
            assert assemble_text(reading.events) == expected_story(30)
        # A cursor inside the retained part is served without resync.
        reading = await read_sse(
            http,
            f"/v1/generations/{gen_id}/events",
            params={"last_event_id": complete.events[-2].id or ""},
        )
        assert [e.event for e in reading.events] == ["done"]


async def test_cursor_before_trimmed_history_of_a_running_stream_gets_resync(
    procs: Processes, own_redis: RedisServer
) -> None:
    worker, api = procs.worker(), procs.api()
    worker.wait_ready()
    api.wait_ready()
    gen_id = await create(api.base_url, max_tokens=160)
    early = await watch_until(api.base_url, gen_id, events=3)
    with sync_redis.Redis.from_url(own_redis.url, decode_responses=True) as client:
        client.xtrim(keys.events(gen_id), maxlen=1, approximate=False)

    resumed = await watch(api.base_url, gen_id, last_event_id=early[0].id)

    assert resumed.kinds[0] == "resync"
    assert resumed.events[0].json()["status"] == "running"
    assert "resync" not in resumed.kinds[1:]
    assert resumed.kinds[-1] == "done"
    assert assemble_text(resumed.events) == expected_story(160)


async def test_finished_generation_expires_and_404_says_so(own_redis: RedisServer) -> None:
    procs = Processes(
        {**_env(own_redis), "TOKENRELAY_RETENTION_S": "1", "TOKENRELAY_TOMBSTONE_S": "600"}
    )
    try:
        worker, api = procs.worker(), procs.api()
        worker.wait_ready()
        api.wait_ready()
        gen_id = await create(api.base_url, max_tokens=10)
        await watch(api.base_url, gen_id)
        async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as http:
            gone = await wait_for(
                lambda: _answer_if(http, f"/v1/generations/{gen_id}", 404), what="expiry"
            )
            assert gone.json()["error"] == {
                "type": "not_found_error",
                "message": f"generation '{gen_id}' has expired: finished generations are "
                "kept for 1 s (TOKENRELAY_RETENTION_S)",
            }
            events = await http.get(f"/v1/generations/{gen_id}/events")
            assert events.status_code == 404
            assert "has expired" in events.json()["error"]["message"]
            unknown = await http.get("/v1/generations/gen_" + "1" * 32)
            assert unknown.status_code == 404
            assert "has expired" not in unknown.json()["error"]["message"]
        with sync_redis.Redis.from_url(own_redis.url, decode_responses=True) as client:
            assert client.exists(*keys.all_for(gen_id)) == 0
            assert client.zscore(keys.RUNNING, gen_id) is None
    finally:
        procs.stop_all()


async def test_size_guard_fails_a_runaway_generation(own_redis: RedisServer) -> None:
    procs = Processes(
        {**_env(own_redis), "TOKENRELAY_MAX_STREAM_EVENTS": "10", "TOKENRELAY_COALESCE_MS": "0"}
    )
    try:
        worker, api = procs.worker(), procs.api()
        worker.wait_ready()
        api.wait_ready()
        gen_id = await create(api.base_url, max_tokens=200)
        viewing = await watch(api.base_url, gen_id)
    finally:
        procs.stop_all()
    assert viewing.kinds[-1] == "error"
    assert viewing.events[-1].json()["type"] == "output_too_large"
    assert len(viewing.events) == 11  # the guard's limit, then the terminal event
    text = assemble_text(viewing.events)
    assert text and expected_story(200).startswith(text)


async def test_start_up_warns_about_risky_redis_settings(own_redis: RedisServer) -> None:
    client = Redis.from_url(own_redis.url, decode_responses=True)
    try:
        assert [w.split(":")[0] for w in await warn_about_redis_settings(client, "test")] == [
            "Redis append-only file is off"
        ]
        await client.config_set("maxmemory-policy", "allkeys-lru")
        await client.config_set("appendonly", "yes")
        warnings = await warn_about_redis_settings(client, "test")
        assert len(warnings) == 1 and "'allkeys-lru'" in warnings[0]
        procs = Processes(_env(own_redis))
        try:
            worker = procs.worker().wait_ready()
            api = procs.api().wait_ready()
            await asyncio.to_thread(worker.wait_for_log, "maxmemory-policy is 'allkeys-lru'")
            await asyncio.to_thread(api.wait_for_log, "maxmemory-policy is 'allkeys-lru'")
        finally:
            procs.stop_all()
    finally:
        await client.aclose()


def _env(own_redis: RedisServer) -> dict[str, str]:
    return fault_env(own_redis.url)


async def _answer_if(http: httpx.AsyncClient, path: str, code: int) -> httpx.Response | None:
    response = await http.get(path)
    return response if response.status_code == code else None


async def watch_until(base_url: str, gen_id: str, *, events: int) -> list[SseEvent]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        reading = await read_sse(http, f"/v1/generations/{gen_id}/events", max_events=events)
    return reading.events
