"""Queueing and claiming a job in one script each (services/job_wakeups.py), on real Redis.

`queue_job` replaces arq's `enqueue_job` plus the wake-up PUBLISH on the path to the
first token, so it must write exactly what arq reads, refuse an id arq already
knows, and wake the workers listening. `claim_job` replaces arq's WATCH/MULTI claim
in `start_jobs`: a job is claimed once, and never when it is deferred or gone.
"""

from __future__ import annotations

import asyncio

import pytest
from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from services import keys
from services.generation import GenerationRequest, Message
from services.job_wakeups import claim_job, queue_job, write_then_queue_job
from services.store import GenerationStore
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


async def test_record_then_queue_in_one_script_writes_what_the_two_steps_write(
    own_redis: RedisServer,
) -> None:
    """On one Redis the API records a generation and queues its job with one script
    (`write_then_queue_job`): the same keys, values and wake-up as `record` then
    `queue_job`, and never the job without the record."""
    queue = ArqRedis.from_url(own_redis.url)
    control = Redis.from_url(own_redis.url, decode_responses=True)
    store = GenerationStore(control, retention_s=3600, max_stream_events=1000, tombstone_s=60)
    listener = queue.pubsub()
    request = GenerationRequest(model="demo/echo", messages=[Message(role="user", content="hé")])
    try:
        await listener.subscribe(keys.JOBS_CHANNEL)
        assert (await listener.get_message(timeout=1))["type"] == "subscribe"
        await store.record("gen_a", request, 1700000000.5, "acme")
        assert await queue_job(queue, "run_generation", "gen_a", job_id="gen_a", queue_name="q")
        call = store.record_call("gen_b", request, 1700000000.5, "acme")
        assert await write_then_queue_job(
            control, call, queue, "run_generation", "gen_b", job_id="gen_b", queue_name="q"
        )

        def renamed(record: dict[str, str]) -> dict[str, str]:
            return {k: v.replace("gen_a", "gen_b") for k, v in record.items()}

        assert renamed(await control.hgetall(keys.meta("gen_a"))) == await control.hgetall(
            keys.meta("gen_b")
        )
        assert await control.get(keys.tombstone("gen_b")) == "acme"
        for gen_id in ("gen_a", "gen_b"):
            assert 0 < await control.pttl(keys.meta(gen_id)) <= 3_600_000
            info = await Job(gen_id, queue, _queue_name="q").info()
            assert info is not None and info.args == (gen_id,)
            woken = await listener.get_message(ignore_subscribe_messages=True, timeout=1)
            assert woken is not None and woken["data"] == gen_id.encode()
        assert await queue.zcard("q") == 2

        # A record that cannot be written (its key holds another type): no job either.
        await control.set(keys.meta("gen_c"), "not a hash")
        call = store.record_call("gen_c", request, 1700000000.5, "acme")
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await write_then_queue_job(
                control, call, queue, "run_generation", "gen_c", job_id="gen_c", queue_name="q"
            )
        assert await queue.exists(b"arq:job:gen_c") == 0
        assert await queue.zcard("q") == 2
        # An id arq already knows: the record is written, the job is not queued twice.
        call = store.record_call("gen_b", request, 1700000001.5, "acme")
        assert not await write_then_queue_job(
            control, call, queue, "run_generation", "gen_b", job_id="gen_b", queue_name="q"
        )
        assert await queue.zcard("q") == 2
    finally:
        await listener.aclose()
        await queue.aclose()
        await control.aclose()


async def test_a_record_that_lists_writes_what_record_then_index_write(
    own_redis: RedisServer,
) -> None:
    """On one Redis the create's script also lists the generation (`record_call(indexed=True)`):
    the same index entries and the same pruning of expired ones as `index`."""
    queue = ArqRedis.from_url(own_redis.url)
    control = Redis.from_url(own_redis.url, decode_responses=True)
    store = GenerationStore(control, retention_s=3600, max_stream_events=1000)
    request = GenerationRequest(model="demo/echo", messages=[Message(role="user", content="hi")])
    created_at = 1700000000.25
    try:
        for index in (keys.RECENT, keys.tenant_recent("acme")):
            await control.zadd(index, {"gen_expired": created_at - 3601, "gen_kept": created_at})
        await store.record("gen_a", request, created_at, "acme")
        await store.index("gen_a", created_at, "acme")
        listed_apart = {
            index: await control.zrange(index, 0, -1, withscores=True)
            for index in (keys.RECENT, keys.tenant_recent("acme"))
        }
        await control.zrem(keys.RECENT, "gen_a")
        await control.zrem(keys.tenant_recent("acme"), "gen_a")

        call = store.record_call("gen_a", request, created_at, "acme", indexed=True)
        assert await write_then_queue_job(
            control, call, queue, "run_generation", "gen_a", job_id="gen_a", queue_name="q"
        )
        for index, entries in listed_apart.items():
            assert await control.zrange(index, 0, -1, withscores=True) == entries
            assert [gen_id for gen_id, _ in entries] == ["gen_a", "gen_kept"]
        assert await control.hget(keys.meta("gen_a"), "tenant") == "acme"

        # A record that cannot be written: neither listed nor queued.
        await control.set(keys.meta("gen_c"), "not a hash")
        call = store.record_call("gen_c", request, created_at, "acme", indexed=True)
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await write_then_queue_job(
                control, call, queue, "run_generation", "gen_c", job_id="gen_c", queue_name="q"
            )
        assert await control.zscore(keys.RECENT, "gen_c") is None
        assert await queue.exists(b"arq:job:gen_c") == 0
    finally:
        await queue.aclose()
        await control.aclose()
