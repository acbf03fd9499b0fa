"""The shared reader: Redis cost per stream, slow viewers, and the backlog/live seam."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import httpx
import pytest
import redis

from cli.redis_server import find_redis_server, private_redis
from tests.hub.conftest import ApiFactory
from tests.hub.support import DirectPublisher, RawSse, metric_value
from tests.support.polling import wait_for
from tests.support.processes import ApiProcess, stack_env
from tests.support.sse import SseEvent, assemble_text, iter_sse, read_sse


@pytest.fixture()
def own_redis_url() -> Iterator[str]:
    """A Redis for one test alone, so its CLIENT LIST shows only this test's API."""
    binary = find_redis_server()
    assert binary is not None
    with private_redis(binary) as url:
        yield url


def client_list(url: str) -> list[dict[str, Any]]:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        clients: list[dict[str, Any]] = client.client_list()  # type: ignore[assignment]  # sync client: a list
    finally:
        client.close()
    return clients


def api_connections(url: str) -> tuple[int, int]:
    """(connections the API holds, of which blocked in XREAD) per CLIENT LIST."""
    clients = client_list(url)
    ours = [c for c in clients if c.get("name", "").startswith("tokenrelay-")]
    blocked = [c for c in ours if c.get("cmd") == "xread" and "b" in c.get("flags", "")]
    return len(ours), len(blocked)


def is_delta(text: str) -> Callable[[SseEvent], bool]:
    def matches(event: SseEvent) -> bool:
        return event.event == "delta" and bool(event.json()["text"] == text)

    return matches


async def test_many_viewers_of_one_stream_use_a_constant_number_of_connections(
    own_redis_url: str,
) -> None:
    api = ApiProcess(stack_env(own_redis_url)).wait_ready()
    publisher = DirectPublisher(own_redis_url)
    viewers: list[RawSse] = []
    try:
        gen_id = await publisher.start()
        await publisher.delta(gen_id, "first ")
        path = f"/v1/generations/{gen_id}/events"

        async def open_viewers(count: int) -> None:
            for _ in range(count):  # one at a time: a pool never needs to grow for this
                viewer = await RawSse.open(api.port, path, rcvbuf=65536)
                await viewer.read_head()
                assert viewer.status == 200
                await viewer.read_events(until=is_delta("first "))
                viewers.append(viewer)

        await open_viewers(3)
        await publisher.delta(gen_id, "second ")
        for viewer in viewers:
            await viewer.read_events(until=is_delta("second "))
        few_total, few_blocked = api_connections(own_redis_url)

        await open_viewers(97)
        await publisher.delta(gen_id, "third")
        await publisher.done(gen_id)
        for viewer in viewers:
            events = await viewer.read_events()
            assert events[-1].event == "done"
            assert assemble_text(events) == "first second third"
        many_total, many_blocked = api_connections(own_redis_url)

        assert few_blocked == 1, "one shared blocking read per API process"
        assert many_blocked <= 1
        # One blocking read for 3 viewers or 100: the count does not follow viewers.
        assert many_total - few_total <= 2, (few_total, many_total)
    finally:
        for viewer in viewers:
            viewer.close()
        await publisher.aclose()
        api.stop()


async def test_stalled_viewer_does_not_delay_others_and_then_assembles_exact_text(
    start_api: ApiFactory, publisher: DirectPublisher
) -> None:
    api = start_api(TOKENRELAY_VIEWER_QUEUE_EVENTS="16", TOKENRELAY_SSE_SEND_TIMEOUT_S="300")
    gen_id = await publisher.start()
    await publisher.delta(gen_id, "first ")
    path = f"/v1/generations/{gen_id}/events"

    stalled = await RawSse.open(api.port, path, rcvbuf=4096)
    await stalled.read_head()
    await stalled.read_events(until=is_delta("first "))
    # From here on it reads nothing until the others are done.

    async with httpx.AsyncClient(base_url=api.base_url, timeout=120) as client:
        others = [asyncio.create_task(read_sse(client, path, timeout_s=120)) for _ in range(3)]
        await wait_for(lambda: _open_connections(client, 4), what="all four viewers connected")
        for block in range(600):  # ~6 MB: more than the socket buffers (up to 4 MB) hold
            await publisher.delta(gen_id, *(f"{block:02d}-{i:02d}" + "x" * 995 for i in range(10)))
        await publisher.delta(gen_id, "last")
        await publisher.done(gen_id)

        readings = await asyncio.gather(*others)
        for reading in readings:
            assert reading.closed_by_server
            assert reading.events[-1].event == "done"
            assert assemble_text(reading.events) == publisher.text(gen_id)

        # The others finished while the stalled viewer still holds its connection.
        async def only_stalled_open() -> bool:
            metrics = (await client.get("/metrics")).text
            return metric_value(metrics, "tokenrelay_sse_connections_open") == 1

        await wait_for(only_stalled_open, what="the other viewers' connections to close")

        events = await stalled.read_events()
        stalled.close()
        ids = [e.id for e in events]
        assert len(ids) == len(set(ids)), "no duplicate after rejoining"
        assert events[-1].event == "done"
        assert assemble_text(events) == publisher.text(gen_id)
        assert ids == (await publisher.entry_ids(gen_id))

        metrics = (await client.get("/metrics")).text
        assert metric_value(metrics, "tokenrelay_hub_slow_viewer_switches_total") >= 1


