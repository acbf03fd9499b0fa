"""One event-loop timer for every publisher's coalescing window.

Why: at 50 tokens/s each running generation ends a window about every 30 ms, so
a worker carrying hundreds of them armed, fired and freed tens of thousands of
loop timers a second, one per window (about 3.5 µs each under uvloop, measured
alone; 5% of the worker's CPU per token in bench/README.md's fifth round). Here a
window's end is an entry in a heap, and one
loop timer stands for the earliest of them; when it fires it runs every window
that has ended, so a busy worker fires it about once per `resolution_s` however
many generations it runs.

A window ends up to `resolution_s` (1 ms) after it is due, never before: the
clock waits that long after the earliest end so that the ends close behind it
are run by the same firing. The group commit (worker/group_commit.py) already
lets a busy worker's writes wait up to 2 ms to share a pipeline.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


class WindowEnd:
    """A scheduled call; `cancel` keeps it from running (it leaves the heap when due)."""

    __slots__ = ("callback",)

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback: Callable[[], None] | None = callback

    def cancel(self) -> None:
        self.callback = None


class FlushClock:
    """`call_later` for coalescing windows, sharing one loop timer (see the module).

    Bound to the event loop it is first used on, as the loop timers it arms are."""

    def __init__(self, resolution_s: float = 0.001) -> None:
        self._resolution_s = resolution_s
        self._due: list[tuple[float, int, WindowEnd]] = []
        self._order = itertools.count()  # ties run in the order they were scheduled
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        # The loop of its first use, kept: `asyncio.get_running_loop()` makes a getpid()
        # system call on CPython 3.11, and a window starts for every write.
        self._loop: asyncio.AbstractEventLoop | None = None

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> WindowEnd:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        when = loop.time() + delay_s
        end = WindowEnd(callback)
        heapq.heappush(self._due, (when, next(self._order), end))
        if when + self._resolution_s < self._timer_at:
            self._arm(loop, when + self._resolution_s)
        return end

    def _arm(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(at, self._fire)
        self._timer_at = at

    def _fire(self) -> None:
        self._timer, self._timer_at = None, float("inf")
        loop = self._loop
        assert loop is not None, "armed by call_later"
        now = loop.time()
        due = self._due
        while due and due[0][0] <= now:
            callback = heapq.heappop(due)[2].callback
            if callback is None:
                continue
            try:
                callback()
            except Exception:  # one window's fault must not stop every other window
                log.exception("a coalescing window's flush failed")
        while due and due[0][2].callback is None:  # cancelled: no timer for them
            heapq.heappop(due)
        if due:
            self._arm(loop, max(due[0][0], now) + self._resolution_s)
