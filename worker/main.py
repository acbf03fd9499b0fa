"""The arq worker: settings in, a configured `arq.worker.Worker` out.

Settings are passed explicitly (no import-time globals), so `tokenrelay worker`
and tests build workers the same way.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

from arq.worker import Worker, func

from services import keys
from services.config import Settings
from services.providers import build_providers
from services.redis_checks import warn_about_both_roles
from services.redis_connections import queue_client
from worker.jobs import run_generation
from worker.load import LoopLag
from worker.resilient import BEGIN_WITH_CLAIM, ResilientWorker
from worker.runtime import WorkerRuntime

log = logging.getLogger(__name__)


YOUNG_COLLECTION_THRESHOLD = 10_000
"""Allocations between two collections of the youngest generation (CPython's default
is 700). Every token allocates futures, frames and small containers that die within
the same turn; at 700 the collector ran about every 10 tokens, and each run promoted
the live ones of the moment to older generations, whose collections then walked
them again."""


def keep_out_of_collections() -> None:
    """Once the worker is set up: what it has built lives as long as the process, so
    it leaves the cyclic collector's passes (`gc.freeze`), and the youngest generation
    is collected less often. A full collection of a busy worker's heap took about
    40 ms here, a stall for every stream it carries (bench/README.md, "Eighth round")."""
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, older, oldest)


def build_worker(settings: Settings) -> Worker:
    """An arq worker for tokenrelay's queue. `Worker.run()` blocks until SIGINT/SIGTERM."""

    async def on_startup(ctx: dict[str, Any]) -> None:
        runtime = await WorkerRuntime.start(settings, build_providers(settings))
        runtime.start_reaper(ctx["redis"], keys.GENERATION_JOB)
        ctx["runtime"] = runtime
        # The claim takes the lease only where the queue's client and the store's
        # cannot be on different servers: one plain Redis. Behind Sentinel, during a
        # failover the two pools may briefly talk to the old and the new master, and
        # a lease written through the queue's would be lost to the store's writes.
        if runtime.store.redis is runtime.redis and not settings.redis_sentinels:
            ctx[BEGIN_WITH_CLAIM] = runtime.begin_with_claim
        load: LoopLag = ctx["load"]
        runtime.metrics.loop_lag.set_function(lambda: load.lag_s)
        await warn_about_both_roles(runtime.redis, runtime.store.redis, "worker")
        keep_out_of_collections()
        log.info(
            "tokenrelay worker ready on queue %s (event loop: %s)",
            settings.queue_name,
            type(asyncio.get_running_loop()).__module__.split(".")[0],
        )

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        runtime: WorkerRuntime | None = ctx.get("runtime")
        if runtime is not None:
            await runtime.close()

    return ResilientWorker(
        functions=[func(run_generation, name=keys.GENERATION_JOB, max_tries=3)],
        queue_name=settings.queue_name,
        redis_pool=queue_client(settings, "tokenrelay-worker-queue"),
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        max_jobs=settings.worker_max_jobs,
        # Our own total limit ends every generation first; this bound matters only for
        # arq's in-progress marker, which also decides when arq itself re-runs a job
        # whose worker died before the generation was indexed for the reaper.
        job_timeout=int(settings.total_timeout_s + settings.lease_s + 60),
        keep_result=60,
        poll_delay=settings.worker_poll_s,
        reply_timeout_s=settings.redis_timeout_s,
        check_in_ms=int(settings.lease_s * 1000),
        handle_signals=True,
        job_completion_wait=int(settings.worker_drain_s),
        allow_abort_jobs=False,
    )
