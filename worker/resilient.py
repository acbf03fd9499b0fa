"""An arq worker that waits out Redis outages instead of exiting.

arq's poll loop lets any Redis error escape `Worker.main`, so a Redis restart
would end the worker process, and a supervisor would restart it into the same
error again and again. This subclass catches Redis errors around one poll
iteration, logs the outage once, backs off, and carries on when Redis answers;
jobs already running keep their own handling (worker/jobs.py). At start-up it
also waits for Redis as long as it takes, rather than arq's five seconds.

Its Redis client is built by services/redis_connections.py, not by arq, whose
own pool has no reply timeout: a poll on a half-open connection would otherwise
wait forever, and the worker would never pick up a job again.

It also takes jobs only while its event loop keeps up (worker/load.py), at most
`JOBS_PER_POLL` at a time, so a burst of requests spreads over the workers that
have room instead of piling onto the first one to poll.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from arq.worker import Worker

from services import keys
from services.background import Backoff, until_redis_answers
from services.job_wakeups import ClaimedJob, JobWakeups, claim_job
from services.redis_connections import is_redis_failure
from services.script_call import ScriptCall
from worker.claimed_job import run_claimed_job
from worker.load import LoopLag

log = logging.getLogger(__name__)

BEGIN_WITH_CLAIM = "begin_with_claim"
"""The job context's key for `(gen_id) -> (lease token, begin_attempt call)`, set at
start-up when the queue and the generations share one Redis: the claim of a
generation's job then takes its lease in the same script (worker/main.py)."""

JOBS_PER_POLL = 50
"""Jobs started in one poll: the loop's lag is looked at again before the next ones."""
_SLICE = 10


