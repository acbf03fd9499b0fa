"""SIGTERM on an API replica: readiness fails at once, streams are told to reconnect and
closed, the process exits, and its viewers resume on another replica with exact text."""

from __future__ import annotations

import asyncio
import signal

import httpx

from tests.hub.conftest import ApiFactory
from tests.hub.support import DirectPublisher
from tests.support.sse import SseEvent, assemble_text, iter_sse, read_sse


async def test_sigterm_closes_streams_and_clients_resume_on_another_replica(
    start_api: ApiFactory, publisher: DirectPublisher
) -> None:
    leaving = start_api(TOKENRELAY_SHUTDOWN_DELAY_S="8", TOKENRELAY_SHUTDOWN_GRACE_S="10")
    staying = start_api()
    gen_id = await publisher.start()
    for i in range(20):
        await publisher.delta(gen_id, f"early{i} ")
    path = f"/v1/generations/{gen_id}/events"

    async def watch(
        client: httpx.AsyncClient, seen: asyncio.Event
    ) -> tuple[list[SseEvent], list[int]]:
        events: list[SseEvent] = []
        retries: list[int] = []
        async with client.stream("GET", path) as response:
            assert response.status_code == 200
            async for item in iter_sse(response):
                if isinstance(item, SseEvent):
                    events.append(item)
                    if len(events) == 21:  # start + 20 deltas
                        seen.set()
                elif isinstance(item, int):
                    retries.append(item)
        return events, retries

    async with httpx.AsyncClient(base_url=leaving.base_url, timeout=60) as client:
        ready = [asyncio.Event() for _ in range(3)]
        viewers = [asyncio.create_task(watch(client, event)) for event in ready]
        for event in ready:
            await asyncio.wait_for(event.wait(), timeout=60)

        leaving.signal(signal.SIGTERM)
        results = await asyncio.wait_for(asyncio.gather(*viewers), timeout=60)

        # Told to come back soon, and closed before the generation ended.
        for events, retries in results:
            assert len(retries) == 2 and retries[-1] < retries[0], retries
            assert all(e.event != "done" for e in events)
        readiness = await client.get("/readyz")
        assert readiness.status_code == 503
        refused = await client.get(path)
        assert refused.status_code == 503
        assert "retry-after" in refused.headers

    for i in range(20):
        await publisher.delta(gen_id, f"late{i} ")
    await publisher.done(gen_id)

    async with httpx.AsyncClient(base_url=staying.base_url, timeout=60) as client:
        for events, _ in results:
            resumed = await read_sse(client, path, headers={"Last-Event-ID": events[-1].id or ""})
            whole = events + resumed.events
            assert resumed.events[-1].event == "done"
            assert [e.id for e in whole] == await publisher.entry_ids(gen_id)
            assert assemble_text(whole) == publisher.text(gen_id)

    exit_code = await asyncio.to_thread(leaving.process.wait, 60)
    assert exit_code in (0, -signal.SIGTERM)
    assert "Traceback" not in leaving.log()
