"""Takeover of generations whose worker died: every worker runs one `Reaper`.

A worker holds a short lease (`TOKENRELAY_LEASE_S`) on the attempt it runs and
renews it; a worker that is SIGKILLed, OOM-killed, paused or cut off stops
renewing and its lease key expires in Redis. arq alone would run the job again
only when its in-progress key expires (the job timeout: hours), so each worker
also runs this loop, every `TOKENRELAY_REAP_INTERVAL_S` (with jitter), which
finds generations without a lease and, in one Lua script on the generation's own
keys (`GenerationStore.take_over`), either

- ends it `cancelled` when a cancel was requested (nobody else would),
- ends it with `error` `worker_lost` once `TOKENRELAY_MAX_TAKEOVERS` is spent, or
- counts a takeover and enqueues a new arq job for it, with the job id
  `{gen_id}:takeover{n}`. The new attempt starts with the ordinary
  `begin_attempt`, which announces `reset` when the lost attempt had output and
  refuses a second holder ('busy'), so duplicate takeover jobs (two reapers, or
  arq's at-least-once delivery) can never run two attempts at once.

A lost generation is therefore taken over within about `lease_s + reap_interval_s`
(12 s with the defaults) plus the time a free worker needs to pick the job up.

Finding them: the running index (`keys.RUNNING`), a sorted set of generation ids
scored by when their lease should next be checked. It is one global key, so it
cannot be written inside the generation's scripts (a Redis Cluster script may only
touch keys of one hash slot, and every generation has its own slot). It is written
beside them instead, in an order that keeps it a superset of what needs watching:
a worker adds the generation *before* `begin_attempt` takes the lease, and removes
it only after writing the terminal event; the reaper removes entries it finds
finished or expired and pushes live ones to their lease's expiry. A crash between
two of these steps leaves at worst a stale entry, which the next check drops; it
never leaves a running generation unindexed. The decision itself is taken inside
the generation's slot, atomically with the lease check, so the index being a step
behind can cost a wasted check, never a wrong takeover. (Per-slot indexes would
spread the key over a cluster, at the price of scanning 16384 of them; one sorted
set is small: one member per generation in flight.)
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Literal

from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus

from services import keys
from services.background import BackgroundLoop
from services.config import Settings
from services.job_wakeups import queue_job
from services.limits import release_generation
from services.redis_connections import is_redis_failure
from services.store import GenerationStore, TakeoverDecision, TakeoverKind

log = logging.getLogger(__name__)

BATCH = 200
"""Generations checked per round; the rest wait for the next round."""

ReapOutcome = TakeoverKind | Literal["waiting"]


class Reaper:
    """Periodically takes over generations whose lease expired."""

    def __init__(
        self, store: GenerationStore, queue: ArqRedis, settings: Settings, job_name: str
    ) -> None:
        self._store = store
        self._queue = queue
        self._settings = settings
        self._job_name = job_name
        self._lease_ms = int(settings.lease_s * 1000)
        self._task = BackgroundLoop("reaper", self._loop)

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def _loop(self) -> None:
        interval = self._settings.reap_interval_s
        redis_down = False
        while True:
            # Jitter keeps the reapers of many workers from checking in lockstep.
            await asyncio.sleep(interval * random.uniform(0.5, 1.0))
            try:
                await self.reap_once()
            except Exception as exc:
                if not is_redis_failure(exc):
                    raise
                if not redis_down:
                    log.warning("reaper: Redis unavailable (%s); will retry", type(exc).__name__)
                redis_down = True
            else:
                redis_down = False

    async def reap_once(self) -> dict[str, ReapOutcome]:
        """Check every generation whose lease is due; returns what was done to each."""
        outcomes: dict[str, ReapOutcome] = {}
        failures: list[Exception] = []
        for gen_id in await self._store.due_for_check(BATCH):
            try:
                outcomes[gen_id] = await self._check(gen_id)
            except Exception as exc:
                if not is_redis_failure(exc):
                    raise
                # One generation out of reach (its cluster master is down) must not
                # hold up the others: it stays due and is checked again next round.
                failures.append(exc)
        if failures and not outcomes:
            raise failures[0]  # nothing answered: an outage, as the loop reports it
        return outcomes

    async def _check(self, gen_id: str) -> ReapOutcome:
        decision = await self._decide(gen_id)
        if decision.kind == "alive":
            await self._store.reschedule_check(gen_id, decision.lease_ttl_ms or self._lease_ms)
        elif decision.kind == "pending":
            await self._store.reschedule_check(gen_id, self._lease_ms)
            return "waiting"
        elif decision.kind == "requeue":
            # The next check is due after the new attempt's first lease would run out.
            await self._store.reschedule_check(gen_id, 2 * self._lease_ms)
            await self._enqueue(gen_id, decision.takeover)
        else:
            await self._store.untrack_running(gen_id)
            if decision.kind in ("cancelled", "exhausted"):  # we wrote its end: free its slot
                await release_generation(self._store, self._queue, gen_id)  # control Redis
            if decision.kind == "cancelled":
                log.info("generation %s: worker gone, cancel completed", gen_id)
            elif decision.kind == "exhausted":
                log.warning("generation %s: failed with worker_lost", gen_id)
        return decision.kind

    async def _decide(self, gen_id: str) -> TakeoverDecision:
        max_takeovers = self._settings.max_takeovers
        decision = await self._store.take_over(gen_id, max_takeovers=max_takeovers)
        if decision.kind != "pending":
            return decision
        # A takeover was decided earlier and its attempt has not begun. A job still
        # waiting in the queue is on its way (workers may all be busy): do not count
        # another. A job gone, or picked up a lease-time ago without a lease since,
        # was lost with its worker: count a new takeover.
        job_id = keys.takeover_job_id(gen_id, decision.takeover)
        job = Job(job_id, self._queue, _queue_name=self._settings.queue_name)
        status = await job.status()
        if status in (JobStatus.queued, JobStatus.deferred):
            return decision
        if decision.pending_age_ms < 2 * self._lease_ms:
            if status == JobStatus.not_found:
                await self._enqueue(gen_id, decision.takeover)  # the enqueuing reaper died
            return decision
        return await self._store.take_over(gen_id, max_takeovers=max_takeovers, force_new=True)

    async def _enqueue(self, gen_id: str, takeover: int) -> None:
        queued = await queue_job(
            self._queue,
            self._job_name,
            gen_id,
            job_id=keys.takeover_job_id(gen_id, takeover),
            queue_name=self._settings.queue_name,
        )
        if queued:
            log.info("generation %s: lease expired, takeover %d queued", gen_id, takeover)