class ResilientWorker(Worker):
    def __init__(
        self, *args: Any, reply_timeout_s: float = 5.0, check_in_ms: int = 0, **kwargs: Any
    ) -> None:
        """`check_in_ms`: when the reaper first checks a generation this worker claimed
        (its lease's length: the lease is renewed well before)."""
        super().__init__(*args, **kwargs)
        self._check_in_ms = check_in_ms
        self._down_since: float | None = None
        self._backoff = Backoff(first_s=0.1, cap_s=5.0)
        self._reply_timeout_s = reply_timeout_s
        self._wakeups: JobWakeups | None = None
        self.load = LoopLag()
        # Set when this worker had no room for a job it saw (at `max_jobs`, or its
        # loop behind): the next job to end then looks at the queue at once. Any
        # other job end does not: a listing of the queue includes every running
        # job (arq keeps them there until they end), so a listing per job end
        # made each end cost in proportion to the jobs running.
        self._left_queued = False
        # arq's poll lists the whole queue, running jobs included: a wake-up whose
        # jobs were all started skips it unless the last one is `poll_delay` old.
        self._listed_at = float("-inf")

    async def main(self) -> None:
        """arq's `main`, but the poll waits for a job to be announced
        (services/job_wakeups.py), `poll_delay` being only the fallback pace."""
        await self._until_redis_answers()
        log.info(
            "Starting worker for %d functions: %s", len(self.functions), ", ".join(self.functions)
        )
        self.ctx["redis"] = self.pool
        self.ctx["load"] = self.load
        wakeups = self._wakeups = JobWakeups(self.pool, reply_timeout_s=self._reply_timeout_s)
        wakeups.start()
        self.load.start()
        try:
            if self.on_startup:
                await self.on_startup(self.ctx)
            while True:
                await self._poll_iteration()
                await wakeups.wait(self.poll_delay_s)
        finally:
            await self.load.stop()
            await wakeups.stop()

    def _slot_freed(self, _: asyncio.Task[None]) -> None:
        """After arq's own callback has counted the job out: take a job left queued now."""
        if self._left_queued and self._wakeups is not None:
            self._left_queued = False
            self._wakeups.poke()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """arq's `start_jobs`, for the jobs this process can carry now (worker/load.py).

        arq lists running jobs with the queued ones (a job leaves the queue when it
        ends), so the ids go through in small slices until `JOBS_PER_POLL` have
        started here or the loop falls behind; the rest stay queued, untouched
        (arq claims a job only when it starts it).
        """
        running_before = self.job_counter
        for at in range(0, len(job_ids), _SLICE):
            if self.job_counter > 0 and self.load.saturated:
                self._left_queued = True
                return
            if self.job_counter - running_before >= JOBS_PER_POLL:
                if self._wakeups is not None:
                    self._wakeups.poke()  # more may be waiting: look again after this turn
                return
            await self._claim_and_start(job_ids[at : at + _SLICE])

    async def _claim_and_start(self, job_ids: list[bytes]) -> None:
        """arq's own `start_jobs` loop, with its four-round-trip claim (WATCH, EXISTS,
        ZSCORE, MULTI/EXEC) and `run_job`'s read of the job done by one script
        (services/job_wakeups.py `claim_job`); the job then runs from what it read
        (worker/claimed_job.py)."""
        for job_id_b in job_ids:
            job_id = job_id_b.decode()
            running = self.tasks.get(job_id)
            if running is not None and not running.done():
                continue  # arq lists running jobs too: this one is ours already
            await self.sem.acquire()
            if self.job_counter >= self.max_jobs:
                self.sem.release()
                self._left_queued = True
                return
            self.job_counter += 1
            claim: ClaimedJob | None = None
            begin = self._begin_with_claim(job_id)
            try:
                claim = await claim_job(
                    self.pool,
                    job_id,
                    queue_name=self.queue_name,
                    in_progress_ms=int(self.in_progress_timeout_s * 1000),
                    check_in_ms=self._check_in_ms,
                    then=begin[1] if begin is not None else None,
                    max_tries=self._generation_max_tries,
                )
            finally:  # not claimed, or Redis failed: the slot must not leak
                if claim is None:
                    self.job_counter -= 1
                    self.sem.release()
            if claim is None:  # running elsewhere, finished, or deferred
                continue
            token = begin[0] if begin is not None else None
            task = self.loop.create_task(run_claimed_job(self, job_id, claim, token))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            task.add_done_callback(self._slot_freed)  # runs after it, so the slot is free
            self.tasks[job_id] = task

    def _begin_with_claim(self, job_id: str) -> tuple[str, ScriptCall] | None:
        """A generation job's `begin_attempt`, to run inside its claim, where one Redis allows."""
        begins: Callable[[str], tuple[str, ScriptCall]] | None = self.ctx.get(BEGIN_WITH_CLAIM)
        gen_id = keys.generation_of_job(job_id)
        return begins(gen_id) if begins is not None and gen_id is not None else None

    @functools.cached_property
    def _generation_max_tries(self) -> int:
        """arq's limit for a generation job: past it, the job fails without running."""
        function = self.functions.get(keys.GENERATION_JOB)
        limit = function.max_tries if function is not None else None
        return limit if limit is not None else self.max_tries

    async def _until_redis_answers(self) -> None:
        await until_redis_answers(self.pool.ping, what="worker start-up", log=log)

    async def _poll_iteration(self) -> None:
        """Claim the jobs announced since the last turn, then arq's poll (which also
        cleans up finished tasks and aborts): an announced job starts one round
        trip after its wake-up instead of after a listing of the whole queue. The
        listing itself, for jobs nobody announced, runs at most once per
        `poll_delay` unless a job was left queued here or the turn had no wake-up."""
        try:
            announced = self._wakeups.take_announced() if self._wakeups is not None else []
            if announced:
                await self.start_jobs(announced)
            if self.job_counter >= self.max_jobs:
                self._left_queued = True  # arq lists nothing then: there may be jobs waiting
            now = time.monotonic()
            if announced and not self._left_queued and now - self._listed_at < self.poll_delay_s:
                return  # the wake-up's jobs are started; the listing keeps its own pace
            self._listed_at = now
            await super()._poll_iteration()
        except Exception as exc:
            if not is_redis_failure(exc):
                raise
            if self._down_since is None:
                self._down_since = time.monotonic()
                log.warning("Redis unavailable (%s); pausing job pickup", type(exc).__name__)
            await self._backoff.sleep()
            return
        if self._down_since is not None:
            log.info("Redis is back after %.1fs; resuming", time.monotonic() - self._down_since)
            self._down_since = None
            self._backoff.reset()
