"""uvicorn's per-connection waiting objects, without memory until they are used.

Why: uvicorn gives every connection a `deque` for pipelined requests, an
`asyncio.Event` for flow control and one more per request for its body; each
`Event` makes its own `deque` of waiters at once. An empty deque costs 760 bytes
(CPython allocates its first block eagerly), so the three cost about 2.3 KB per
connection, a sixth of what an idle SSE connection costs in all, and almost never
hold anything: an SSE client sends no pipelined request and no body, and a
connection whose writes never pause never waits to drain.

`LazyEvent` is an `asyncio.Event` whose list of waiters exists only while someone
waits; `Pipeline` is the deque's two operations on a list. cli/http_protocol.py
puts them in place of uvicorn's objects as each is made, so uvicorn's code runs
unchanged on top of them.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, Generic, Literal, TypeVar

T = TypeVar("T")


class LazyEvent(asyncio.Event):
    """An `asyncio.Event` whose waiters' deque is made by the first `wait`."""

    _waiters: Any = ()  # `set` iterates it, `__repr__` measures it: both fine empty

    def __init__(self, *, is_set: bool = False) -> None:  # no deque: the point of the class
        self._value = is_set

    async def wait(self) -> Literal[True]:
        if self._value:
            return True
        if not self._waiters:
            self._waiters = collections.deque()
        return await super().wait()


class Pipeline(list[T], Generic[T]):
    """The pipelined requests of a connection: uvicorn appends left and pops right."""

    def appendleft(self, item: T) -> None:
        self.insert(0, item)
