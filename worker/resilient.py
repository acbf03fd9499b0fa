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
"""

from __future__ import annotations

import logging
import time
from typing import Any

from arq.worker import Worker
from redis.exceptions import RedisError

from services.background import Backoff, until_redis_answers

log = logging.getLogger(__name__)


class ResilientWorker(Worker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._down_since: float | None = None
        self._backoff = Backoff(first_s=0.1, cap_s=5.0)

    async def main(self) -> None:
        await self._until_redis_answers()
        await super().main()

    async def _until_redis_answers(self) -> None:
        await until_redis_answers(self.pool.ping, what="worker start-up", log=log)

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except (RedisError, OSError) as exc:
            if self._down_since is None:
                self._down_since = time.monotonic()
                log.warning("Redis unavailable (%s); pausing job pickup", type(exc).__name__)
            await self._backoff.sleep()
            return
        if self._down_since is not None:
            log.info("Redis is back after %.1fs; resuming", time.monotonic() - self._down_since)
            self._down_since = None
            self._backoff.reset()
