"""A worker takes jobs only while its event loop keeps up (worker/load.py).

Run in this test's own event loop on a Redis of its own: the loop is made to fall
behind for real (blocking sleeps, as CPU-bound work does), and a job queued
meanwhile must stay queued for a worker with room; once the loop keeps up again,
it is taken. A worker running nothing takes a job however loaded it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.jobs import Job
from arq.worker import func

from tests.faults.support import running_worker
from tests.support.polling import wait_for
from worker.load import LoopLag
from worker.resilient import ResilientWorker

RELEASE = asyncio.Event()
STARTED: list[str] = []


async def hold(ctx: dict[str, Any]) -> str:
    STARTED.append(ctx["job_id"])
    await RELEASE.wait()
    return "released"


@contextlib.asynccontextmanager
async def behind(block_s: float = 0.12) -> AsyncIterator[None]:
    """Keep this event loop busy: each turn of the hog blocks it for `block_s`."""

    async def hog() -> None:
        while True:
            time.sleep(block_s)  # noqa: ASYNC251  # on purpose: what CPU-bound work does to timers
            await asyncio.sleep(0)

    task = asyncio.create_task(hog())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_loop_lag_notices_a_loop_that_falls_behind_and_one_that_recovers() -> None:
    lag = LoopLag(interval_s=0.02)
    lag.start()
    try:
        await asyncio.sleep(0.3)
        assert not lag.saturated
        async with behind():
            await wait_for(lambda: lag.saturated, timeout_s=5, what="the lag to show")
        await wait_for(lambda: not lag.saturated, timeout_s=5, what="the lag to clear")
    finally:
        await lag.stop()


@pytest.fixture()
async def worker(queue: ArqRedis) -> AsyncIterator[ResilientWorker]:
    RELEASE.clear()
    STARTED.clear()
    functions = [func(hold, name="hold")]
    async with running_worker(queue, functions, release=RELEASE, max_jobs=10) as worker:
        yield worker


def started(job: Job | None) -> bool:
    assert job is not None
    return job.job_id in STARTED


async def test_a_worker_behind_leaves_new_jobs_queued_until_it_keeps_up(
    queue: ArqRedis, worker: ResilientWorker
) -> None:
    first = await queue.enqueue_job("hold")
    await wait_for(lambda: started(first), timeout_s=10, what="the first job to start")
    async with behind():
        await wait_for(lambda: worker.load.saturated, timeout_s=5, what="the lag to show")
        second = await queue.enqueue_job("hold")
        await asyncio.sleep(3.0)  # many polls' worth, even at 0.12 s a turn of the loop
        assert not started(second)
        assert worker.job_counter == 1

    await wait_for(lambda: started(second), timeout_s=10, what="the second job, caught up")


async def test_a_worker_running_nothing_takes_a_job_however_loaded(
    queue: ArqRedis, worker: ResilientWorker
) -> None:
    async with behind():
        await wait_for(lambda: worker.load.saturated, timeout_s=5, what="the lag to show")
        job = await queue.enqueue_job("hold")
        await wait_for(lambda: started(job), timeout_s=10, what="the job, on an idle worker")
