"""The reaper's decisions on real Redis, one step at a time (no worker processes).

The process-level scenarios cover the common path (a worker dies, a takeover job
runs); these cover the rarer ones: a takeover job still waiting for a free worker
is not counted twice, a takeover job lost with its worker is replaced, and a
stale index entry is dropped.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable
from typing import cast

import pytest
from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus
from redis.asyncio import Redis

from services import keys
from services.config import Settings
from services.generation import GenerationRequest
from services.store import AttemptGrant, EventBatch, GenerationStore
from tests.faults.support import RedisServer
from tests.support.polling import wait_for
from worker.reaper import Reaper

LEASE_MS = 300


@pytest.fixture()
async def parts(own_redis: RedisServer) -> AsyncIterator[tuple[GenerationStore, ArqRedis, Reaper]]:
    redis = Redis.from_url(own_redis.url, decode_responses=True)
    queue = ArqRedis.from_url(own_redis.url)
    settings = Settings(redis_url=own_redis.url, lease_s=LEASE_MS / 1000, max_takeovers=2)
    store = GenerationStore(redis, retention_s=60, max_stream_events=1000)
    try:
        yield store, queue, Reaper(store, queue, settings, keys.GENERATION_JOB)
    finally:
        await queue.aclose()
        await redis.aclose()


async def started(store: GenerationStore, token: str = "token-1") -> str:
    gen_id = keys.new_generation_id()
    request = GenerationRequest.model_validate(
        {"model": "demo/story", "messages": [{"role": "user", "content": "hi"}]}
    )
    await store.create(gen_id, request, time.time())
    await store.track_running(gen_id, LEASE_MS)
    grant = await store.begin_attempt(gen_id, token, LEASE_MS)
    assert isinstance(grant, AttemptGrant)
    assert await store.publish(gen_id, token, EventBatch([("delta", "{}")], "some ")) == "ok"
    return gen_id


async def lease_gone(store: GenerationStore, gen_id: str) -> bool:
    return not await store.redis.exists(keys.lease(gen_id))


async def decided_long_ago(store: GenerationStore, gen_id: str) -> None:
    """Backdate the pending takeover, as if its job had had all the time it needs."""
    # redis-py types hash commands for sync and async clients alike; this one is async.
    await cast(Awaitable[int], store.redis.hset(keys.meta(gen_id), "takeover_at", "0"))


async def meta_field(store: GenerationStore, gen_id: str, name: str) -> str | None:
    return await cast(Awaitable[str | None], store.redis.hget(keys.meta(gen_id), name))


async def due_now(store: GenerationStore, gen_id: str) -> None:
    await store.redis.zadd(keys.RUNNING, {gen_id: 0})


async def test_takeover_job_waiting_for_a_worker_is_not_counted_again(
    parts: tuple[GenerationStore, ArqRedis, Reaper],
) -> None:
    store, queue, reaper = parts
    gen_id = await started(store)
    await due_now(store, gen_id)
    # The lease still runs (held for as long as this check may take on a busy machine).
    await store.redis.pexpire(keys.lease(gen_id), 60_000)
    assert await reaper.reap_once() == {gen_id: "alive"}

    await store.redis.pexpire(keys.lease(gen_id), 1)  # and then it runs out
    await wait_for(lambda: lease_gone(store, gen_id), what="lease expiry")
    await due_now(store, gen_id)
    assert await reaper.reap_once() == {gen_id: "requeue"}
    job = Job(keys.takeover_job_id(gen_id, 1), queue, _queue_name="tokenrelay:queue")
    assert await job.status() == JobStatus.queued

    await decided_long_ago(store, gen_id)  # decided long ago
    await due_now(store, gen_id)
    assert await reaper.reap_once() == {gen_id: "waiting"}
    assert await meta_field(store, gen_id, "takeovers") == "1"


async def test_takeover_job_lost_with_its_worker_is_replaced_until_worker_lost(
    parts: tuple[GenerationStore, ArqRedis, Reaper],
) -> None:
    store, queue, reaper = parts
    gen_id = await started(store)
    await wait_for(lambda: lease_gone(store, gen_id), what="lease expiry")
    for takeover in (1, 2):
        await due_now(store, gen_id)
        assert await reaper.reap_once() == {gen_id: "requeue"}
        # The worker that picked the job up died before taking the lease.
        await queue.delete(f"arq:job:{keys.takeover_job_id(gen_id, takeover)}")
        await queue.zrem("tokenrelay:queue", keys.takeover_job_id(gen_id, takeover))
        await decided_long_ago(store, gen_id)
    await due_now(store, gen_id)
    assert await reaper.reap_once() == {gen_id: "exhausted"}

    final = await store.status(gen_id)
    assert final is not None
    assert final.status == "failed" and final.error is not None
    assert final.error.type == "worker_lost"
    assert await store.redis.zscore(keys.RUNNING, gen_id) is None
    kinds = [e.type for e in await store.read_after(gen_id, "0-0")]
    assert kinds == ["start", "delta", "error"]


async def test_attempts_handed_back_do_not_spend_the_lost_worker_budget(
    parts: tuple[GenerationStore, ArqRedis, Reaper],
) -> None:
    """A worker that stops on purpose (a Redis outage under it, or a shutdown) hands
    its attempt back: a cluster failover can do that to one generation several times
    in a few seconds, and it must not end as worker_lost. Lost ones still count, and
    so does a release after an error that is not an outage."""
    store, _, reaper = parts
    gen_id = await started(store, token="token-0")
    for attempt in range(1, 6):  # more hand-backs than max_takeovers (2)
        assert await store.hand_back(gen_id, f"token-{attempt - 1}")
        await due_now(store, gen_id)
        assert await reaper.reap_once() == {gen_id: "requeue"}
        grant = await store.begin_attempt(gen_id, f"token-{attempt}", LEASE_MS)
        assert isinstance(grant, AttemptGrant) and grant.attempt == attempt + 1
    assert await meta_field(store, gen_id, "takeovers") == "5"  # the takeover jobs' numbers

    # Then two attempts are lost, and the budget is whole: one released as a failure
    # that could recur (a script error, a full Redis), one whose lease expired.
    assert await store.release_lease(gen_id, f"token-{attempt}")
    for _ in range(2):
        await wait_for(lambda: lease_gone(store, gen_id), what="lease expiry")
        await due_now(store, gen_id)
        assert await reaper.reap_once() == {gen_id: "requeue"}
        attempt += 1
        assert isinstance(
            await store.begin_attempt(gen_id, f"token-{attempt}", LEASE_MS), AttemptGrant
        )
    await wait_for(lambda: lease_gone(store, gen_id), what="lease expiry")
    await due_now(store, gen_id)
    assert await reaper.reap_once() == {gen_id: "exhausted"}


async def test_finished_or_expired_entries_leave_the_index(
    parts: tuple[GenerationStore, ArqRedis, Reaper],
) -> None:
    store, _, reaper = parts
    finished = await started(store)
    done = EventBatch([("done", '{"finish_reason":"stop"}')], terminal_status="completed")
    assert await store.publish(finished, "token-1", done) == "ok"
    vanished = keys.new_generation_id()
    await store.track_running(vanished, 0)
    await due_now(store, finished)

    assert await reaper.reap_once() == {finished: "gone", vanished: "gone"}
    assert await store.redis.zcard(keys.RUNNING) == 0
