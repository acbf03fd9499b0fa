"""A worker that lost its lease can never write again; a job delivered twice runs once."""

from __future__ import annotations

import asyncio
import signal
import time

from arq.connections import ArqRedis
from redis.asyncio import Redis

from services import keys
from services.generation import GenerationRequest
from services.store import AttemptGrant, EventBatch, GenerationStore
from tests.faults.support import (
    Processes,
    RedisServer,
    create,
    expected_story,
    runner_of,
    status,
    watch,
)
from tests.support.polling import wait_for
from tests.support.sse import assemble_text


async def test_sigstopped_worker_past_its_lease_is_fenced_after_sigcont(procs: Processes) -> None:
    workers, api = procs.ready(workers=2)
    gen_id = await create(api.base_url, max_tokens=160)
    viewer = asyncio.create_task(watch(api.base_url, gen_id))
    await wait_for(lambda: _content(api.base_url, gen_id), what="first output")

    paused = runner_of(gen_id, workers)
    paused.signal(signal.SIGSTOP)
    try:
        await wait_for(
            lambda: _attempt_at_least(api.base_url, gen_id, 2), what="takeover of the paused one"
        )
    finally:
        paused.signal(signal.SIGCONT)
    # Resumed, the paused worker still believes it runs attempt 1; it must find out
    # from a refused write or renewal and stop without having written anything.
    await wait_for(lambda: "'lease_lost'" in paused.log(), what="the paused worker to give up")

    first = await viewer
    late = await watch(api.base_url, gen_id)
    expected = expected_story(160)
    for viewing in (first, late):
        assert viewing.kinds.count("reset") == 1
        assert viewing.kinds[-1] == "done"
        assert [e.json()["attempt"] for e in viewing.events if e.event == "start"] == [1, 2]
        assert assemble_text(viewing.events) == expected
    final = await status(api.base_url, gen_id)
    assert (final["status"], final["content"], final["attempt"]) == ("completed", expected, 2)


async def test_store_refuses_every_write_of_an_expired_lease(own_redis: RedisServer) -> None:
    redis = Redis.from_url(own_redis.url, decode_responses=True)
    store = GenerationStore(redis, retention_s=60, max_stream_events=1000)
    gen_id = keys.new_generation_id()
    request = GenerationRequest.model_validate(
        {"model": "demo/story", "messages": [{"role": "user", "content": "hi"}]}
    )
    await store.create(gen_id, request, time.time())
    try:
        first = await store.begin_attempt(gen_id, "token-a", lease_ms=200)
        assert isinstance(first, AttemptGrant)
        assert await store.publish(gen_id, "token-a", EventBatch([("delta", "{}")], "old ")) == "ok"
        assert await store.begin_attempt(gen_id, "token-b", lease_ms=5000) == "busy"
        await wait_for(lambda: _lease_gone(redis, gen_id), what="lease expiry")
        # Lease expired and not yet taken over: still refused.
        assert await store.publish(gen_id, "token-a", EventBatch([("delta", "{}")], "x")) == (
            "fenced"
        )
        assert not await store.renew_lease(gen_id, "token-a", 5000)
        second = await store.begin_attempt(gen_id, "token-b", lease_ms=5000)
        assert isinstance(second, AttemptGrant) and second.attempt == 2
        stale = EventBatch([("done", "{}")], "late ", terminal_status="completed")
        assert await store.publish(gen_id, "token-a", stale) == "fenced"
        assert await store.restart_attempt(gen_id, "token-a", "x") == "fenced"
        assert not await store.hand_back(gen_id, "token-a")

        current = await store.status(gen_id)
        assert current is not None
        assert (current.status, current.content, current.attempt) == ("running", "", 2)
        kinds = [e.type for e in await store.read_after(gen_id, "0-0")]
        assert kinds == ["start", "delta", "reset", "start"]
    finally:
        await redis.aclose()


async def test_job_delivered_twice_runs_one_attempt(procs: Processes) -> None:
    runners = [procs.worker(), procs.worker()]
    api = procs.api()
    for runner in runners:
        runner.wait_ready()
    api.wait_ready()
    queue = ArqRedis.from_url(procs.env["TOKENRELAY_REDIS_URL"])
    try:
        gen_id = await create(api.base_url, max_tokens=80)
        # arq is at-least-once: the same generation arrives again under another job id.
        duplicate = await queue.enqueue_job(
            keys.GENERATION_JOB, gen_id, _job_id=f"{gen_id}:dup", _queue_name="tokenrelay:queue"
        )
        assert duplicate is not None
        viewing = await watch(api.base_url, gen_id)
    finally:
        await queue.aclose()

    await wait_for(
        lambda: any("'busy'" in r.log() or "'finished'" in r.log() for r in runners),
        what="the duplicate job to be refused",
    )
    assert [k for k in viewing.kinds if k in ("start", "reset")] == ["start"]
    assert viewing.kinds[-1] == "done"
    assert assemble_text(viewing.events) == expected_story(80)
    final = await status(api.base_url, gen_id)
    assert (final["attempt"], final["content"]) == (1, expected_story(80))


async def _content(base_url: str, gen_id: str) -> bool:
    return bool((await status(base_url, gen_id))["content"])


async def _attempt_at_least(base_url: str, gen_id: str, attempt: int) -> bool:
    return int((await status(base_url, gen_id))["attempt"]) >= attempt


async def _lease_gone(redis: Redis, gen_id: str) -> bool:
    return not await redis.exists(keys.lease(gen_id))


async def test_a_resent_publish_batch_appends_nothing(own_redis: RedisServer) -> None:
    """A cluster client may send a write again after a timeout although the first one
    was applied: the batch id makes the second one a no-op, so no text is doubled."""
    redis = Redis.from_url(own_redis.url, decode_responses=True)
    store = GenerationStore(redis, retention_s=60, max_stream_events=1000)
    gen_id = keys.new_generation_id()
    request = GenerationRequest.model_validate(
        {"model": "demo/story", "messages": [{"role": "user", "content": "hi"}]}
    )
    await store.create(gen_id, request, time.time())
    try:
        grant = await store.begin_attempt(gen_id, "token-a", lease_ms=5000)
        assert isinstance(grant, AttemptGrant)
        batch = EventBatch([("delta", '{"text":"once "}')], "once ", batch_id="token-a:1")
        assert await store.publish(gen_id, "token-a", batch) == "ok"
        assert await store.publish(gen_id, "token-a", batch) == "ok"  # the resend
        after = EventBatch([("delta", '{"text":"then"}')], "then", batch_id="token-a:2")
        assert await store.publish(gen_id, "token-a", after) == "ok"
        current = await store.status(gen_id)
        assert current is not None and current.content == "once then"
        kinds = [e.type for e in await store.read_after(gen_id, "0-0")]
        assert kinds == ["start", "delta", "delta"]
    finally:
        await redis.aclose()
