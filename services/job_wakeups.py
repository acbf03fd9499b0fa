"""Waking idle workers the moment a job is queued, instead of waiting for their poll.

arq finds jobs by polling its queue. Polling every 50 ms costs Redis 20 commands
a second per idle worker and delays each new generation by up to 50 ms (25 ms on
average) before a worker even looks, which users feel as time to first token.
So whoever queues a job also publishes its id on one channel that every worker
listens to (`queue_job` queues and publishes in one script), and a worker that
hears it claims and reads that job at once (`claim_job`, one script), before it even lists
the queue; every worker hearing it tries, one wins. The poll stays, at a slower
pace (`TOKENRELAY_WORKER_POLL_S`), as the fallback for a wake-up lost while a
worker was reconnecting: a missed message delays a job, it never loses one.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from typing import Any

from arq.connections import ArqRedis
from arq.constants import (
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from arq.jobs import serialize_job
from arq.utils import timestamp_ms
from redis.asyncio import Redis

from services import keys
from services.background import BackgroundLoop, Backoff
from services.redis_connections import is_redis_failure, live_messages
from services.script_call import ScriptCall, chained

log = logging.getLogger(__name__)


# What arq's enqueue_job writes (the job, its place in the queue), checked and written
# in one step instead of its WATCH, EXISTS, MULTI/EXEC, then the wake-up: one round
# trip on the path to the first token instead of four. The wake-up carries the job id.
# KEYS: job, result, queue. ARGV: job ttl ms, serialized job, score, job id, channel.
_QUEUE_JOB = """
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return 0 end
redis.call('PSETEX', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
redis.call('PUBLISH', ARGV[5], ARGV[4])
return 1
"""

MAX_ANNOUNCED = 1000
"""Job ids kept between two polls; a worker busy enough to hear more lists the queue anyway."""


def _queue_call(
    queue: ArqRedis, function: str, gen_id: str, job_id: str, queue_name: str
) -> ScriptCall:
    enqueued_ms = timestamp_ms()
    job = serialize_job(function, (gen_id,), {}, None, enqueued_ms, serializer=queue.job_serializer)
    return ScriptCall(
        _QUEUE_JOB,
        [job_key_prefix + job_id, result_key_prefix + job_id, queue_name],
        [queue.expires_extra_ms, job, enqueued_ms, job_id, keys.JOBS_CHANNEL],
    )


async def queue_job(
    queue: ArqRedis, function: str, gen_id: str, *, job_id: str, queue_name: str
) -> bool:
    """Queue an arq job exactly as `ArqRedis.enqueue_job` would, and wake idle workers,
    in one atomic script. False when arq already knows `job_id` (queued, running, or
    its result kept), as enqueue_job's None."""
    call = _queue_call(queue, function, gen_id, job_id, queue_name)
    return bool(await call.run(queue))


async def write_then_queue_job(
    client: Redis,
    first: ScriptCall,
    queue: ArqRedis,
    function: str,
    gen_id: str,
    *,
    job_id: str,
    queue_name: str,
) -> bool:
    """`first` (a write of the caller's, such as the generation's status record), then
    `queue_job`, as one script in one round trip, on a `client` that holds both the
    keys of `first` and arq's (one Redis for both roles, never a cluster).

    Why: the API records a generation and then queues its job, each a round trip on
    the path to the first token (about 0.6 ms each with the client on the same two
    cores). Atomic, so a job is never queued without what `first` writes: a `first`
    that fails (an error reply) stops the script before the job is queued.
    """
    queued = _queue_call(queue, function, gen_id, job_id, queue_name)
    return bool(await chained(first, queued).run(client))


# What arq's `start_jobs` and then `run_job` do to claim a queued job and read it,
# in one step: the claim (nobody runs it, it is still queued and due; arq's WATCH,
# EXISTS, ZSCORE and MULTI/PSETEX/EXEC), then the job's data and its try count
# (arq's GET, INCR, EXPIRE), and, for a generation's job, its entry in the running
# index the reaper watches (what the job itself would write next). One round trip
# between a worker's wake-up and its generation's start instead of three.
# KEYS: in-progress, queue, job, retry, running index.
# ARGV: job id, now ms, in-progress ttl ms, retry ttl s, generation id or '', check-in ms.
# Returns {score, job data or false, try}, or false when it is not this worker's to run.
_CLAIM_JOB = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then return false end
redis.call('PSETEX', KEYS[1], ARGV[3], '1')
local job = redis.call('GET', KEYS[3])
local try = redis.call('INCR', KEYS[4])
redis.call('EXPIRE', KEYS[4], ARGV[4])
if job and ARGV[5] ~= '' then
  redis.call('ZADD', KEYS[5], tonumber(ARGV[2]) + tonumber(ARGV[6]), ARGV[5])
end
return {score, job, try}
"""

RETRY_KEY_TTL_S = 88_400
"""How long arq keeps a job's try count (its `run_job` sets the same)."""

# The claim above, then, for a job it claimed that will run (its data is there and
# its try within `max_tries`), a write of the caller's (`then`: a generation's
# `begin_attempt`) in the same script. KEYS and ARGV are each script's, one after
# the other; ARGV starts with the count of the claim's keys and of its arguments,
# and `max_tries`. Returns the claim's answer with `then`'s appended, or false.
_CLAIM_THEN = """
local function claim(KEYS, ARGV)
{claim}
end
local function after(KEYS, ARGV)
{then}
end
local key_count, arg_count, max_tries = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local claimed = claim({{unpack(KEYS, 1, key_count)}}, {{unpack(ARGV, 4, 3 + arg_count)}})
if not claimed then return false end
if claimed[2] and tonumber(claimed[3]) <= max_tries then
  claimed[4] = after({{unpack(KEYS, key_count + 1)}}, {{unpack(ARGV, 4 + arg_count)}})
end
return claimed
"""


@functools.lru_cache(maxsize=8)
def _claim_then_source(then: str) -> str:
    return _CLAIM_THEN.format(claim=_CLAIM_JOB, then=then)


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job this worker now runs: arq's in-progress marker is set, its try counted."""

    score: int
    data: bytes | None
    """The serialized job; None when it expired before it was claimed."""
    job_try: int
    indexed_generation: str | None
    """The generation put in the running index by the claim, if any."""
    then: list[Any] | None = None
    """The answer of the claim's `then` script, when it ran (see `claim_job`)."""


async def claim_job(
    queue: ArqRedis,
    job_id: str,
    *,
    queue_name: str,
    in_progress_ms: int,
    check_in_ms: int = 0,
    then: ScriptCall | None = None,
    max_tries: int = 0,
) -> ClaimedJob | None:
    """Claim and read `job_id` exactly as arq's `start_jobs` and `run_job` would, atomically.

    A generation's job (services/keys.py `generation_of_job`) is also put in the
    running index, due for a check in `check_in_ms`, so a reaper finds it if this
    worker dies from here on. None when the job is already running elsewhere,
    gone from the queue, or deferred to later.

    `then` (on a queue Redis that also holds its keys: one Redis, never a cluster)
    runs in the same script once the job is claimed, if the job will run: its data
    is there and this try is within `max_tries`. A worker takes its generation's
    lease that way, one round trip from its wake-up to the provider's request
    instead of two.
    """
    gen_id = keys.generation_of_job(job_id)
    claim_keys = [
        in_progress_key_prefix + job_id,
        queue_name,
        job_key_prefix + job_id,
        retry_key_prefix + job_id,
        keys.RUNNING,
    ]
    claim_args: list[str | int] = [
        job_id,
        timestamp_ms(),
        in_progress_ms,
        RETRY_KEY_TTL_S,
        gen_id or "",
        check_in_ms,
    ]
    if then is None:
        claimed = await ScriptCall(_CLAIM_JOB, claim_keys, claim_args).run(queue)
    else:
        call = ScriptCall(
            _claim_then_source(then.source),
            [*claim_keys, *then.keys],
            [len(claim_keys), len(claim_args), max_tries, *claim_args, *then.args],
        )
        claimed = await call.run(queue)
    if claimed is None:
        return None
    score, data, job_try = claimed[:3]
    indexed = gen_id if data is not None and gen_id else None
    after: list[Any] | None = claimed[3] if len(claimed) > 3 else None
    return ClaimedJob(int(float(score)), data, int(job_try), indexed, after)


class JobWakeups:
    """A worker's ear on the jobs channel: `wait` returns early once a job is announced."""

    def __init__(self, control: Redis, *, reply_timeout_s: float) -> None:
        self._control = control
        self._reply_timeout_s = reply_timeout_s
        self._heard = asyncio.Event()
        self._announced: list[bytes] = []
        self._listener = BackgroundLoop("job-wakeups", self._listen)

    def start(self) -> None:
        self._listener.start()

    async def stop(self) -> None:
        await self._listener.stop()

    def poke(self) -> None:
        """Poll soon without a message (a job ended: a slot is free again)."""
        self._heard.set()

    def take_announced(self) -> list[bytes]:
        """The job ids announced since the last call (to claim before polling)."""
        announced, self._announced = self._announced, []
        return announced

    async def wait(self, timeout_s: float) -> None:
        """Until a job is announced, or `timeout_s` passes (the fallback poll)."""
        if not self._heard.is_set():
            try:
                async with asyncio.timeout(timeout_s):
                    await self._heard.wait()
            except TimeoutError:
                pass
        self._heard.clear()

    async def _listen(self) -> None:
        backoff = Backoff(first_s=0.5, cap_s=5.0)
        while True:
            try:
                async with self._control.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(keys.JOBS_CHANNEL)
                    self._heard.set()  # anything queued while we were away: look now
                    async for message in live_messages(
                        pubsub, reply_timeout_s=self._reply_timeout_s
                    ):
                        backoff.reset()
                        if len(self._announced) < MAX_ANNOUNCED:  # past that, the poll finds them
                            self._announced.append(message["data"])
                        self._heard.set()
            except Exception as exc:
                if not is_redis_failure(exc):
                    raise
                log.warning("job wake-ups lost Redis (%s); reconnecting", type(exc).__name__)
                await backoff.sleep()
