"""Fixtures of the fault suite: a Redis and a process set of each test's own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from arq.connections import ArqRedis

from tests.faults.support import Processes, RedisServer, fault_env  # own_redis: tests/conftest.py


@pytest.fixture()
def procs(own_redis: RedisServer) -> Iterator[Processes]:
    processes = Processes(fault_env(own_redis.url))
    try:
        yield processes
    finally:
        processes.stop_all()


@pytest.fixture()
async def queue(own_redis: RedisServer) -> AsyncIterator[ArqRedis]:
    """arq's client on this test's own Redis."""
    pool = ArqRedis.from_url(own_redis.url)
    try:
        yield pool
    finally:
        await pool.aclose()
