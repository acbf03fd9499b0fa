"""Quiet faults: connections to Redis that go half-open never stall a stream.

A proxy (tests/support/blackhole_proxy.py) sits between one process and Redis
and, mid-stream, makes its connections mute: open, but nothing arrives. Every
scenario ends with each viewer's text exact, byte for byte. The bound on the
stall is the reply timeout (`TOKENRELAY_REDIS_TIMEOUT_S`, 1 s here) for a
worker, plus the lease and reap interval when the worker is cut off for good,
and the hub's block time plus the reply timeout for an API replica; the test
timeouts only stop a hang, bench/faults_timing.py measures the stalls.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from services.config import Settings
from services.redis_connections import command_client
from services.store import GenerationStore
from tests.faults.support import (
    Processes,
    RedisServer,
    Viewing,
    create,
    expected_story,
    status,
    wait_for,
    watch,
)
from tests.support.blackhole_proxy import BlackholeProxy
from tests.support.sse import SseEvent, assemble_text
from worker.cancel import CancelListener

QUICK_TIMEOUTS = {"TOKENRELAY_REDIS_TIMEOUT_S": "1"}
WORKER_STORY = 400
"""Tokens of the story whose worker is cut off: 2 s at the tests' 200 tokens/s, so the
cut lands mid-stream even when the viewer that triggers it runs late on a loaded
machine (160 tokens last 0.8 s)."""


@pytest.fixture()
def proxy(own_redis: RedisServer) -> Iterator[BlackholeProxy]:
    proxy = BlackholeProxy(own_redis.port).start()
    try:
        yield proxy
    finally:
        proxy.stop()


def under(proxy: BlackholeProxy) -> dict[str, str]:
    """Environment of a process whose Redis connections go through the proxy."""
    return {"TOKENRELAY_REDIS_URL": proxy.url, **QUICK_TIMEOUTS}


async def watch_until_deltas(
    base_url: str, gen_id: str, deltas: int
) -> tuple[asyncio.Task[Viewing], asyncio.Event]:
    """Start a viewer; the event is set once it has seen `deltas` delta events."""
    seen = asyncio.Event()
    count = 0

    def on_event(event: SseEvent) -> None:
        nonlocal count
        if event.event == "delta":
            count += 1
            if count >= deltas:
                seen.set()

    viewer = asyncio.create_task(watch(base_url, gen_id, on_event=on_event))
    await asyncio.wait_for(seen.wait(), 30)
    return viewer, seen


def assert_exact(viewing: Viewing, expected: str) -> None:
    assert viewing.kinds[-1] == "done", viewing.kinds
    assert [k for k in viewing.kinds if k in ("done", "error", "cancelled")] == ["done"]
    assert assemble_text(viewing.events) == expected


async def test_worker_connections_going_half_open_do_not_stall_its_generation(
    procs: Processes, proxy: BlackholeProxy
) -> None:
    """The worker's open connections go mute (new ones still work): the attempt ends,
    and the generation finishes exact in a new one.

    Which of two things ends it depends on which connection a call was on: a publish
    that times out (the worker abandons the attempt), or lease renewals that time out
    until the lease runs out, so that the next publish, on a fresh connection, is
    refused by the fence (`lease_lost`). Either way the first attempt writes nothing
    once its lease may have passed to another worker, and the text stays exact."""
    worker = procs.worker(**under(proxy))
    api = procs.api()
    worker.wait_ready()
    api.wait_ready()

    gen_id = await create(api.base_url, max_tokens=WORKER_STORY)
    viewer, _ = await watch_until_deltas(api.base_url, gen_id, deltas=3)
    proxy.cut()
    viewing = await asyncio.wait_for(viewer, 60)

    expected = expected_story(WORKER_STORY)
    assert_exact(viewing, expected)
    assert viewing.kinds.count("reset") == 1
    final = await status(api.base_url, gen_id)
    assert final["status"] == "completed"
    assert final["content"] == expected
    assert final["attempt"] == 2
    log = worker.log()
    publish_timed_out = "abandoning" in log
    lease_ran_out = "run_generation ● 'lease_lost'" in log and "renewing 1 leases failed" in log
    assert publish_timed_out or lease_ran_out, log


async def test_worker_cut_off_for_good_is_taken_over_and_never_writes_again(
    procs: Processes, proxy: BlackholeProxy
) -> None:
    """Every connection of the worker, old and new, goes mute: its lease runs out,
    another worker takes over, and after the network heals the cut-off worker's
    late writes are refused (fencing), so the text stays exact."""
    cut_off = procs.worker(**under(proxy))
    api = procs.api()
    cut_off.wait_ready()
    api.wait_ready()

    gen_id = await create(api.base_url, max_tokens=WORKER_STORY)
    viewer, _ = await watch_until_deltas(api.base_url, gen_id, deltas=3)
    proxy.cut(new_connections=True)
    survivor = procs.worker()
    survivor.wait_ready()
    viewing = await asyncio.wait_for(viewer, 60)
    proxy.heal()

    expected = expected_story(WORKER_STORY)
    assert_exact(viewing, expected)
    assert "takeover 1 queued" in survivor.log()
    await asyncio.sleep(2)  # the cut-off worker may now reach Redis again: it must not write
    replay = await watch(api.base_url, gen_id)
    assert [e.id for e in replay.events] == [e.id for e in viewing.events]
    final = await status(api.base_url, gen_id)
    assert final["status"] == "completed"
    assert final["content"] == expected


async def test_cancel_ends_a_generation_whose_worker_is_cut_off(
    procs: Processes, proxy: BlackholeProxy
) -> None:
    cut_off = procs.worker(**under(proxy))
    api = procs.api()
    cut_off.wait_ready()
    api.wait_ready()

    gen_id = await create(api.base_url, max_tokens=2000)
    viewer, _ = await watch_until_deltas(api.base_url, gen_id, deltas=3)
    proxy.cut(new_connections=True)
    async with httpx.AsyncClient(base_url=api.base_url, timeout=10) as client:
        answer = await client.post(f"/v1/generations/{gen_id}/cancel")
    assert answer.status_code == 202, answer.text
    survivor = procs.worker()
    survivor.wait_ready()

    viewing = await asyncio.wait_for(viewer, 60)
    assert viewing.kinds[-1] == "cancelled"
    assert (await status(api.base_url, gen_id))["status"] == "cancelled"


@pytest.fixture()
async def listener_via(proxy: BlackholeProxy) -> AsyncIterator[CancelListener]:
    settings = Settings(redis_url=proxy.url, redis_timeout_s=1)
    redis = command_client(settings, "test-cancel-listener")
    store = GenerationStore(redis, retention_s=60, max_stream_events=100)
    listener = CancelListener(store, reply_timeout_s=settings.redis_timeout_s)
    await listener.start()
    try:
        yield listener
    finally:
        await listener.stop()
        await redis.aclose()


async def test_cancel_listener_resubscribes_when_its_subscription_goes_half_open(
    own_redis: RedisServer, proxy: BlackholeProxy, listener_via: CancelListener
) -> None:
    """Only the pub/sub connection goes mute: the listener notices the silence by its
    pings and subscribes again, so a cancel sent later still arrives."""
    direct = command_client(Settings(redis_url=own_redis.url), "test-publisher")
    try:
        # First the subscription must exist (the listener subscribes in the background):
        # cutting before it does would silence nothing, and the test would prove nothing.
        with listener_via.watching("gen_probe") as probe:

            async def subscribed() -> bool:
                await direct.publish("tokenrelay:cancel", "gen_probe")
                return probe.is_set()

            await wait_for(subscribed, timeout_s=20, what="the listener to subscribe")
        with listener_via.watching("gen_x") as cancelled:
            proxy.cut(carrying=b"SUBSCRIBE")
            proxy.heal()  # new connections work: only the subscription is mute
            await asyncio.sleep(0.5)
            await direct.publish("tokenrelay:cancel", "gen_x")

            async def resubscribed_and_heard() -> bool:
                if not cancelled.is_set():
                    await direct.publish("tokenrelay:cancel", "gen_x")
                return cancelled.is_set()

            await wait_for(resubscribed_and_heard, timeout_s=20, what="the cancel to arrive")
        assert proxy.silenced >= 1
    finally:
        await direct.aclose()


async def test_api_shared_reader_going_half_open_turns_unready_and_recovers(
    procs: Processes, proxy: BlackholeProxy
) -> None:
    """Only the hub's blocking reads go mute while commands work: /readyz turns 503,
    the silence shows in the metrics, and once reads get through again the viewers
    continue where they were, with exact text."""
    worker = procs.worker()
    api = procs.api(**under(proxy))
    worker.wait_ready()
    api.wait_ready()

    gen_id = await create(api.base_url, max_tokens=400)
    viewer, _ = await watch_until_deltas(api.base_url, gen_id, deltas=3)
    proxy.cut(carrying=b"XREAD")

    async with httpx.AsyncClient(base_url=api.base_url, timeout=10) as client:

        async def unready() -> bool:
            answer = await client.get("/readyz")
            return answer.status_code == 503 and "stalled" in answer.text

        await wait_for(unready, timeout_s=30, what="/readyz to report the stuck reader")
        metrics = (await client.get("/metrics")).text
        silence = next(
            float(line.split()[-1])
            for line in metrics.splitlines()
            if line.startswith("tokenrelay_hub_reader_silence_seconds ")
        )
        assert silence > 6  # the hub's block time (5 s) plus the reply timeout (1 s)
        proxy.heal()

        async def ready() -> bool:
            return (await client.get("/readyz")).status_code == 200

        await wait_for(ready, timeout_s=30, what="/readyz to recover")
    viewing = await asyncio.wait_for(viewer, 90)
    assert_exact(viewing, expected_story(400))


async def test_an_idle_healthy_subscription_is_kept(
    listener_via: CancelListener, caplog: pytest.LogCaptureFixture
) -> None:
    """The pings keep a quiet subscription answering: it is not mistaken for a mute
    one and torn down every reply timeout."""
    await asyncio.sleep(3.5)  # three and a half reply timeouts without a message
    assert not [r for r in caplog.records if "cancel listener lost Redis" in r.getMessage()]
