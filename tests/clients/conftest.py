"""Fixtures for the client libraries' tests: a Redis and a process set of each test's own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.support import Processes, RedisServer, fault_env  # own_redis: tests/conftest.py


@pytest.fixture()
def procs(own_redis: RedisServer) -> Iterator[Processes]:
    """Processes whose streams ask clients to come back after 200 ms (`retry:`)."""
    processes = Processes(fault_env(own_redis.url, TOKENRELAY_SSE_RETRY_MS="200"))
    try:
        yield processes
    finally:
        processes.stop_all()
