"""The store's scripts survive a server that has never seen them (a promoted replica).

Redis 7 does not replicate its script cache, so after a failover the new master
answers NOSCRIPT to every EVALSHA. On a Redis Cluster, redis-py's own reload
(SCRIPT LOAD on the masters it knew of, then EVALSHA again) could miss the new
master and surface the NOSCRIPT as a 500; the store sends the script in full
instead (EVAL, routed by its keys), which runs it there and caches it.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

from services.generation import GenerationRequest, Message
from services.store import GenerationStore
from tests.faults.support import RedisServer


async def _commandstats(client: Redis) -> dict[str, int]:
    stats = await client.info("commandstats")
    return {name: int(value["calls"]) for name, value in stats.items()}


async def test_a_script_missing_on_the_server_is_sent_in_full_once(
    own_redis: RedisServer,
) -> None:
    client = Redis.from_url(own_redis.url, decode_responses=True)
    store = GenerationStore(client, retention_s=600, max_stream_events=1000)
    try:
        request = GenerationRequest(model="demo/echo", messages=[Message(role="user", content="x")])
        await store.create("gen_scripts", request, time.time())
        await client.script_flush()  # as a promoted replica: no script cached
        await client.config_resetstat()

        assert (await store.status("gen_scripts")) is not None
        assert (await store.status("gen_scripts")) is not None

        calls = await _commandstats(client)
        assert calls.get("cmdstat_eval") == 1  # sent in full once, cached by it
        assert calls.get("cmdstat_evalsha") == 2  # the miss, then the cached run
        assert "cmdstat_script|load" not in calls
    finally:
        await client.aclose()