async def _open_connections(client: httpx.AsyncClient, count: int) -> bool:
    metrics = (await client.get("/metrics")).text
    return metric_value(metrics, "tokenrelay_sse_connections_open") >= count


async def test_backlog_then_live_viewers_cross_the_seam_without_gap_or_duplicate(
    start_api: ApiFactory, publisher: DirectPublisher
) -> None:
    api = start_api()
    gen_id = await publisher.start()
    path = f"/v1/generations/{gen_id}/events"
    published = 0
    joined: list[asyncio.Event] = []

    async def publish_until_all_joined() -> None:
        nonlocal published
        while not all(event.is_set() for event in joined) or published < 2500:
            await publisher.delta(gen_id, f"t{published} ")
            published += 1
            if published % 50 == 0:
                await asyncio.sleep(0)  # let the viewers' requests through too
        for _ in range(300):  # and keep going fast after everyone is live
            await publisher.delta(gen_id, f"t{published} ")
            published += 1
        await publisher.done(gen_id)

    async def view(
        client: httpx.AsyncClient, cursor: str | None, ready: asyncio.Event
    ) -> list[SseEvent]:
        headers = {"Last-Event-ID": cursor} if cursor else {}
        events: list[SseEvent] = []
        async with client.stream("GET", path, headers=headers) as response:
            assert response.status_code == 200
            async for item in iter_sse(response):
                if isinstance(item, SseEvent):
                    events.append(item)
                    if len(events) == 3:
                        ready.set()
        return events

    async with httpx.AsyncClient(base_url=api.base_url, timeout=120) as client:
        viewers: list[tuple[str | None, asyncio.Task[list[SseEvent]]]] = []

        def add_viewer(cursor: str | None) -> None:
            ready = asyncio.Event()
            joined.append(ready)
            viewers.append((cursor, asyncio.create_task(view(client, cursor, ready))))

        add_viewer(None)
        publishing = asyncio.create_task(publish_until_all_joined())
        for threshold in (200, 700, 1600):
            await wait_for(partial(_reached, lambda: published, threshold), what="progress")
            add_viewer(None)  # from the first event: a long backlog, then live
            ids = await publisher.entry_ids(gen_id)
            add_viewer(ids[len(ids) // 2])  # resuming from the middle
        await publishing
        all_ids = await publisher.entry_ids(gen_id)
        for cursor, task in viewers:
            events = await task
            expected = all_ids if cursor is None else all_ids[all_ids.index(cursor) + 1 :]
            got = [e.id for e in events]
            assert got == expected, f"viewer from {cursor}: gap or duplicate at the seam"
            assert events[-1].event == "done"
        first = await viewers[0][1]
        assert assemble_text(first) == publisher.text(gen_id)


async def _reached(value: Callable[[], int], threshold: int) -> bool:
    return value() >= threshold


async def test_shared_reader_survives_losing_its_connection_without_a_gap(
    own_redis_url: str,
) -> None:
    api = ApiProcess(stack_env(own_redis_url)).wait_ready()
    publisher = DirectPublisher(own_redis_url)
    try:
        gen_id = await publisher.start()
        await publisher.delta(gen_id, "before ")
        viewer = await RawSse.open(api.port, f"/v1/generations/{gen_id}/events", rcvbuf=65536)
        await viewer.read_head()
        await viewer.read_events(until=is_delta("before "))

        hub_clients = [c for c in client_list(own_redis_url) if c.get("name") == "tokenrelay-hub"]
        assert len(hub_clients) == 1
        killer = redis.Redis.from_url(own_redis_url, decode_responses=True)
        try:
            killer.client_kill_filter(_id=hub_clients[0]["id"])
        finally:
            killer.close()
        for i in range(5):  # published while the reader reconnects
            await publisher.delta(gen_id, f"during{i} ")
        await publisher.done(gen_id)

        events = await viewer.read_events()
        viewer.close()
        assert events[-1].event == "done"
        assert [e.id for e in events] == await publisher.entry_ids(gen_id)
        assert assemble_text(events) == publisher.text(gen_id)
    finally:
        await publisher.aclose()
        api.stop()


async def test_caught_up_native_viewers_are_written_by_the_hub_in_one_pass(
    start_api: ApiFactory, publisher: DirectPublisher
) -> None:
    """Live events go straight from the hub to waiting native viewers' connections
    (api/streaming/direct.py): the same bytes as the ordinary path, in order."""
    api = start_api()
    gen_id = await publisher.start()
    path = f"/v1/generations/{gen_id}/events"
    async with httpx.AsyncClient(base_url=api.base_url, timeout=60) as client:
        viewers = [asyncio.create_task(read_sse(client, path, timeout_s=60)) for _ in range(5)]
        await wait_for(lambda: _open_connections(client, 5), what="five viewers connected")
        for n in range(200):
            await publisher.delta(gen_id, f"w{n} ")
            if n % 10 == 0:
                await asyncio.sleep(0.01)  # let the viewers catch up and wait again
        await publisher.done(gen_id)
        readings = await asyncio.gather(*viewers)
        ids = await publisher.entry_ids(gen_id)
        for reading in readings:
            assert [e.id for e in reading.events] == ids
            assert assemble_text(reading.events) == publisher.text(gen_id)
        metrics = (await client.get("/metrics")).text
    direct = metric_value(metrics, "tokenrelay_sse_events_delivered_direct_total")
    delivered = metric_value(metrics, "tokenrelay_sse_events_delivered_total")
    assert 0 < direct < delivered  # the terminal event always takes the ordinary path
