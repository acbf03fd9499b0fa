"""A running tokenrelay stack for tests: one worker and one API process on one Redis.

The building block behind the session's `stack` fixture (tests/conftest.py) and
the stacks that test packages configure for themselves (the fake upstreams in
tests/providers, the bounded HTTP layer in tests/cli): each is `running_stack`
with its own environment, so starting, readiness and teardown are written once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from tests.support.processes import ApiProcess, WorkerProcess


class Stack:
    """The processes of a running stack, and where to reach it."""

    def __init__(
        self, api: ApiProcess, worker: WorkerProcess, redis_url: str, env: dict[str, str]
    ) -> None:
        self.api = api
        self.worker = worker
        self.redis_url = redis_url
        self.base_url = api.base_url
        self.env = env
        """The processes' environment: another replica of this stack starts with it."""


@contextlib.contextmanager
def running_stack(redis_url: str, env: dict[str, str]) -> Iterator[Stack]:
    """A worker and an API process started with `env`, ready; both stopped on exit."""
    worker = WorkerProcess(env)
    api = ApiProcess(env)
    try:
        worker.wait_ready()
        api.wait_ready()
        yield Stack(api, worker, redis_url, env)
    finally:
        api.stop()
        worker.stop()
