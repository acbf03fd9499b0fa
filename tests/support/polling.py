"""The one way tests wait for something that happens in another process.

Real processes and a real Redis change state on their own schedule, so a test
polls a check rather than sleeping a fixed time: it returns as soon as the
condition holds, and the deadline only bounds how long a failure takes to
report. The deadline is generous because the suite shares a loaded machine;
it is never what a test asserts.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")

POLL_INTERVAL_S = 0.05


@overload
async def wait_for(
    check: Callable[[], Awaitable[T | None]], *, timeout_s: float = ..., what: str = ...
) -> T: ...


@overload
async def wait_for(
    check: Callable[[], T | None], *, timeout_s: float = ..., what: str = ...
) -> T: ...


async def wait_for(
    check: Callable[[], Any],
    *,
    timeout_s: float = 60,
    what: str = "condition",
) -> Any:
    """Call `check` (sync or async) until it returns something truthy, and return that.

    Returning the value lets a test wait for a thing and use it in one step
    (`gone = await wait_for(lambda: missing_keys(...))`).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(POLL_INTERVAL_S)
