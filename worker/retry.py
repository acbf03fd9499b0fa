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
- how long to wait for the next chunk (`AttemptClock.next_chunk`): a
  time-to-first-token limit, an idle limit between chunks, and a total limit for
  the whole generation. Each one, when hit, is a `timeout` error that names the
  limit. A stalled stream is therefore noticed even when the TCP connection
  stays open, which no HTTP read timeout in the SDK would tell apart from a slow
  model.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, TypeVar

from services.config import Settings
from services.errors import ProviderError

T = TypeVar("T")
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

    One timer per attempt, moved lazily, instead of an `asyncio.timeout` per chunk:
    at 50 tokens/s a timeout per chunk arms and cancels a timer fifty times a
    second per generation, a measurable share of a busy worker's CPU. Here the
    timer is armed for the earliest deadline that can apply; when it fires it looks
    at when the current wait began, and either re-arms for the deadline that wait
    really has (so it fires about once per idle limit on a live stream) or cancels
    the waiting task, which `next_chunk` turns into the `timeout` error.
    """

    def __init__(self, limits: TimeLimits, total_deadline: float) -> None:
        self._limits = limits
        self._total_deadline = total_deadline
        self._first = True
        self._waiting_since: float | None = None
        self._waiter: asyncio.Task[object] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._expired: tuple[TimeLimit, float] | None = None

    async def next_chunk(self, chunks: AsyncIterator[T]) -> T | None:
        """The next chunk, None at the end, or a `timeout` ProviderError.

        The wait runs in the caller's task, so on a timeout the provider's
        generator is interrupted where it waits on the socket and its `finally`
        closes the HTTP response.
        """
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None, "next_chunk runs in a task"
        self._waiter, self._waiting_since = task, loop.time()
        deadline = self._deadline()[2]
        if self._timer is None or self._timer.when() > deadline:
            self.close()
            self._timer = loop.call_at(deadline, self._on_timer)
        cancelling = task.cancelling()
        try:
            chunk = await anext(chunks)
        except StopAsyncIteration:
            return None
        except asyncio.CancelledError:
            expired, self._expired = self._expired, None
            if expired is not None and task.uncancel() <= cancelling:
                raise timeout_error(*expired) from None
            raise
        finally:
            self._waiting_since = None
        self._first = False
        return chunk

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
