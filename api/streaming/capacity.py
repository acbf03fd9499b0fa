"""How many SSE connections one API process holds, and when it refuses more.

A process past its cap answers 503 with `Retry-After` instead of evicting anyone:
evicting would only move the overload onto clients that were already served.
The advice is jittered, so a crowd refused together does not come back
together; an EventSource-style client also gets it as a `retry:` field.
While the process drains (SIGTERM), every new stream is refused the same way
so that the client's retry lands on another replica.
"""

from __future__ import annotations

import asyncio
import random
from typing import Literal

Refusal = Literal["full", "draining"]


class ConnectionGate:
    def __init__(self, limit: int, draining: asyncio.Event, *, retry_base_s: float = 2.0) -> None:
        self.limit = limit
        self.open = 0
        self._draining = draining
        self._retry_base_s = retry_base_s
        self._idle = asyncio.Event()
        self._idle.set()

    def refusal(self) -> Refusal | None:
        """Why a new stream would be refused now, if it would."""
        if self._draining.is_set():
            return "draining"
        if self.open >= self.limit:
            return "full"
        return None

    def try_acquire(self) -> Refusal | None:
        """Take a slot; returns why not when the process is full or draining."""
        if self._draining.is_set():
            return "draining"
        if self.open >= self.limit:
            return "full"
        self.open += 1
        self._idle.clear()
        return None

    def release(self) -> None:
        self.open -= 1
        if self.open <= 0:
            self.open = 0
            self._idle.set()

    async def wait_idle(self) -> None:
        """Return once no SSE connection is open."""
        await self._idle.wait()

    def retry_advice(self, refusal: Refusal) -> tuple[int, int]:
        """(Retry-After seconds, `retry:` milliseconds), jittered over [base, 2 x base)."""
        if refusal == "draining":
            # Another replica can take the client at once; spread the reconnects a little.
            delay_s = random.uniform(0.1, 1.0)
        else:
            delay_s = random.uniform(self._retry_base_s, 2 * self._retry_base_s)
        return max(1, round(delay_s)), int(delay_s * 1000)
