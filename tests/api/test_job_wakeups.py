"""A queued generation wakes an idle worker at once; the slow poll is only the fallback.

The worker here polls every 10 s (`TOKENRELAY_WORKER_POLL_S`), so a generation
that completes well inside that was started by the wake-up, not by the poll. The
second test queues a job without announcing it (as if the message was lost) and
checks the fallback poll still runs it.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from arq.connections import ArqRedis

from services import keys
from services.config import Settings
from services.generation import GenerationRequest
from services.redis_connections import command_client
from services.store import GenerationStore
from tests.support.polling import wait_for
from tests.support.processes import stack_env
from tests.support.stack import Stack, running_stack

BODY = {"model": "demo/echo", "messages": [{"role": "user", "content": "wake up"}]}


@pytest.fixture(scope="module")
def slow_polling(redis_url: str) -> Iterator[Stack]:
    env = stack_env(
        redis_url,
        TOKENRELAY_WORKER_POLL_S="10",
        TOKENRELAY_QUEUE_NAME="tokenrelay:wakeups-queue",
    )
    with running_stack(redis_url, env) as stack:
        yield stack


async def status_of(client: httpx.AsyncClient, gen_id: str) -> str:
    return str((await client.get(f"/v1/generations/{gen_id}")).json()["status"])


async def test_a_new_generation_starts_without_waiting_for_the_poll(slow_polling: Stack) -> None:
    async with httpx.AsyncClient(base_url=slow_polling.base_url, timeout=10) as client:
        for _ in range(3):  # each one, not only the first after start-up
            created = await client.post("/v1/generations", json=BODY)
            assert created.status_code == 202, created.text
            gen_id = created.json()["id"]

            async def completed(gen_id: str = gen_id) -> bool:
                return await status_of(client, gen_id) == "completed"

            await wait_for(completed, timeout_s=8, what="completion before the 10 s poll")


async def test_a_job_queued_without_a_wake_up_is_still_run_by_the_poll(
    slow_polling: Stack, redis_url: str
) -> None:
    settings = Settings(redis_url=redis_url)
    redis = command_client(settings, "test-wakeups")
    store = GenerationStore(redis, retention_s=600, max_stream_events=1000)
    queue = ArqRedis.from_url(redis_url)
    gen_id = keys.new_generation_id()
    try:
        request = GenerationRequest.model_validate(BODY)
        await store.create(gen_id, request, 0.0)
        await queue.enqueue_job(
            keys.GENERATION_JOB, gen_id, _job_id=gen_id, _queue_name="tokenrelay:wakeups-queue"
        )  # queued, and no one told
        async with httpx.AsyncClient(base_url=slow_polling.base_url, timeout=10) as client:

            async def completed() -> bool:
                return await status_of(client, gen_id) == "completed"

            await wait_for(completed, timeout_s=30, what="the fallback poll to run the job")
    finally:
        await queue.aclose()
        await redis.aclose()
