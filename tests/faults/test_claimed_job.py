"""A job claimed and read in one script, then run as arq's `run_job` would (real Redis).

`claim_job` (services/job_wakeups.py) does arq's claim and `run_job`'s read of the
job in one step, and indexes a generation's job for the reaper; the worker then
runs the job from what it read (worker/claimed_job.py). What arq's own client reads
back must be what arq's `run_job` would have left: the result, a failure for a job
that expired or ran out of tries, and a job cancelled by a shutdown left queued,
its try counted, to run again.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable
from functools import partial
from typing import Any, cast

import pytest
from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus
from arq.worker import func
from redis.asyncio import Redis

from services import keys
from services.generation import GenerationRequest
from services.job_wakeups import claim_job, queue_job
from services.store import _BEGIN_ATTEMPT, AttemptGrant, GenerationStore
from tests.faults.support import Processes, RedisServer, create, running_worker, status
from tests.support.polling import wait_for
from worker.resilient import ResilientWorker

SEEN: list[tuple[str, int]] = []  # (job id, its try) for each run
RELEASE = asyncio.Event()


async def echo(ctx: dict[str, Any], value: str) -> str:
    SEEN.append((ctx["job_id"], ctx["job_try"]))
    return value


async def boom(ctx: dict[str, Any]) -> None:
    SEEN.append((ctx["job_id"], ctx["job_try"]))
    raise ValueError("the job's own failure")


async def hold(ctx: dict[str, Any]) -> str:
    SEEN.append((ctx["job_id"], ctx["job_try"]))
    await RELEASE.wait()
    return "released"


@pytest.fixture()
async def worker(queue: ArqRedis) -> AsyncIterator[ResilientWorker]:
    SEEN.clear()
    RELEASE.clear()
    functions = [func(echo, name="echo"), func(boom, name="boom"), func(hold, name="hold")]
    options = {"keep_result": 60, "max_tries": 3}
    async with running_worker(queue, functions, release=RELEASE, **options) as worker:
        yield worker


async def test_a_claim_reads_the_job_counts_its_try_and_indexes_its_generation(
    queue: ArqRedis,
) -> None:
    gen_id = keys.new_generation_id()
    for job_id in (gen_id, keys.takeover_job_id(gen_id, 2), "plain-job"):
        assert await queue_job(queue, keys.GENERATION_JOB, gen_id, job_id=job_id, queue_name="q")
    before_ms = time.time() * 1000 - 1  # arq rounds its milliseconds

    claim = await claim_job(queue, gen_id, queue_name="q", in_progress_ms=60_000, check_in_ms=5000)
    assert claim is not None
    assert claim.data == await queue.get(f"arq:job:{gen_id}")
    assert claim.job_try == 1 and int(await queue.get(f"arq:retry:{gen_id}")) == 1
    assert 0 < await queue.ttl(f"arq:retry:{gen_id}") <= 88_400
    assert claim.indexed_generation == gen_id
    check_at = await queue.zscore(keys.RUNNING, gen_id)
    assert check_at is not None and before_ms + 5000 <= check_at <= time.time() * 1000 + 5001
    assert await claim_job(queue, gen_id, queue_name="q", in_progress_ms=60_000) is None

    await queue.delete(keys.RUNNING)
    takeover = await claim_job(
        queue, keys.takeover_job_id(gen_id, 2), queue_name="q", in_progress_ms=1
    )
    assert takeover is not None and takeover.indexed_generation == gen_id
    assert await queue.zscore(keys.RUNNING, gen_id) is not None

    await queue.delete(keys.RUNNING)
    plain = await claim_job(queue, "plain-job", queue_name="q", in_progress_ms=60_000)
    assert plain is not None and plain.indexed_generation is None
    assert await queue.zcard(keys.RUNNING) == 0

    # A job whose data expired while queued: claimed (to be failed), never indexed.
    other = keys.new_generation_id()
    await queue.zadd("q", {other: 1})
    expired = await claim_job(queue, other, queue_name="q", in_progress_ms=60_000)
    assert expired is not None and expired.data is None and expired.indexed_generation is None
    assert await queue.zcard(keys.RUNNING) == 0


async def test_results_and_failures_read_back_by_arq_as_its_run_job_writes_them(
    queue: ArqRedis, worker: ResilientWorker
) -> None:
    done = await queue.enqueue_job("echo", "hello")
    failed = await queue.enqueue_job("boom")
    assert done is not None and failed is not None
    assert await done.result(timeout=10) == "hello"
    with pytest.raises(ValueError, match="the job's own failure"):
        await failed.result(timeout=10)
    for job in (done, failed):
        assert await job.status() == JobStatus.complete
        assert await queue.exists(f"arq:in-progress:{job.job_id}", f"arq:job:{job.job_id}") == 0
        assert await queue.exists(f"arq:retry:{job.job_id}") == 0
    assert await queue.zcard(worker.queue_name) == 0
    assert (worker.jobs_complete, worker.jobs_failed) == (1, 1)

    # Expired before it was claimed: a failed result, no run.
    await queue.zadd(worker.queue_name, {"expired-job": 1})
    expired = Job("expired-job", queue)
    await wait_for_status(expired, JobStatus.complete)
    info = await expired.result_info()
    assert info is not None and not info.success and "job expired" in str(info.result)

    # Out of tries (a worker died with it three times): a failed result, no run.
    await queue.set("arq:retry:tired-job", 3)
    tired = await queue.enqueue_job("echo", "never", _job_id="tired-job")
    assert tired is not None
    await wait_for_status(tired, JobStatus.complete)
    info = await tired.result_info()
    assert info is not None and not info.success
    assert "max 3 retries exceeded" in str(info.result)
    assert [job_id for job_id, _ in SEEN] == [done.job_id, failed.job_id]


async def test_a_job_cancelled_by_a_shutdown_stays_queued_and_runs_again(
    queue: ArqRedis, worker: ResilientWorker
) -> None:
    job = await queue.enqueue_job("hold", _job_id="held")
    assert job is not None
    await wait_for(lambda: ("held", 1) in SEEN, timeout_s=10, what="the job to start")
    worker.tasks["held"].cancel()  # what arq's shutdown does to the jobs it runs
    # Left queued with its try counted; the next poll runs it again, as try 2.
    await wait_for(lambda: ("held", 2) in SEEN, timeout_s=10, what="the job to run again")
    assert worker.jobs_retried == 1
    RELEASE.set()
    assert await job.result(timeout=10) == "released"


async def wait_for_status(job: Job, status: JobStatus, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while await job.status() != status:
        assert time.monotonic() < deadline, f"job {job.job_id} never reached {status}"
        await asyncio.sleep(0.02)


@pytest.fixture()
async def store(own_redis: RedisServer) -> AsyncIterator[GenerationStore]:
    """The generations' store on the queue's Redis (one Redis for both roles)."""
    redis = Redis.from_url(own_redis.url, decode_responses=True)
    try:
        yield GenerationStore(redis, retention_s=60, max_stream_events=100)
    finally:
        await redis.aclose()


async def _queued_generation(queue: ArqRedis, store: GenerationStore) -> str:
    gen_id = keys.new_generation_id()
    request = GenerationRequest.model_validate(
        {"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]}
    )
    await store.create(gen_id, request, time.time(), tenant="acme")
    assert await queue_job(queue, keys.GENERATION_JOB, gen_id, job_id=gen_id, queue_name="q")
    return gen_id


async def _status(store: GenerationStore, gen_id: str) -> str | None:
    return await cast(Awaitable[str | None], store.redis.hget(keys.meta(gen_id), "status"))


async def test_a_claim_on_one_redis_takes_the_generations_lease_in_the_same_script(
    queue: ArqRedis, store: GenerationStore
) -> None:
    gen_id = await _queued_generation(queue, store)
    begin = store.begin_call(gen_id, "token-1", 30_000)

    claim = await claim_job(
        queue, gen_id, queue_name="q", in_progress_ms=60_000, then=begin, max_tries=3
    )

    assert claim is not None and claim.then is not None and claim.indexed_generation == gen_id
    grant = await store.attempt_granted(gen_id, "token-1", claim.then)
    assert isinstance(grant, AttemptGrant)
    assert (grant.attempt, grant.tenant) == (1, "acme")
    assert grant.request.messages[0].content == "hi"
    assert await queue.get(keys.lease(gen_id)) == b"token-1"
    kinds = [fields[b"type"] for _, fields in await queue.xrange(keys.events(gen_id))]
    assert kinds == [b"start"]
    assert await _status(store, gen_id) == "running"


async def test_a_claim_takes_no_lease_for_a_job_that_will_not_run(
    queue: ArqRedis, store: GenerationStore
) -> None:
    # Out of tries: arq fails the job without running it.
    tired = await _queued_generation(queue, store)
    await queue.set(f"arq:retry:{tired}", 3)
    begin = store.begin_call(tired, "token-2", 30_000)
    claim = await claim_job(
        queue, tired, queue_name="q", in_progress_ms=60_000, then=begin, max_tries=3
    )
    assert claim is not None and claim.job_try == 4 and claim.then is None

    # Expired while queued: nothing to run.
    expired = await _queued_generation(queue, store)
    await queue.delete(f"arq:job:{expired}")
    begin = store.begin_call(expired, "token-3", 30_000)
    claim = await claim_job(
        queue, expired, queue_name="q", in_progress_ms=60_000, then=begin, max_tries=3
    )
    assert claim is not None and claim.data is None and claim.then is None

    # Already claimed elsewhere: not this worker's, and nothing of it is touched.
    taken = await _queued_generation(queue, store)
    await queue.set(f"arq:in-progress:{taken}", b"1")
    begin = store.begin_call(taken, "token-4", 30_000)
    assert (
        await claim_job(
            queue, taken, queue_name="q", in_progress_ms=60_000, then=begin, max_tries=3
        )
        is None
    )

    for gen_id in (tired, expired, taken):
        assert await queue.exists(keys.lease(gen_id)) == 0
        assert await queue.xlen(keys.events(gen_id)) == 0
        assert await _status(store, gen_id) == "queued"


async def test_a_worker_on_one_redis_begins_every_attempt_in_its_claim(
    own_redis: RedisServer, procs: Processes
) -> None:
    """End to end: the separate `begin_attempt` script never runs on that Redis."""
    _, api = procs.ready(workers=1)
    gen_ids = [await create(api.base_url, model="demo/echo") for _ in range(3)]
    redis = Redis.from_url(own_redis.url, decode_responses=True)
    try:
        for gen_id in gen_ids:
            await wait_for(
                partial(_finished, api.base_url, gen_id), timeout_s=20, what="the generation"
            )
            assert (await status(api.base_url, gen_id))["attempt"] == 1
        begin_sha = hashlib.sha1(_BEGIN_ATTEMPT.encode()).hexdigest()
        assert await redis.script_exists(begin_sha) == [False]
    finally:
        await redis.aclose()


async def _finished(base_url: str, gen_id: str) -> bool:
    return bool((await status(base_url, gen_id))["status"] == "completed")
