"""Limits held across replicas: one Lua script per decision, on the control Redis.

Why scripts of our own rather than the `limits` library: the admission of a
generation checks two limits (the key's requests per minute and the tenant's
queued + running generations) and must take both or neither, with a true
`Retry-After` for the one refused; `limits` checks one limit per call and its
moving window gives a reset time, not the moment the oldest request leaves.
A sorted set per limit and one script per decision keep every check and its
write one atomic step, so a burst on many replicas can never over-admit.

- Requests per minute (per key): a sliding log. The script drops entries older
  than the window, refuses when the rest reach the limit (Retry-After: when the
  oldest leaves the window), else adds one.
- Queued + running generations (per tenant): a set of generation ids. A slot is
  taken before the generation is created, and released the moment it ends, by
  whoever wrote its terminal event (worker job, reaper, API cancel or failed
  enqueue: `release_generation`). The generation's own keys may live on another
  Redis, so release is a second write after the terminal script, never inside it;
  a release lost in a crash between the two is repaired when the tenant is next
  refused (`repair_running`: ids whose generation has ended are dropped, then the
  admission is tried once more), and each id carries a backstop deadline
  (retention) after which it no longer counts.
- Open SSE streams (per key): a set of stream ids scored by a deadline that the
  replica holding the stream refreshes; a replica that dies stops counting after
  `STREAM_SLOT_TTL_MS`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis

from services import keys
from services.generation import FINISHED_STATUSES
from services.store import GenerationStore

WINDOW_MS = 60_000
STREAM_SLOT_TTL_MS = 30_000
STREAM_SLOT_REFRESH_S = 10.0

# KEYS: requests, running. ARGV: now_ms, rpm (0 = none), window_ms, running_limit (0 = none),
#       gen_id, running_deadline_ms, request_member
_ADMIT = """
local requests, running = KEYS[1], KEYS[2]
local now, rpm, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local limit, gen_id, deadline, member = tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7]
if rpm > 0 then
  redis.call('ZREMRANGEBYSCORE', requests, '-inf', now - window)
  if redis.call('ZCARD', requests) >= rpm then
    local oldest = redis.call('ZRANGE', requests, 0, 0, 'WITHSCORES')
    return {'requests', tostring(tonumber(oldest[2]) + window - now)}
  end
end
if limit > 0 then
  redis.call('ZREMRANGEBYSCORE', running, '-inf', now)
  if redis.call('ZCARD', running) >= limit then return {'running', '1000'} end
  redis.call('ZADD', running, deadline, gen_id)
end
if rpm > 0 then
  redis.call('ZADD', requests, now, member)
  redis.call('PEXPIRE', requests, window)
end
return {'ok', '0'}
"""

# KEYS: streams. ARGV: now_ms, limit, slot_id, deadline_ms
_OPEN_STREAM = """
local now, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local soonest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tonumber(soonest[2]) - now
end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4] - now)
return 0
"""

Refused = Literal["requests", "running"]


@dataclass(frozen=True, slots=True)
class Refusal:
    limit: Refused
    retry_after_s: int


def now_ms() -> int:
    return int(time.time() * 1000)


class Limits:
    """The limit scripts on the control Redis."""

    def __init__(self, redis: Redis, *, running_deadline_s: int) -> None:
        self.redis = redis
        self.running_deadline_ms = running_deadline_s * 1000
        self._admit = redis.register_script(_ADMIT)
        self._open_stream = redis.register_script(_OPEN_STREAM)

    async def admit(
        self,
        *,
        key_id: str,
        tenant: str,
        gen_id: str,
        requests_per_minute: int | None,
        max_running: int | None,
    ) -> Refusal | None:
        """Take a request (per key) and a running slot (per tenant) for `gen_id`, or neither."""
        if not requests_per_minute and not max_running:
            return None
        now = now_ms()
        kind, wait_ms = await self._admit(
            keys=[keys.key_requests(key_id), keys.tenant_running(tenant)],
            args=[
                now,
                requests_per_minute or 0,
                WINDOW_MS,
                max_running or 0,
                gen_id,
                now + self.running_deadline_ms,
                gen_id,
            ],
        )
        if kind == "ok":
            return None
        return Refusal(kind, max(1, math.ceil(int(wait_ms) / 1000)))

    async def running(self, tenant: str) -> list[tuple[str, float]]:
        """(generation id, deadline ms) of the tenant's counted generations."""
        members: list[tuple[str, float]] = await self.redis.zrange(
            keys.tenant_running(tenant), 0, -1, withscores=True
        )
        return members

    async def release_running(self, tenant: str, gen_ids: Sequence[str]) -> None:
        if gen_ids:
            await self.redis.zrem(keys.tenant_running(tenant), *gen_ids)

    async def open_stream(self, key_id: str, slot_id: str, limit: int) -> int:
        """0 when the stream may open (its slot is taken), else ms until one may free."""
        now = now_ms()
        wait: int = await self._open_stream(
            keys=[keys.key_streams(key_id)], args=[now, limit, slot_id, now + STREAM_SLOT_TTL_MS]
        )
        return int(wait)

    async def refresh_streams(self, slots: Sequence[tuple[str, str]]) -> None:
        """Push back the deadline of this replica's open (key id, slot id) streams."""
        if not slots:
            return
        deadline = now_ms() + STREAM_SLOT_TTL_MS
        async with self.redis.pipeline(transaction=False) as pipe:
            for key_id, slot_id in slots:
                pipe.zadd(keys.key_streams(key_id), {slot_id: deadline}, xx=True)
                pipe.pexpire(keys.key_streams(key_id), STREAM_SLOT_TTL_MS)
            await pipe.execute()

    async def close_stream(self, key_id: str, slot_id: str) -> None:
        await self.redis.zrem(keys.key_streams(key_id), slot_id)


REPAIR_GRACE_MS = 60_000
"""A counted id whose record is missing is dropped only after this long (it may be
in the middle of being created)."""


async def release_generation(store: GenerationStore, redis: Redis, gen_id: str) -> None:
    """Free the running slot of a generation that has just ended, however it ended.

    Called by whoever wrote its terminal event, after that write (see the module
    docstring for why it is a second step). Idempotent.
    """
    tenant = await store.tenant_of(gen_id)
    if tenant is not None:
        await redis.zrem(keys.tenant_running(tenant), gen_id)


async def repair_running(store: GenerationStore, limits: Limits, tenant: str) -> int:
    """Drop the tenant's counted ids whose generation has ended (a release lost in a
    crash); returns how many were dropped."""
    now = now_ms()
    stale = []
    for gen_id, deadline in await limits.running(tenant):
        status = await store.status(gen_id)
        admitted_ms = deadline - limits.running_deadline_ms
        lost = status is None and now - admitted_ms > REPAIR_GRACE_MS
        if lost or (status is not None and status.status in FINISHED_STATUSES):
            stale.append(gen_id)
    await limits.release_running(tenant, stale)
    return len(stale)
