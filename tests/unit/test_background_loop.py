"""A background loop that raises what it did not foresee is logged and started again.

Without this, the hub's shared read (or any loop beside the requests) could end
on one unexpected exception and leave every viewer of the process waiting on
heartbeats, with nothing logged until the task was collected.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from services.background import BackgroundLoop


async def test_a_loop_that_raises_is_logged_and_started_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs = 0
    running_again = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise AttributeError("'NoneType' object has no attribute 'write'")
        running_again.set()
        await asyncio.Event().wait()  # runs until stopped

    loop = BackgroundLoop("flaky", flaky)
    with caplog.at_level(logging.ERROR, logger="services.background"):
        loop.start()
        await asyncio.wait_for(running_again.wait(), timeout=5)
    assert (runs, loop.restarts) == (2, 1)
    assert "flaky failed unexpectedly; starting it again" in caplog.text
    await loop.stop()  # cancels the running loop; nothing escapes


async def test_a_loop_that_ends_by_itself_is_not_started_again() -> None:
    runs = 0

    async def once() -> None:
        nonlocal runs
        runs += 1

    loop = BackgroundLoop("once", once)
    loop.start()
    await asyncio.sleep(0.3)
    await loop.stop()
    assert (runs, loop.restarts) == (1, 0)


async def test_a_stray_cancelled_error_restarts_the_loop_but_stop_still_stops_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs = 0
    running_again = asyncio.Event()

    async def raises_cancelled_once() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise asyncio.CancelledError  # as a library's timeout handling can
        running_again.set()
        await asyncio.Event().wait()

    loop = BackgroundLoop("stray", raises_cancelled_once)
    with caplog.at_level(logging.ERROR, logger="services.background"):
        loop.start()
        await asyncio.wait_for(running_again.wait(), timeout=5)
    assert "stray ended on a stray CancelledError" in caplog.text
    await asyncio.wait_for(loop.stop(), timeout=5)
    assert (runs, loop.restarts) == (2, 1)
