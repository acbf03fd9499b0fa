"""Redis restarts mid-stream: the API answers 503, streams end with a retry hint, all recovers.

With the append-only file on, a clean Redis restart loses nothing: the running
generation is taken over (a new attempt announced with `reset`) and every viewer
that reconnects assembles the exact text. Without persistence the restart loses
every generation and queued job: viewers reconnect to a 404, and new generations
work again at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from tests.faults.support import (
    Processes,
    RedisServer,
    create,
    expected_story,
    fault_env,
    status,
    watch,
)
from tests.support.polling import wait_for
from tests.support.processes import ApiProcess
from tests.support.sse import SseEvent, SseReading, assemble_text, iter_sse

REDIS_LOST_RETRY_MS = 1000


async def test_redis_restart_with_aof_loses_nothing(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path, appendonly=True)
    redis.start()
    procs = Processes(fault_env(redis.url))
    try:
        workers, api = procs.ready(workers=2)
        gen_id = await create(api.base_url, max_tokens=200)
        viewer = asyncio.create_task(watch(api.base_url, gen_id))
        await wait_for(lambda: _content(api.base_url, gen_id), what="first output")

        redis.stop()
        await _check_unavailable(api)
        redis.start()

        viewing = await viewer
        expected = expected_story(200)
        assert REDIS_LOST_RETRY_MS in viewing.retries  # its stream ended with the hint
        assert viewing.connections >= 2
        assert viewing.kinds[-1] == "done"
        assert assemble_text(viewing.events) == expected
        replay = await watch(api.base_url, gen_id)
        assert assemble_text(replay.events) == expected
        assert [e.id for e in replay.events] == [e.id for e in viewing.events]
        final = await status(api.base_url, gen_id)
        assert (final["status"], final["content"]) == ("completed", expected)

        # Nothing crashed: the same processes serve a new generation end to end.
        assert all(p.process.poll() is None for p in procs.started)
        # A worker whose poll loop never hit the (short) outage has nothing to resume
        # from (its reaper or listeners may still have logged the outage); every
        # worker whose job pickup paused must have resumed.
        await wait_for(
            lambda: all(
                "Redis is back" in w.log() for w in workers if "pausing job pickup" in w.log()
            ),
            what="paused workers to resume",
        )
        fresh = await create(api.base_url, max_tokens=30)
        after = await watch(api.base_url, fresh)
        assert assemble_text(after.events) == expected_story(30)
        assert after.kinds.count("start") == 1
    finally:
        procs.stop_all()
        redis.stop()


async def test_redis_restart_without_persistence_forgets_but_recovers(
    own_redis: RedisServer, procs: Processes
) -> None:
    worker = procs.worker()
    api = procs.api()
    worker.wait_ready()
    api.wait_ready()
    gen_id = await create(api.base_url, max_tokens=200)
    async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as client:
        async with client.stream("GET", f"/v1/generations/{gen_id}/events") as response:
            # Redis goes away once this viewer has seen output (the status record's
            # text can be there before a slow machine's viewer has read anything).
            reading = SseReading(response.status_code, response.headers)
            items = iter_sse(response)
            async for item in items:
                if isinstance(item, SseEvent):
                    reading.events.append(item)
                    if item.event == "delta":
                        break
            own_redis.stop()
            rest = asyncio.create_task(_read_rest(items, reading))
            await _check_unavailable(api)
            own_redis.start()
            await rest
        assert reading.closed_by_server
        assert reading.retries[-1] == REDIS_LOST_RETRY_MS
        assert reading.events[-1].event not in ("done", "error", "cancelled")
        gone = await wait_for(
            lambda: _status_code(client, f"/v1/generations/{gen_id}", 404), what="a 404"
        )
        assert gone.json()["error"]["type"] == "not_found_error"

    fresh = await create(api.base_url, max_tokens=30)
    after = await watch(api.base_url, fresh)
    assert assemble_text(after.events) == expected_story(30)
    assert all(p.process.poll() is None for p in procs.started)


async def _read_rest(items: AsyncIterator[SseEvent | str | int], reading: SseReading) -> None:
    async for item in items:
        if isinstance(item, SseEvent):
            reading.events.append(item)
        elif isinstance(item, int):
            reading.retries.append(item)
    reading.closed_by_server = True


async def _check_unavailable(api: ApiProcess) -> None:
    """While Redis is down, new requests get a 503 with Retry-After, never a 500 or a hang."""
    async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as client:
        body = {"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]}
        refused = await client.post("/v1/generations", json=body)
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"].isdigit()
        assert refused.json()["error"]["type"] == "unavailable"
        stream = await client.get("/v1/generations/gen_" + "0" * 32 + "/events")
        assert stream.status_code == 503
        assert (await client.get("/readyz")).status_code == 503


async def _content(base_url: str, gen_id: str) -> bool:
    return bool((await status(base_url, gen_id))["content"])


async def _status_code(
    client: httpx.AsyncClient, path: str, expected: int
) -> httpx.Response | None:
    response = await client.get(path)
    return response if response.status_code == expected else None


async def test_processes_started_while_redis_is_down_wait_for_it(
    own_redis: RedisServer, procs: Processes
) -> None:
    own_redis.stop()
    worker = procs.worker()
    api = procs.api()
    await asyncio.to_thread(api.wait_for_log, "Uvicorn running")
    async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as client:
        assert (await client.get("/readyz")).status_code == 503
        body = {"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]}
        assert (await client.post("/v1/generations", json=body)).status_code == 503
    await asyncio.to_thread(worker.wait_for_log, "waiting for Redis")
    assert worker.process.poll() is None

    own_redis.start()
    await asyncio.to_thread(worker.wait_ready)
    api.wait_ready()
    gen_id = await create(api.base_url, max_tokens=20)
    viewing = await watch(api.base_url, gen_id)
    assert assemble_text(viewing.events) == expected_story(20)
