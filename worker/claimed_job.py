"""Running a job the worker claimed and read in one script (services/job_wakeups.py).

arq's `Worker.run_job` starts by reading the job and counting its try (one round
trip), then runs the function in a task of its own under `asyncio.wait_for`. The
claim already read both, so this is `run_job` from there on, for the one kind of
job this worker has: the same checks in the same order (expired, unreadable,
unknown function, too many tries), the same outcome for each (a failed result, or,
when the worker is shutting down, the job left queued to run again), the same
result kept for `keep_result` seconds, and arq's own `finish_job` and
`finish_failed_job` to write them. It saves a round trip and an event-loop hop
between a worker's wake-up and its generation's first write.

Not carried over, because this worker does not use them: aborting jobs
(`allow_abort_jobs=False`), arq's `Retry` exception, cron jobs, and the
`on_job_start` / `on_job_end` hooks.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from arq.constants import retry_key_prefix
from arq.jobs import SerializationError, deserialize_job_raw, serialize_result
from arq.utils import ms_to_datetime, timestamp_ms, truncate
from arq.worker import Function, JobExecutionFailed, Worker

from services.job_wakeups import RETRY_KEY_TTL_S, ClaimedJob

log = logging.getLogger("arq.worker")  # its lines read as arq's own, as before

INDEXED_GENERATION = "indexed_generation"
"""The job context's key for the generation the claim put in the running index."""

BEGUN_ATTEMPT = "begun_attempt"
"""The job context's key for the lease token and the answer of the `begin_attempt` the
claim ran (services/job_wakeups.py `claim_job`'s `then`), when it ran one."""


async def run_claimed_job(
    worker: Worker, job_id: str, claim: ClaimedJob, lease_token: str | None = None
) -> None:
    """Run `job_id` to its end and write its outcome the way arq's `run_job` would.

    `lease_token`: the token of the attempt the claim began, if it began one. A job
    that then does not run (its data unreadable: the claim could not tell) leaves
    that attempt to the reaper, as a worker that died would.
    """
    if claim.data is None:
        log.warning("job %s expired", job_id)
        return await _failed(worker, job_id, claim, JobExecutionFailed("job expired"))
    try:
        name, args, kwargs, enqueue_try, enqueue_ms = deserialize_job_raw(
            claim.data, deserializer=worker.job_deserializer
        )
    except SerializationError as exc:
        log.exception("deserializing job %s failed", job_id)
        return await _failed(worker, job_id, claim, exc)
    function = worker.functions.get(name)
    if not isinstance(function, Function):
        log.warning("job %s, function %r not found", job_id, name)
        return await _failed(
            worker, job_id, claim, JobExecutionFailed(f"function {name!r} not found"), name
        )
    job_try = claim.job_try
    if enqueue_try and enqueue_try > job_try:
        job_try = enqueue_try
        await worker.pool.setex(retry_key_prefix + job_id, RETRY_KEY_TTL_S, str(job_try))
    ref = f"{job_id}:{name}"
    max_tries = worker.max_tries if function.max_tries is None else function.max_tries
    if job_try > max_tries:
        seconds = (timestamp_ms() - enqueue_ms) / 1000
        log.warning("%6.2fs ! %s max retries %d exceeded", seconds, ref, max_tries)
        failure = JobExecutionFailed(f"max {max_tries} retries exceeded")
        return await _failed(worker, job_id, claim, failure, name, args, kwargs, enqueue_ms)

    ctx = {
        **worker.ctx,
        "job_id": job_id,
        "job_try": job_try,
        "enqueue_time": ms_to_datetime(enqueue_ms),
        "score": claim.score,
        INDEXED_GENERATION: claim.indexed_generation,
    }
    if claim.then is not None and lease_token is not None:
        ctx[BEGUN_ATTEMPT] = (lease_token, claim.then)
    timeout_s = worker.job_timeout_s if function.timeout_s is None else function.timeout_s
    start_ms = timestamp_ms()
    extra = f" try={job_try}" if job_try > 1 else ""
    if start_ms - claim.score > 1200:
        extra += f" delayed={(start_ms - claim.score) / 1000:0.2f}s"
    log.info("%6.2fs → %s(%s)%s", (start_ms - enqueue_ms) / 1000, ref, _args(args), extra)
    result: Any
    finish = True
    try:
        async with asyncio.timeout(timeout_s):
            result = await function.coroutine(ctx, *args, **kwargs)
    except asyncio.CancelledError:
        # Shutting down: left queued (and its try counted) to run again. Like arq's
        # run_job, the cancellation ends here: arq's shutdown gathers its job tasks
        # and would fail on one ending cancelled.
        seconds = (timestamp_ms() - start_ms) / 1000
        log.info("%6.2fs ↻ %s cancelled, will be run again", seconds, ref)
        worker.jobs_retried += 1
        finish = False
        result = None
    except Exception as exc:
        seconds = (timestamp_ms() - start_ms) / 1000
        log.exception("%6.2fs ! %s failed, %s: %s", seconds, ref, type(exc).__name__, exc)
        worker.jobs_failed += 1
        result = exc
    else:
        shown = "" if result is None or not worker.log_results else truncate(repr(result))
        log.info("%6.2fs ← %s ● %s", (timestamp_ms() - start_ms) / 1000, ref, shown)
        worker.jobs_complete += 1
    finished_ms = timestamp_ms()
    result_data = None
    if finish and (worker.keep_result_forever or worker.keep_result_s > 0):
        result_data = serialize_result(
            name,
            args,
            kwargs,
            job_try,
            enqueue_ms,
            not isinstance(result, Exception),
            result,
            start_ms,
            finished_ms,
            ref,
            worker.queue_name,
            job_id=job_id,
            serializer=worker.job_serializer,
        )
    await asyncio.shield(
        worker.finish_job(
            job_id,
            finish,
            result_data,
            worker.keep_result_s,
            worker.keep_result_forever,
            None,
            None,
        )
    )


async def _failed(
    worker: Worker,
    job_id: str,
    claim: ClaimedJob,
    exc: BaseException,
    name: str = "<unknown>",
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    enqueue_ms: int = 0,
) -> None:
    """A job that cannot run: its failed result, and it leaves the queue (arq's `job_failed`)."""
    worker.jobs_failed += 1
    result_data = serialize_result(
        function=name,
        args=args,
        kwargs=kwargs or {},
        job_try=claim.job_try,
        enqueue_time_ms=enqueue_ms,
        success=False,
        result=exc,
        start_ms=timestamp_ms(),
        finished_ms=timestamp_ms(),
        ref=f"{job_id}:{name}",
        serializer=worker.job_serializer,
        queue_name=worker.queue_name,
        job_id=job_id,
    )
    await asyncio.shield(worker.finish_failed_job(job_id, result_data))


def _args(args: tuple[Any, ...]) -> str:
    return ", ".join(repr(arg) for arg in args)
