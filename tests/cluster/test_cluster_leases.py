"""Renewing many leases at once on a Redis Cluster: one call per lease, on its own node."""

from __future__ import annotations

from redis.asyncio import Redis

from services.config import Settings
from services.redis_connections import streams_client
from services.store import GenerationStore
from tests.faults.test_lease_keeper import LEASE_MS, begun, pttl
from tests.support.redis_topologies import RedisCluster


async def test_on_a_cluster_each_lease_is_renewed_on_its_own_node(
    cluster: RedisCluster, redis_url: str
) -> None:
    control = Redis.from_url(redis_url, decode_responses=True)
    streams = streams_client(Settings(streams_redis_url=cluster.url), "test-leases", control)
    try:
        store = GenerationStore(streams, control=control, retention_s=60, max_stream_events=1000)
        gen_ids = [await begun(store, f"token-{i}", lease_ms=1_000) for i in range(6)]
        outcomes = await store.renew_leases(
            [(gen_id, f"token-{i}") for i, gen_id in enumerate(gen_ids)]
            + [(gen_ids[0], "not-its-token")],
            LEASE_MS,
        )
        assert outcomes == [True] * 6 + [False]
        for gen_id in gen_ids:
            assert await pttl(store, gen_id) > 30_000
    finally:
        await streams.aclose()
        await control.aclose()
