"""A Redis at its `maxmemory` (with `noeviction`, as tokenrelay requires) refuses writes.

That is the operator's capacity, not the request's fault and not a bug: every front
door answers a 503 in its own shape with `Retry-After`, queues nothing, logs no
"unhandled error", and works again as soon as Redis has room.
"""

from __future__ import annotations

import httpx
from redis.asyncio import Redis

from tests.faults.support import Processes, RedisServer

# `own_redis` is the imported fixture: each test runs on the PATH's Redis and on 6.2
from tests.faults.support import own_redis_on_each_version as own_redis_on_each_version

ASK = {"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]}


async def test_a_full_redis_is_a_503_in_every_shape_and_passes(
    procs: Processes, own_redis: RedisServer
) -> None:
    _, api = procs.ready(workers=1)
    redis = Redis.from_url(own_redis.url)
    try:
        async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as client:
            running = (await client.post("/v1/generations", json=ASK)).json()["id"]
            await redis.config_set("maxmemory-policy", "noeviction")
            await redis.config_set("maxmemory", "1")
            queued_before = await redis.zcard("tokenrelay:queue")
            answers = {
                "native": await client.post("/v1/generations", json=ASK),
                "openai": await client.post("/v1/chat/completions", json=ASK),
                "anthropic": await client.post("/v1/messages", json={**ASK, "max_tokens": 5}),
                "cancel": await client.post(f"/v1/generations/{running}/cancel"),
            }
            assert await redis.zcard("tokenrelay:queue") == queued_before
            await redis.config_set("maxmemory", "0")
            assert (await client.post("/v1/generations", json=ASK)).status_code == 202
    finally:
        await redis.config_set("maxmemory", "0")
        await redis.aclose()
    for door, answer in answers.items():
        assert answer.status_code == 503, (door, answer.text)
        assert answer.headers["retry-after"] == "5", door
        assert "maxmemory" in answer.text, door
    assert answers["native"].json()["error"]["type"] == "unavailable"
    assert answers["openai"].json()["error"]["type"] == "unavailable"
    assert answers["anthropic"].json()["error"]["type"] == "overloaded_error"
    assert "unhandled error" not in api.log()
    assert "Traceback" not in api.log()
