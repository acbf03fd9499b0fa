"""Waking idle workers the moment a job is queued, instead of waiting for their poll.

arq finds jobs by polling its queue. Polling every 50 ms costs Redis 20 commands
a second per idle worker and delays each new generation by up to 50 ms (25 ms on
average) before a worker even looks, which users feel as time to first token.
So whoever queues a job also publishes on one channel that every worker listens
to, and a worker polls at once when it hears it. The poll stays, at a slower
pace (`TOKENRELAY_WORKER_POLL_S`), as the fallback for a wake-up lost while a
worker was reconnecting: a missed message delays a job, it never loses one.
"""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services import keys
from services.background import BackgroundLoop, Backoff
from services.redis_connections import live_messages

log = logging.getLogger(__name__)


async def announce_job(control: Redis) -> None:
    """Tell idle workers a job is waiting (after it is queued)."""
    await control.publish(keys.JOBS_CHANNEL, "1")


class JobWakeups:
    """A worker's ear on the jobs channel: `wait` returns early once a job is announced."""

    def __init__(self, control: Redis, *, reply_timeout_s: float) -> None:
        self._control = control
        self._reply_timeout_s = reply_timeout_s
        self._heard = asyncio.Event()
        self._listener = BackgroundLoop("job-wakeups", self._listen)

    def start(self) -> None:
        self._listener.start()

    async def stop(self) -> None:
        await self._listener.stop()

    def poke(self) -> None:
        """Poll soon without a message (a job ended: a slot is free again)."""
        self._heard.set()

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
                    async for _ in live_messages(pubsub, reply_timeout_s=self._reply_timeout_s):
                        backoff.reset()
                        self._heard.set()
            except (RedisError, OSError) as exc:
                log.warning("job wake-ups lost Redis (%s); reconnecting", type(exc).__name__)
                await backoff.sleep()
