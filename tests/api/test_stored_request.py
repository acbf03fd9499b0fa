"""A stored request the worker cannot read fails at once, precisely, and quietly.

The API refuses such requests up front (test_hostile_input.py), but one may still
be in Redis, written by a version with other limits. It must not escape into the
job runner: arq would log the error with part of the request in it, retry, and the
generation would end much later as `worker_lost`.
"""

from __future__ import annotations

import json
import time

import httpx
from arq.connections import ArqRedis
from redis.asyncio import Redis

from services import keys
from tests.support.json_bodies import nested_object
from tests.support.sse import read_sse
from tests.support.stack import Stack

MARKER = "private-words-of-the-user"


def unreadable_request() -> str:
    """A request nested past what pydantic's JSON parser reads, ending in private text."""
    tool = {"type": "function", "function": {"name": "f", "parameters": nested_object(250)}}
    return json.dumps(
        {
            "model": "demo/echo",
            "tools": [tool],
            "messages": [{"role": "user", "content": "hi"}],
            "metadata": {"note": MARKER},
        }
    )


async def test_an_unreadable_stored_request_fails_without_quoting_it(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    gen_id = keys.new_generation_id()
    redis = Redis.from_url(stack.redis_url, decode_responses=True)
    queue = ArqRedis.from_url(stack.redis_url)
    try:
        await redis.hset(
            keys.meta(gen_id),
            mapping={
                "id": gen_id,
                "model": "demo/echo",
                "status": "queued",
                "attempt": 0,
                "created_at": repr(time.time()),
                "request": unreadable_request(),
            },
        )
        await queue.enqueue_job(
            keys.GENERATION_JOB, gen_id, _job_id=gen_id, _queue_name="tokenrelay:queue"
        )
    finally:
        await queue.aclose()
        await redis.aclose()

    reading = await read_sse(client, f"/v1/generations/{gen_id}/events")
    assert reading.closed_by_server
    assert [event.event for event in reading.events] == ["start", "error"]
    error = reading.events[-1].json()
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("the stored request cannot be read")
    assert error["retryable"] is False
    status = (await client.get(f"/v1/generations/{gen_id}")).json()
    assert (status["status"], status["attempt"]) == ("failed", 1)

    stack.worker.wait_for_log(f"generation {gen_id} not started: failed")
    log = stack.worker.log()
    assert MARKER not in log
    assert "input_value" not in log
