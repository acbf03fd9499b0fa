"""An arq worker that waits out Redis outages instead of exiting.

arq's poll loop lets any Redis error escape `Worker.main`, so a Redis restart
would end the worker process, and a supervisor would restart it into the same
error again and again. This subclass catches Redis errors around one poll
iteration, logs the outage once, backs off, and carries on when Redis answers;
jobs already running keep their own handling (worker/jobs.py). At start-up it
also waits for Redis as long as it takes, rather than arq's five seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from arq.worker import Worker
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 5.0
STARTUP_CONN_RETRIES = 1_000_000
"""arq retries the first connection once a second; this many is "until Redis answers"."""


class ResilientWorker(Worker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.redis_settings is not None:
            self.redis_settings.conn_retries = STARTUP_CONN_RETRIES
        self._down_since: float | None = None
        self._backoff_s = 0.1

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except (RedisError, OSError) as exc:
            if self._down_since is None:
                self._down_since = time.monotonic()
                log.warning("Redis unavailable (%s); pausing job pickup", type(exc).__name__)
            await asyncio.sleep(self._backoff_s)
            self._backoff_s = min(self._backoff_s * 2, MAX_BACKOFF_S)
            return
        if self._down_since is not None:
            log.info("Redis is back after %.1fs; resuming", time.monotonic() - self._down_since)
            self._down_since = None
            self._backoff_s = 0.1
