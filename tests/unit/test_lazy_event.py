"""`LazyEvent` and `Pipeline` (cli/lean_connection.py) behave as what they replace."""

from __future__ import annotations

import asyncio

from cli.lean_connection import LazyEvent, Pipeline


async def test_a_lazy_event_wakes_its_waiters_and_clears_like_asyncio_event() -> None:
    event = LazyEvent()
    assert not event.is_set()
    event.set()  # nobody waiting yet: no deque made
    assert event.is_set() and await event.wait() is True
    event.clear()
    waiters = [asyncio.create_task(event.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(task.done() for task in waiters)
    event.set()
    assert await asyncio.gather(*waiters) == [True, True, True]
    assert LazyEvent(is_set=True).is_set()
    assert "unset" in repr(LazyEvent())


async def test_a_cancelled_waiter_leaves_nothing_behind() -> None:
    event = LazyEvent()
    waiter = asyncio.create_task(event.wait())
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    event.set()
    assert event.is_set()


def test_a_pipeline_is_first_in_first_out_as_uvicorn_uses_its_deque() -> None:
    pipeline: Pipeline[str] = Pipeline()
    assert not pipeline
    for request in ("first", "second", "third"):
        pipeline.appendleft(request)
    assert [pipeline.pop() for _ in range(3)] == ["first", "second", "third"]
    assert not pipeline
