"""`viewers` across replicas, and the Prometheus endpoint."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from tests.hub.conftest import ApiFactory
from tests.hub.support import DirectPublisher, RawSse, metric_value
from tests.support.polling import wait_for
from tests.support.sse import iter_sse


async def test_viewers_are_counted_across_replicas_and_expire_with_a_dead_one(
    start_api: ApiFactory, publisher: DirectPublisher
) -> None:
    first = start_api(TOKENRELAY_PRESENCE_TTL_S="2")
    second = start_api(TOKENRELAY_PRESENCE_TTL_S="2")
    gen_id = await publisher.start()
    path = f"/v1/generations/{gen_id}/events"
    on_first = [await RawSse.open(first.port, path, rcvbuf=65536) for _ in range(2)]
    on_second = await RawSse.open(second.port, path, rcvbuf=65536)
    try:
        async with httpx.AsyncClient(timeout=30) as client:

            def viewers_are(url: str, count: int) -> Callable[[], Awaitable[bool]]:
                async def check() -> bool:
                    status = (await client.get(f"{url}/v1/generations/{gen_id}")).json()
                    return bool(status["viewers"] == count)

                return check

            await wait_for(viewers_are(first.base_url, 3), what="3 viewers seen on the first")
            await wait_for(viewers_are(second.base_url, 3), what="3 viewers seen on the second")

            second.kill()  # no cleanup: its count must expire by itself
            await wait_for(viewers_are(first.base_url, 2), what="the dead replica to expire")

            on_first.pop().close()
            await wait_for(viewers_are(first.base_url, 1), what="a closed viewer to leave")
    finally:
        for viewer in [*on_first, on_second]:
            viewer.close()


async def test_metrics_endpoint_exports_hub_and_transport_figures(
    start_api: ApiFactory, publisher: DirectPublisher
) -> None:
    api = start_api()
    gen_id = await publisher.start()
    await publisher.delta(gen_id, "hello")
    await publisher.done(gen_id)
    async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as client:
        response = await client.get(f"/v1/generations/{gen_id}/events")
        assert response.status_code == 200
        metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    for name in (
        "tokenrelay_sse_connections_open",
        "tokenrelay_hub_viewers_per_stream",
        "tokenrelay_hub_streams",
        "tokenrelay_sse_events_delivered_total",
        "tokenrelay_publish_to_send_seconds_bucket",
        "tokenrelay_hub_backlog_reads_total",
        "tokenrelay_hub_slow_viewer_switches_total",
        "tokenrelay_hub_redis_commands_total",
    ):
        assert name in metrics.text, name
    assert "tokenrelay_sse_events_delivered_total 3.0" in metrics.text  # start, delta, done


async def test_quiet_stream_gets_heartbeats_from_the_idle_sweep(
    start_api: ApiFactory, publisher: DirectPublisher
) -> None:
    api = start_api(TOKENRELAY_HEARTBEAT_S="0.5")
    gen_id = await publisher.start()
    async with (
        httpx.AsyncClient(base_url=api.base_url, timeout=60) as client,
        client.stream("GET", f"/v1/generations/{gen_id}/events") as response,
    ):
        comments: list[str] = []
        async for item in iter_sse(response):
            if isinstance(item, str):
                comments.append(item)
                if len(comments) == 3:
                    break
    assert comments == ["ping", "ping", "ping"]


async def test_a_client_gone_from_a_quiet_stream_leaves_at_once(
    start_api: ApiFactory, publisher: DirectPublisher
) -> None:
    """Nothing is written to a quiet stream for a heartbeat (here 300 s), so no
    failed write can reveal a closed socket: the server itself must tell the
    response (cli/http_protocol.py), which closes it and frees its viewer."""
    api = start_api(TOKENRELAY_HEARTBEAT_S="300")
    gen_id = await publisher.start()
    viewer = await RawSse.open(api.port, f"/v1/generations/{gen_id}/events", rcvbuf=65536)
    async with httpx.AsyncClient(timeout=30) as client:

        def open_streams_are(count: float) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                text = (await client.get(f"{api.base_url}/metrics")).text
                return metric_value(text, "tokenrelay_sse_connections_open") == count

            return check

        await wait_for(open_streams_are(1), what="the stream to be open")
        viewer.close()
        await wait_for(open_streams_are(0), what="the closed client's stream to end")
