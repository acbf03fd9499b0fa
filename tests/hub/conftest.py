"""Fixtures for the hub tests: API processes with the knobs each test needs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from tests.hub.support import DirectPublisher
from tests.support.processes import ApiProcess, stack_env

ApiFactory = Callable[..., ApiProcess]


@pytest.fixture()
def start_api(redis_url: str) -> Iterator[ApiFactory]:
    """Start API processes against the session Redis; every one is stopped afterwards."""
    started: list[ApiProcess] = []

    def start(**overrides: str) -> ApiProcess:
        api = ApiProcess(stack_env(redis_url, **overrides))
        started.append(api)
        return api.wait_ready()

    yield start
    for api in started:
        api.stop()


@pytest.fixture()
async def publisher(redis_url: str) -> AsyncIterator[DirectPublisher]:
    direct = DirectPublisher(redis_url)
    yield direct
    await direct.aclose()
