"""A generation that ends leaves the reaper's running index and frees its
tenant's running slot; the worker does both in one round trip, knowing the tenant
from the script that gave it the lease."""

from __future__ import annotations

import time
from functools import partial

from redis.asyncio import Redis

from services import keys
from services.generation import GenerationRequest
from services.store import AttemptGrant, GenerationStore
from tests.faults.support import Processes, RedisServer, create, status
from tests.support.polling import wait_for


async def test_the_lease_comes_with_the_tenant(own_redis: RedisServer) -> None:
    redis = Redis.from_url(own_redis.url, decode_responses=True)
    try:
        store = GenerationStore(redis, retention_s=60, max_stream_events=100)
        request = GenerationRequest.model_validate(
            {"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]}
        )
        await store.create("gen_acme", request, time.time(), tenant="acme")
        grant = await store.begin_attempt("gen_acme", "token", 30_000)
        assert isinstance(grant, AttemptGrant) and grant.tenant == "acme"
    finally:
        await redis.aclose()


async def test_an_ended_generation_is_out_of_the_running_index_and_its_tenant_slot(
    own_redis: RedisServer, procs: Processes
) -> None:
    procs.env["TOKENRELAY_MAX_RUNNING_PER_TENANT"] = "10"  # the slots exist only with a limit
    _, api = procs.ready(workers=1)
    redis = Redis.from_url(own_redis.url, decode_responses=True)
    try:
        gen_ids = []
        for _ in range(3):
            gen_ids.append(await create(api.base_url, max_tokens=40))
            assert await redis.zscore(keys.tenant_running("default"), gen_ids[-1]) is not None
        for gen_id in gen_ids:
            await wait_for(partial(_completed, api.base_url, gen_id), timeout_s=30, what="the end")
        for gen_id in gen_ids:
            assert await redis.zscore(keys.RUNNING, gen_id) is None
            assert await redis.zscore(keys.tenant_running("default"), gen_id) is None
    finally:
        await redis.aclose()


async def _completed(base_url: str, gen_id: str) -> bool:
    return bool((await status(base_url, gen_id))["status"] == "completed")
