"""When a job ends, the worker looks at the queue only if it left a job there.

A listing of arq's queue includes every running job (they stay in it until they
end), so listing it at every job end made each end cost in proportion to the
jobs running: quadratic at a thousand generations. A worker that had no room for
a job must still take it as soon as a slot frees, without waiting for its
fallback poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from arq.connections import ArqRedis
from arq.constants import default_queue_name
from arq.worker import func
from redis.asyncio import Redis

from services.job_wakeups import queue_job
from tests.faults.support import RedisServer
from tests.support.polling import wait_for
from worker.resilient import ResilientWorker

GATES: dict[str, asyncio.Event] = {}
STARTED: list[str] = []


async def gated(ctx: dict[str, Any], _: str) -> str:
    STARTED.append(ctx["job_id"])
    await GATES.setdefault(ctx["job_id"], asyncio.Event()).wait()
    return "ok"


@contextlib.asynccontextmanager
async def worker_without_fallback_poll(
    queue: ArqRedis, max_jobs: int
) -> AsyncIterator[ResilientWorker]:
    """A worker whose fallback poll is 30 s away: only wake-ups and pokes start jobs."""
    GATES.clear()
    STARTED.clear()
    worker = ResilientWorker(
        functions=[func(gated, name="gated")],
        redis_pool=queue,
        poll_delay=30,
        handle_signals=False,
        max_jobs=max_jobs,
    )
    running = asyncio.create_task(worker.main())
    try:
        yield worker
    finally:
        for job_id in STARTED:
            GATES.setdefault(job_id, asyncio.Event()).set()
        await wait_for(lambda: worker.job_counter == 0, timeout_s=10, what="the jobs to end")
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


async def announce(queue: ArqRedis) -> str:
    """Queue a job as the API does: with the wake-up that starts it without a poll."""
    job_id = uuid.uuid4().hex
    assert await queue_job(queue, "gated", job_id, job_id=job_id, queue_name=default_queue_name)
    return job_id


async def queue_listings(redis_url: str) -> int:
    redis = Redis.from_url(redis_url)
    try:
        stats = await redis.info("commandstats")
    finally:
        await redis.aclose()
    return int(stats.get("cmdstat_zrangebyscore", {}).get("calls", 0))


async def test_a_job_left_queued_for_want_of_a_slot_starts_when_one_frees(
    queue: ArqRedis,
) -> None:
    async with worker_without_fallback_poll(queue, max_jobs=1):
        first = await announce(queue)
        await wait_for(lambda: first in STARTED, timeout_s=10, what="the first job")
        second = await announce(queue)
        await asyncio.sleep(0.5)
        assert second not in STARTED  # no room for it
        GATES.setdefault(first, asyncio.Event()).set()
        await wait_for(lambda: second in STARTED, timeout_s=10, what="the second job")


async def test_jobs_ending_with_nothing_left_queued_do_not_list_the_queue(
    queue: ArqRedis, own_redis: RedisServer
) -> None:
    async with worker_without_fallback_poll(queue, max_jobs=10) as worker:
        jobs = [await announce(queue) for _ in range(5)]
        await wait_for(lambda: len(STARTED) == 5, timeout_s=10, what="the jobs to start")
        listings = await queue_listings(own_redis.url)
        for job_id in jobs:
            GATES.setdefault(job_id, asyncio.Event()).set()
        await wait_for(lambda: worker.job_counter == 0, timeout_s=10, what="the jobs to end")
        await asyncio.sleep(0.3)
        assert await queue_listings(own_redis.url) == listings
