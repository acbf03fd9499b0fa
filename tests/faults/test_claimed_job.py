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
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus
from arq.worker import func

from services import keys
from services.job_wakeups import claim_job, queue_job
from tests.faults.support import running_worker
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
