"""Queueing and claiming a job in one script each (services/job_wakeups.py), on real Redis.

`queue_job` replaces arq's `enqueue_job` plus the wake-up PUBLISH on the path to the
first token, so it must write exactly what arq reads, refuse an id arq already
knows, and wake the workers listening. `claim_job` replaces arq's WATCH/MULTI claim
in `start_jobs`: a job is claimed once, and never when it is deferred or gone.
"""

from __future__ import annotations

import asyncio

from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus

from services import keys
from services.job_wakeups import claim_job, queue_job
from tests.faults.support import RedisServer


async def test_a_queued_job_is_what_arq_reads_once_per_id_and_wakes_workers(
    own_redis: RedisServer,
) -> None:
    queue = ArqRedis.from_url(own_redis.url)
    listener = queue.pubsub()
    try:
        await listener.subscribe(keys.JOBS_CHANNEL)
        assert (await listener.get_message(timeout=1))["type"] == "subscribe"

        assert await queue_job(queue, "run_generation", "gen_1", job_id="gen_1", queue_name="q")
        job = Job("gen_1", queue, _queue_name="q")
        assert await job.status() == JobStatus.queued
        info = await job.info()
        assert info is not None
        assert (info.function, info.args, info.kwargs) == ("run_generation", ("gen_1",), {})
        ttl_ms = await queue.pttl(b"arq:job:gen_1")
        assert 0 < ttl_ms <= queue.expires_extra_ms  # arq's default expiry, as enqueue_job's
        woken = await listener.get_message(ignore_subscribe_messages=True, timeout=1)
        assert woken is not None and woken["data"] == b"gen_1"  # the id, to claim at once

        # arq already knows the id: nothing written, nobody woken.
        assert not await queue_job(queue, "run_generation", "gen_1", job_id="gen_1", queue_name="q")
        assert await queue.zcard("q") == 1
        await queue.set(b"arq:result:gen_2", b"kept")  # a finished job's result
        assert not await queue_job(queue, "run_generation", "gen_2", job_id="gen_2", queue_name="q")
        await asyncio.sleep(0.1)
        assert await listener.get_message(ignore_subscribe_messages=True, timeout=0.2) is None
    finally:
        await listener.aclose()
        await queue.aclose()


async def test_a_queued_job_is_claimed_once_and_only_when_due(own_redis: RedisServer) -> None:
    queue = ArqRedis.from_url(own_redis.url)
    try:
        assert await queue_job(queue, "run_generation", "gen_1", job_id="gen_1", queue_name="q")
        score = await queue.zscore("q", "gen_1")
        assert score is not None

        claims = await asyncio.gather(
            *(claim_job(queue, "gen_1", queue_name="q", in_progress_ms=60_000) for _ in range(5))
        )
        assert claims.count(None) == 4
        assert [c.score for c in claims if c is not None] == [int(score)]
        job = Job("gen_1", queue, _queue_name="q")
        assert await job.status() == JobStatus.in_progress
        assert 0 < await queue.pttl(b"arq:in-progress:gen_1") <= 60_000

        # Deferred to the future (arq's _defer_by), or not in the queue at all.
        await queue.zadd("q", {"gen_2": 10**14})
        assert await claim_job(queue, "gen_2", queue_name="q", in_progress_ms=60_000) is None
        assert await claim_job(queue, "gen_3", queue_name="q", in_progress_ms=60_000) is None
        assert await queue.exists(b"arq:in-progress:gen_2", b"arq:in-progress:gen_3") == 0
    finally:
        await queue.aclose()
