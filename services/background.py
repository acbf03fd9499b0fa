"""Long-running tasks with one owner, and waiting out a Redis outage.

Every process runs a few loops beside its requests or jobs (the hub's shared
read, presence, the cancel listener, the reaper, the send watchdog). Each one is
a `BackgroundLoop`: started once by its owner, and on stop cancelled and awaited,
so no task outlives the object that made it and no "Task was destroyed but it is
pending" warning hides a leak.

The loops that talk to Redis keep going through an outage rather than dying:
`Backoff` spaces their retries (short at first, so a blip costs little; capped,
so recovery is noticed within seconds), and `until_redis_answers` is the common
case of one call that must eventually succeed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from services.redis_connections import is_redis_failure

log = logging.getLogger(__name__)

T = TypeVar("T")


class BackgroundLoop:
    """One named loop: `start()` once, `await stop()` to cancel it and wait for it.

    A loop that raises something its own handling did not foresee is logged and
    started again after a pause, never left dead: a task that ends with an
    exception says nothing until it is collected, while everything that relied
    on it (the hub's viewers, a worker's cancels) waits in silence.
    """

    def __init__(self, name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self.name = name
        self._run = run
        self._task: asyncio.Task[None] | None = None
        self.restarts = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._supervise(), name=self.name)

    async def _supervise(self) -> None:
        backoff = Backoff(first_s=0.1, cap_s=5.0)
        while True:
            try:
                await self._run()
                return  # the loop ended by itself: its work is done
            except Exception:
                log.exception("%s failed unexpectedly; starting it again", self.name)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is None or task.cancelling():
                    raise  # stop(), or the event loop shutting down
                # Raised inside a library without anyone cancelling this task.
                log.error("%s ended on a stray CancelledError; starting it again", self.name)
            self.restarts += 1
            await backoff.sleep()

    async def restart(self) -> None:
        """Cancel the loop where it is (it is stuck) and start it afresh."""
        await self.stop()
        self.restarts += 1
        self.start()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class Backoff:
    """Delays between retries through an outage: `first_s`, doubling, at most `cap_s`."""

    def __init__(self, first_s: float = 0.1, cap_s: float = 5.0) -> None:
        self.first_s = first_s
        self.cap_s = cap_s
        self._next = first_s

    async def sleep(self) -> None:
        delay = self._next
        self._next = min(self._next * 2, self.cap_s)
        await asyncio.sleep(delay)

    def reset(self) -> None:
        """After a success: the next outage starts with a short delay again."""
        self._next = self.first_s


async def until_redis_answers(
    call: Callable[[], Awaitable[T]],
    *,
    what: str,
    log: logging.Logger,
    backoff: Backoff | None = None,
) -> T:
    """`await call()` until it succeeds, sleeping through Redis errors; logs the wait once."""
    backoff = backoff or Backoff(first_s=0.25)
    logged = False
    while True:
        try:
            return await call()
        except Exception as exc:
            if not is_redis_failure(exc):
                raise
            if not logged:
                log.warning("%s: waiting for Redis (%s)", what, type(exc).__name__)
                logged = True
            await backoff.sleep()
