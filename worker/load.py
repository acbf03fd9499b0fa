"""How loaded a worker's event loop is, so that it takes only the jobs it can carry.

Why: an LLM stream is I/O-bound, so how many generations one process carries
depends on the models' pace, the providers' chunk sizes and the machine, not on
a fixed count: on a small machine a hundred 50 tokens/s streams already fill a
core, on a large one a thousand do not. A process past its CPU shows it as
event-loop lag: timers fire late, and the tokens of every generation it runs
reach viewers late with them. So the worker takes new jobs while the lag stays
small, and leaves them queued once it does not (for a worker with room, or for
itself a moment later); `TOKENRELAY_WORKER_MAX_JOBS` stays a ceiling only.

The lag is measured by one timer that asks to wake every `interval_s` and notes
how late it woke, smoothed so that one pause (a garbage collection) does not
close the door; a worker running nothing always takes a job, so a busy machine
slows work down but never stops it.
"""

from __future__ import annotations

import asyncio

from services.background import BackgroundLoop

LAG_LIMIT_S = 0.05
"""Past this smoothed lag, the worker takes no new job: 50 ms late is a visible stutter."""


class LoopLag:
    """The smoothed lateness of a timer on this event loop (seconds)."""

    def __init__(self, *, interval_s: float = 0.05, limit_s: float = LAG_LIMIT_S) -> None:
        self.interval_s = interval_s
        self.limit_s = limit_s
        self.lag_s = 0.0
        self._probe = BackgroundLoop("loop-lag", self._measure_forever)

    def start(self) -> None:
        self._probe.start()

    async def stop(self) -> None:
        await self._probe.stop()

    @property
    def saturated(self) -> bool:
        return self.lag_s > self.limit_s

    async def _measure_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(self.interval_s)
            late = max(0.0, loop.time() - asked - self.interval_s)
            self.lag_s = 0.7 * self.lag_s + 0.3 * late
