"""tokenrelay's one policy for what goes wrong between a worker and a provider.

The SDKs' own retries are off (`max_retries=0`): a retry that the SDK made
silently after some text had already reached viewers would duplicate it, and
only the worker knows whether anything was published. So the worker drives
every attempt, and this module says

- whether to try again (`RetryPolicy.delay_before_retry`): only for errors the
  provider adapter marked retryable, a bounded number of times, after an
  exponential backoff with jitter and a cap, or after the provider's own
  `Retry-After` when it asks for longer (up to `retry_after_max_s`: beyond that
  the generation fails at once rather than hold a worker slot for minutes);
- how long to wait for the next chunk (`AttemptClock`): a
  time-to-first-token limit, an idle limit between chunks, and a total limit for
  the whole generation. Each one, when hit, is a `timeout` error that names the
  limit. A stalled stream is therefore noticed even when the TCP connection
  stays open, which no HTTP read timeout in the SDK would tell apart from a slow
  model.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from services.config import Settings
from services.errors import ProviderError

TimeLimit = Literal["first_token", "idle", "total"]


@dataclass(frozen=True, slots=True)
class TimeLimits:
    first_token_s: float
    idle_s: float
    total_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> TimeLimits:
        return cls(
            first_token_s=settings.first_token_timeout_s,
            idle_s=settings.idle_timeout_s,
            total_s=settings.total_timeout_s,
        )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int
    backoff_base_s: float
    backoff_cap_s: float
    retry_after_max_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            attempts=settings.provider_attempts,
            backoff_base_s=settings.retry_backoff_base_s,
            backoff_cap_s=settings.retry_backoff_cap_s,
            retry_after_max_s=settings.retry_after_max_s,
        )

    def backoff_s(self, retry_number: int) -> float:
        """Exponential backoff with "equal jitter": half fixed, half random, capped.

        Half of it is fixed so that a retry never comes back at once, and half is
        random so that many generations failing together do not retry together.
        """
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * 2.0 ** (retry_number - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def delay_before_retry(
        self, error: ProviderError, tries_so_far: int, remaining_s: float
    ) -> float | None:
        """Seconds to wait before the next try, or None when the error is final."""
        if not error.retryable or tries_so_far >= self.attempts:
            return None
        delay = self.backoff_s(tries_so_far)
        if error.retry_after_s is not None:
            if error.retry_after_s > self.retry_after_max_s:
                return None
            delay = max(delay, error.retry_after_s)
        if delay >= remaining_s:
            return None
        return delay


def timeout_error(limit: TimeLimit, seconds: float) -> ProviderError:
    """The `timeout` error for one of the three limits; the message names the limit."""
    what = {
        "first_token": "no first token from the provider within the time-to-first-token limit",
        "idle": "the provider stream went idle for longer than the idle limit",
        "total": "the generation took longer than the total time limit",
    }[limit]
    return ProviderError(
        "timeout",
        f"{what} ({limit} timeout, {seconds:g} s)",
        retryable=True,
        retry_after_s=None,
    )


class AttemptClock:
    """Deadlines for one attempt's chunks, within the generation's total deadline.

    The reader of the provider's stream says when a wait for the next chunk
    starts (`waiting`) and when a chunk arrived (`received`), inside `watch()`:

        with clock.watch():
            async for chunk in chunks:
                clock.received()
                ...  # publish it: time spent here is not the provider's idleness
                clock.waiting()

    Why not a wrapper around each read: the stream's chunks are the worker's
    hottest path (tens of thousands a second), and a coroutine around every read
    is one more frame to create and resume per chunk, with the loop and task
    looked up each time; here a chunk costs two attribute writes and a clock read.
    And why not an `asyncio.timeout` per chunk: that arms and cancels a timer per
    chunk. One timer per attempt, moved lazily: it is armed for the deadline of
    the current wait; when it fires it looks at when the current wait began, and
    either re-arms for the deadline that wait really has (so it fires about once
    per idle limit on a live stream) or cancels the waiting task, which `watch`
    turns into the `timeout` error.
    """

    def __init__(self, limits: TimeLimits, total_deadline: float) -> None:
        self._limits = limits
        self._total_deadline = total_deadline
        self._first = True
        self._waiting_since: float | None = None
        self._waiter: asyncio.Task[object] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._expired: tuple[TimeLimit, float] | None = None

    @contextmanager
    def watch(self) -> Iterator[None]:
        """Time the waits of the block's task; one that runs out ends the block with a
        `timeout` ProviderError (a cancel from elsewhere stays a cancel).

        The wait runs in the reader's own task, so on a timeout the provider's
        generator is interrupted where it waits on the socket and its `finally`
        closes the HTTP response. The first wait starts on entry.
        """
        task = asyncio.current_task()
        assert task is not None, "an attempt's stream is read in a task"
        self._waiter, self._loop = task, asyncio.get_running_loop()
        cancelling = task.cancelling()
        self.waiting()
        try:
            yield
        except asyncio.CancelledError:
            expired, self._expired = self._expired, None
            if expired is not None and task.uncancel() <= cancelling:
                raise timeout_error(*expired) from None
            raise
        finally:
            self._waiting_since = None
            self.close()

    def waiting(self) -> None:
        """A wait for the provider's next chunk starts now."""
        assert self._loop is not None, "inside watch()"
        self._waiting_since = self._loop.time()
        if self._timer is None:
            self._timer = self._loop.call_at(self._deadline()[2], self._on_timer)

    def received(self) -> None:
        """The provider's chunk arrived: the wait is over."""
        self._waiting_since = None
        if self._first:
            self._first = False
            # The timer was armed for the first token; the idle limit may end sooner.
            self.close()

    def close(self) -> None:
        """Disarm the timer (the attempt's stream is over)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _deadline(self) -> tuple[TimeLimit, float, float]:
        """The limit the current wait is under, its length, and when it ends."""
        assert self._waiting_since is not None
        if self._first:
            limit: TimeLimit = "first_token"
            seconds = self._limits.first_token_s
        else:
            limit, seconds = "idle", self._limits.idle_s
        deadline = self._waiting_since + seconds
        if self._total_deadline <= deadline:
            return "total", self._limits.total_s, self._total_deadline
        return limit, seconds, deadline

    def _on_timer(self) -> None:
        self._timer = None
        if self._waiting_since is None or self._waiter is None:
            return  # between two waits: the next one arms the timer again
        limit, seconds, deadline = self._deadline()
        loop = asyncio.get_running_loop()
        if loop.time() < deadline:  # a later wait than the one this was armed for
            self._timer = loop.call_at(deadline, self._on_timer)
            return
        self._expired = (limit, seconds)
        self._waiter.cancel()
