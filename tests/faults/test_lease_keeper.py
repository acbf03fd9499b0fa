"""One renewal for every running attempt's lease (worker/lease_keeper.py), on real Redis.

Leases held are renewed together; a lease another attempt took is reported lost
(and only that one); a released lease is left to expire; a Redis that does not
answer costs a warning and a retry at the next tick, never a lease reported lost.
(On a Redis Cluster: tests/cluster/test_cluster_leases.py.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from services import keys
from services.store import GenerationStore
from tests.faults.support import RedisServer, begun_generation
from tests.support.polling import wait_for
from worker.lease_keeper import LeaseKeeper

LEASE_MS = 60_000


@pytest.fixture()
async def store(own_redis: RedisServer) -> AsyncIterator[GenerationStore]:
    redis = Redis.from_url(own_redis.url, decode_responses=True)
    try:
        yield GenerationStore(redis, retention_s=60, max_stream_events=1000)
    finally:
        await redis.aclose()


async def begun(store: GenerationStore, token: str, lease_ms: int = LEASE_MS) -> str:
    return await begun_generation(store, token, lease_ms)


async def pttl(store: GenerationStore, gen_id: str) -> int:
    return int(await store.redis.pttl(keys.lease(gen_id)))


async def test_held_leases_are_renewed_together_and_a_taken_one_is_reported_lost(
    store: GenerationStore,
) -> None:
    keeper = LeaseKeeper(store, lease_ms=LEASE_MS, interval_s=3600)
    gen_ids = [await begun(store, f"token-{i}", lease_ms=1_000) for i in range(3)]
    lost = [keeper.hold(gen_id, f"token-{i}") for i, gen_id in enumerate(gen_ids)]
    # Another attempt holds the second generation's lease now.
    await store.redis.set(keys.lease(gen_ids[1]), "someone-else", px=1_000)

    await keeper.renew_now()

    assert [event.is_set() for event in lost] == [False, True, False]
    assert await pttl(store, gen_ids[0]) > 30_000
    assert await pttl(store, gen_ids[2]) > 30_000
    assert await pttl(store, gen_ids[1]) <= 1_000  # the other attempt's lease, untouched
    assert await store.redis.get(keys.lease(gen_ids[1])) == "someone-else"


async def test_a_released_lease_is_left_to_expire(store: GenerationStore) -> None:
    keeper = LeaseKeeper(store, lease_ms=LEASE_MS, interval_s=3600)
    kept, released = await begun(store, "token-a", 1_000), await begun(store, "token-b", 1_000)
    keeper.hold(kept, "token-a")
    keeper.hold(released, "token-b")
    keeper.release(released, "token-b")

    await keeper.renew_now()

    assert await pttl(store, kept) > 30_000
    assert await pttl(store, released) <= 1_000


async def test_an_unanswering_redis_loses_no_lease(store: GenerationStore) -> None:
    gen_id = await begun(store, "token-a")
    dead = Redis.from_url(
        "redis://127.0.0.1:1/0", decode_responses=True, socket_connect_timeout=0.5
    )
    try:
        keeper = LeaseKeeper(
            GenerationStore(dead, retention_s=60, max_stream_events=1000),
            lease_ms=LEASE_MS,
            interval_s=3600,
        )
        lost = keeper.hold(gen_id, "token-a")
        await keeper.renew_now()  # fails, logs, and keeps the lease for the next tick
        assert not lost.is_set()
    finally:
        await dead.aclose()


async def test_the_loop_renews_on_its_own(store: GenerationStore) -> None:
    keeper = LeaseKeeper(store, lease_ms=LEASE_MS, interval_s=0.05)
    gen_id = await begun(store, "token-a", lease_ms=2_000)
    keeper.hold(gen_id, "token-a")
    keeper.start()
    try:
        await wait_for(lambda: renewed(store, gen_id), what="the loop's renewal")
    finally:
        await keeper.stop()


async def renewed(store: GenerationStore, gen_id: str) -> bool:
    return await pttl(store, gen_id) > 2_000
