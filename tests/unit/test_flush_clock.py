"""The worker's shared timer for coalescing windows (worker/flush_clock.py), on a real loop."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from worker.flush_clock import FlushClock


async def test_windows_end_in_deadline_order_and_never_early() -> None:
    loop = asyncio.get_running_loop()
    clock = FlushClock()
    ran: list[tuple[str, float]] = []
    done = loop.create_future()
    start = loop.time()

    def end(name: str, due: float) -> None:
        ran.append((name, loop.time() - start))
        if len(ran) == 4:
            done.set_result(None)

    for name, delay in (("c", 0.03), ("a", 0.01), ("b", 0.02), ("c2", 0.03)):
        clock.call_later(delay, lambda n=name, d=delay: end(n, d))  # type: ignore[misc]
    await asyncio.wait_for(done, 5)
    assert [name for name, _ in ran] == ["a", "b", "c", "c2"]  # ties in scheduling order
    for (_, at), delay in zip(ran, (0.01, 0.02, 0.03, 0.03), strict=True):
        assert at >= delay - 0.001  # the loop's clock may round to the millisecond


async def test_a_cancelled_window_does_not_run() -> None:
    loop = asyncio.get_running_loop()
    clock = FlushClock()
    ran: list[str] = []
    later = loop.create_future()
    clock.call_later(0.01, lambda: ran.append("cancelled")).cancel()
    clock.call_later(0.02, lambda: later.set_result(None))
    await asyncio.wait_for(later, 5)
    assert ran == []


async def test_an_earlier_window_does_not_wait_for_a_later_one() -> None:
    loop = asyncio.get_running_loop()
    clock = FlushClock()
    soon = loop.create_future()
    clock.call_later(60, lambda: None)
    clock.call_later(0.01, lambda: soon.set_result(None))
    await asyncio.wait_for(soon, 5)  # would take a minute if the timer stayed on the first


async def test_a_failing_window_leaves_the_others_running(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.get_running_loop()
    clock = FlushClock()
    after = loop.create_future()

    def fail() -> None:
        raise RuntimeError("boom")

    clock.call_later(0.01, fail)
    clock.call_later(0.01, lambda: None)
    clock.call_later(0.05, lambda: after.set_result(None))  # needs the timer re-armed
    await asyncio.wait_for(after, 5)
    assert "coalescing window's flush failed" in caplog.text


async def test_many_windows_share_one_loop_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The point of the clock: a thousand windows ending together cost one loop timer."""
    loop = asyncio.get_running_loop()
    armed: list[float] = []
    call_at = loop.call_at

    def counting_call_at(when: float, callback: Any, *args: Any, **kw: Any) -> asyncio.TimerHandle:
        if getattr(callback, "__self__", None) is clock:
            armed.append(when)
        return call_at(when, callback, *args, **kw)

    monkeypatch.setattr(loop, "call_at", counting_call_at)
    clock = FlushClock()
    ended = 0
    done = loop.create_future()

    def end() -> None:
        nonlocal ended
        ended += 1
        if ended == 1000:
            done.set_result(None)

    # All due at the same moment: a slow machine must not spread them over two firings.
    now = loop.time()
    with monkeypatch.context() as frozen:
        frozen.setattr(loop, "time", lambda: now)
        for _ in range(1000):
            clock.call_later(0.02, end)
    await asyncio.wait_for(done, 5)
    assert len(armed) == 1
