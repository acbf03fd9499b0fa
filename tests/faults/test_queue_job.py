"""Queueing a job in one script (services/job_wakeups.py `queue_job`), on real Redis.

It replaces arq's `enqueue_job` plus the wake-up PUBLISH on the path to the first
token, so it must write exactly what arq reads, refuse an id arq already knows,
and wake the workers listening.
"""

from __future__ import annotations

import asyncio

from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus

from services import keys
from services.job_wakeups import queue_job
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
        assert woken is not None and woken["data"] == b"1"

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
