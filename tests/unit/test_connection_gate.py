"""When an API process refuses a new SSE connection (api/streaming/capacity.py).

A replica past its cap or draining answers 503 with advice on when to come back;
the advice is jittered so that a refused crowd does not return in step.
"""

from __future__ import annotations

import asyncio

from api.streaming.capacity import ConnectionGate


def gate(limit: int = 2, *, retry_base_s: float = 2.0) -> tuple[ConnectionGate, asyncio.Event]:
    draining = asyncio.Event()
    return ConnectionGate(limit, draining, retry_base_s=retry_base_s), draining


def test_slots_are_taken_up_to_the_limit_and_freed_on_release() -> None:
    connections, _ = gate(limit=2)
    assert connections.try_acquire() is None
    assert connections.try_acquire() is None
    assert connections.refusal() == "full"
    assert connections.try_acquire() == "full"
    assert connections.open == 2  # a refusal takes nothing
    connections.release()
    assert connections.refusal() is None
    assert connections.try_acquire() is None


def test_draining_refuses_even_with_free_slots() -> None:
    connections, draining = gate(limit=10)
    draining.set()
    assert connections.refusal() == "draining"
    assert connections.try_acquire() == "draining"
    assert connections.open == 0


def test_an_extra_release_does_not_open_more_slots_than_the_limit() -> None:
    connections, _ = gate(limit=1)
    connections.release()
    assert connections.open == 0
    assert connections.try_acquire() is None
    assert connections.try_acquire() == "full"


async def test_wait_idle_returns_once_the_last_connection_closes() -> None:
    """Shutdown waits on this before the process exits."""
    connections, _ = gate()
    await asyncio.wait_for(connections.wait_idle(), 1)  # nothing open: at once
    connections.try_acquire()
    connections.try_acquire()
    waiter = asyncio.create_task(connections.wait_idle())
    connections.release()
    await asyncio.sleep(0)
    assert not waiter.done()
    connections.release()
    await asyncio.wait_for(waiter, 1)


def test_full_advice_is_jittered_over_base_to_twice_base() -> None:
    connections, _ = gate(retry_base_s=2.0)
    advice = [connections.retry_advice("full") for _ in range(300)]
    assert all(2000 <= retry_ms <= 4000 for _, retry_ms in advice)
    assert all(2 <= after_s <= 4 for after_s, _ in advice)
    assert len({retry_ms for _, retry_ms in advice}) > 50, "not jittered"


def test_draining_advice_is_short_and_never_zero_seconds() -> None:
    """Another replica can take the client at once; Retry-After must still be a
    positive integer, as HTTP clients read 0 as "now" in a tight loop."""
    connections, _ = gate(retry_base_s=30.0)
    advice = [connections.retry_advice("draining") for _ in range(300)]
    assert all(100 <= retry_ms <= 1000 for _, retry_ms in advice)
    assert {after_s for after_s, _ in advice} == {1}
