"""The connection cap and the send timeout: what a full replica and a dead-slow client get."""

from __future__ import annotations

import asyncio

import httpx

from tests.hub.conftest import ApiFactory
from tests.hub.support import DirectPublisher, RawSse, metric_value
from tests.support.polling import wait_for
from tests.support.sse import assemble_text, read_sse


async def test_cap_answers_503_with_retry_after_and_frees_slots(
    start_api: ApiFactory, publisher: DirectPublisher
) -> None:
    api = start_api(TOKENRELAY_MAX_SSE_CONNECTIONS="2", TOKENRELAY_SSE_CAP_RETRY_S="3")
    gen_id = await publisher.start()
    path = f"/v1/generations/{gen_id}/events"
    held = [await RawSse.open(api.port, path, rcvbuf=65536) for _ in range(2)]
    try:
        for viewer in held:
            await viewer.read_head()
            assert viewer.status == 200
        async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as client:
            refused = await client.get(path)
            assert refused.status_code == 503
            assert 3 <= int(refused.headers["retry-after"]) <= 6
            assert refused.json()["error"]["type"] == "unavailable"

            # An EventSource-style client gets the same advice as a jittered `retry:`.
            as_stream = await client.get(path, headers={"Accept": "text/event-stream"})
            assert as_stream.status_code == 503
            assert "retry-after" in as_stream.headers
            first_line = as_stream.text.split("\n", 1)[0]
            assert first_line.startswith("retry: ")
            assert 3000 <= int(first_line.removeprefix("retry: ")) < 6000
            assert "event: error" in as_stream.text

            # Nobody was evicted to make room.
            await publisher.delta(gen_id, "still here")
            for viewer in held:
                events = await viewer.read_events(until=lambda e: e.event == "delta")
                assert assemble_text(events) == "still here"

            # A closed connection frees its slot.
            held.pop().close()

            async def admitted() -> bool:
                async with client.stream("GET", path) as response:
                    return response.status_code == 200

            await wait_for(admitted, what="a freed slot")
            metrics = (await client.get("/metrics")).text
            assert metric_value(metrics, "tokenrelay_sse_rejected_total") >= 2
    finally:
        for viewer in held:
            viewer.close()


async def test_client_that_stops_reading_is_dropped_after_the_send_timeout(
    start_api: ApiFactory, publisher: DirectPublisher
) -> None:
    api = start_api(TOKENRELAY_SSE_SEND_TIMEOUT_S="1")
    gen_id = await publisher.start()
    path = f"/v1/generations/{gen_id}/events"
    stalled = await RawSse.open(api.port, path, rcvbuf=4096)
    await stalled.read_head()
    async with httpx.AsyncClient(base_url=api.base_url, timeout=120) as client:
        reader = asyncio.create_task(read_sse(client, path, timeout_s=120))

        async def dropped() -> bool:
            metrics = (await client.get("/metrics")).text
            return metric_value(metrics, 'tokenrelay_sse_dropped_total{reason="send_timeout"}') >= 1

        block = 0
        while not await dropped():  # publish until the stalled client's buffers are full
            await publisher.delta(gen_id, *(f"{block}-{i}" + "y" * 1000 for i in range(20)))
            block += 1
            assert block < 2000, "the stalled client was never dropped"
        await publisher.done(gen_id)
        reading = await reader
        assert reading.events[-1].event == "done"
        assert assemble_text(reading.events) == publisher.text(gen_id)

        async def only_reader_left() -> bool:
            metrics = (await client.get("/metrics")).text
            return metric_value(metrics, "tokenrelay_sse_connections_open") == 0

        await wait_for(only_reader_left, what="the dropped connection to be released")
    # The dropped client sees the end of the connection without a terminal event.
    events = await stalled.read_events()
    stalled.close()
    assert all(e.event != "done" for e in events)
