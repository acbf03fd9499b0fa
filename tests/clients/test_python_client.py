"""The Python client against real API and worker processes.

Every fault is a real one: an API replica SIGKILLed or SIGTERMed mid-stream and
started again on its port, a worker SIGKILLed so that another takes over (a
`reset`), a stream trimmed under a reader (a `resync`). The client is left to
resume by itself; what it assembled must be exactly the generation's text.
"""

from __future__ import annotations

import asyncio
import signal
import threading

import httpx
import pytest
import redis as sync_redis
from tokenrelay_client import (
    AsyncTokenRelay,
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ReconnectPolicy,
    StreamEvent,
    TokenRelay,
)

from services import keys
from tests.clients.support import MESSAGES, restart_on_same_port
from tests.conftest import Stack
from tests.faults.support import Processes, RedisServer, expected_story, runner_of
from tests.support.polling import wait_for
from tests.support.processes import ApiProcess

POLICY = ReconnectPolicy(max_backoff_s=1.0)


class RequestCounter:
    """Counts the requests an httpx client sends (an event hook, not a stand-in)."""

    def __init__(self) -> None:
        self.requests: list[str] = []

    def __call__(self, request: httpx.Request) -> None:
        self.requests.append(f"{request.method} {request.url.path}")


def counted_client(
    base_url: str, counter: RequestCounter, api_key: str | None = None
) -> TokenRelay:
    http = httpx.Client(event_hooks={"request": [counter]})
    return TokenRelay(base_url=base_url, http_client=http, api_key=api_key)


def test_sync_stream_get_list_and_cancel(stack: Stack) -> None:
    with TokenRelay(base_url=stack.base_url) as tr:
        created = tr.generations.create(model="demo/story", messages=MESSAGES, max_tokens=40)
        with tr.generations.stream(created.id) as stream:
            kinds = [event.type for event in stream]
        assert kinds[0] == "start" and kinds[-1] == "done"
        assert stream.text == expected_story(40)
        assert (stream.status, stream.attempt, stream.reconnects) == ("completed", 1, 0)
        snapshot = tr.generations.get(created.id)
        assert snapshot.content == stream.text and snapshot.last_event_id == stream.last_event_id
        assert created.id in [row["id"] for row in tr.generations.list(limit=20).data]
        with pytest.raises(ConflictError):
            tr.generations.cancel(created.id)

        running = tr.generations.create(model="demo/story", messages=MESSAGES, max_tokens=4000)
        stream = tr.generations.stream(running.id)
        for event in stream:
            if event.type == "delta":
                assert tr.generations.cancel(running.id).id == running.id
                break
        stream.close()
        assert tr.generations.stream(running.id).until_done().status == "cancelled"


def test_resuming_from_the_terminal_event_ends_at_once(stack: Stack) -> None:
    counter = RequestCounter()
    with counted_client(stack.base_url, counter) as tr:
        created = tr.generations.create(model="demo/echo", messages=MESSAGES)
        done = tr.generations.stream(created.id).until_done()
        counter.requests.clear()
        again = tr.generations.stream(created.id, last_event_id=done.last_event_id)
        assert list(again) == []
    assert again.status == "completed" and again.finished
    # 204 (the contract), or today's empty 200 and one status read: never a loop.
    assert len(counter.requests) <= 2, counter.requests


async def test_async_stream_and_typed_refusals(stack: Stack) -> None:
    async with AsyncTokenRelay(base_url=stack.base_url) as tr:
        created = await tr.generations.create(model="demo/story", messages=MESSAGES, max_tokens=30)
        stream = tr.generations.stream(created.id)
        kinds = [event.type async for event in stream]
        assert kinds[-1] == "done" and stream.text == expected_story(30)
        with pytest.raises(NotFoundError) as missing:
            await tr.generations.stream("gen_doesnotexist").until_done()
        assert missing.value.type == "not_found_error"
    # With auth off, a POST from another site's page is a permission_error.
    http = httpx.AsyncClient(headers={"Origin": "https://elsewhere.example"})
    async with AsyncTokenRelay(base_url=stack.base_url, http_client=http) as tr:
        with pytest.raises(PermissionDeniedError):
            await tr.generations.create(model="demo/echo", messages=MESSAGES)
    await http.aclose()


def test_wrong_key_is_401_and_over_the_limit_429_each_after_one_request(
    procs: Processes,
) -> None:
    procs.env["TOKENRELAY_API_KEYS"] = "k1"
    procs.env["TOKENRELAY_MAX_RUNNING_PER_TENANT"] = "1"
    _, api = procs.ready(workers=1)
    counter = RequestCounter()
    with counted_client(api.base_url, counter, api_key="wrong") as tr:
        with pytest.raises(AuthenticationError):
            tr.generations.create(model="demo/echo", messages=MESSAGES)
        with pytest.raises(AuthenticationError):
            list(tr.generations.stream("gen_x"))
    assert len(counter.requests) == 2

    counter.requests.clear()
    with counted_client(api.base_url, counter, api_key="k1") as tr:
        running = tr.generations.create(model="demo/story", messages=MESSAGES, max_tokens=4000)
        try:
            tr.generations.create(model="demo/story", messages=MESSAGES)
        except RateLimitError as limited:
            assert limited.type == "rate_limit_error" and limited.retry_after_s is not None
        else:
            pytest.skip("the server has no per-tenant limit yet (a second generation was queued)")
        finally:
            tr.generations.cancel(running.id)
        assert counter.requests.count("POST /v1/generations") == 2  # the 429 was not retried
        assert tr.generations.stream(running.id).until_done().status == "cancelled"


def test_viewer_token_reads_but_may_do_nothing_else(stack: Stack) -> None:
    with TokenRelay(base_url=stack.base_url) as tr:
        created = tr.generations.create(model="demo/story", messages=MESSAGES, max_tokens=20)
        try:
            grant = tr.generations.viewer_token(created.id, ttl_s=60)
        except NotFoundError:
            pytest.skip("the server has no viewer tokens yet (POST …/viewer-tokens answers 404)")
    with TokenRelay(base_url=stack.base_url, token=grant.token) as viewer:
        assert viewer.generations.stream(created.id).until_done().text == expected_story(20)
        with pytest.raises(PermissionDeniedError):
            viewer.generations.list()
        with pytest.raises((PermissionDeniedError, ConflictError)):
            viewer.generations.cancel(created.id)
    tampered = TokenRelay(base_url=stack.base_url, token=grant.token[:-2] + "xx")
    with tampered, pytest.raises(AuthenticationError):
        tampered.generations.get(created.id)


async def test_api_replica_sigkilled_then_sigtermed_both_clients_resume_exactly(
    procs: Processes,
) -> None:
    _, api = procs.ready(workers=1)
    for signum in (signal.SIGKILL, signal.SIGTERM):
        api = await follow_through_a_fault(procs, api, signum)


async def follow_through_a_fault(procs: Processes, api: ApiProcess, signum: int) -> ApiProcess:
    """An async and a sync (in a thread) client on one generation; the API dies and returns."""
    async with AsyncTokenRelay(base_url=api.base_url, stream_policy=POLICY) as tr:
        created = await tr.generations.create(model="demo/story", messages=MESSAGES, max_tokens=160)
        stream = tr.generations.stream(created.id)
        seen: list[StreamEvent] = []

        async def follow() -> None:
            async for event in stream:
                seen.append(event)

        task = asyncio.create_task(follow())
        with TokenRelay(base_url=api.base_url, stream_policy=POLICY) as sync_tr:
            sync_stream = sync_tr.generations.stream(created.id)
            thread = threading.Thread(target=sync_stream.until_done)
            thread.start()
            await wait_for(lambda: len(seen) >= 5, what="a few events before the fault")
            api.signal(signum)
            await asyncio.to_thread(api.process.wait, 20)
            api = await asyncio.to_thread(restart_on_same_port, procs, api)
            await asyncio.wait_for(task, timeout=90)
            await asyncio.to_thread(thread.join, 90)
    assert not thread.is_alive()
    for resumed in (stream, sync_stream):
        assert resumed.text == expected_story(160), signum
        assert resumed.status == "completed" and resumed.reconnects >= 1
    ids = [event.id for event in seen]
    assert len(ids) == len(set(ids)), "an event was delivered twice"
    return api


async def test_worker_takeover_resets_the_text(procs: Processes) -> None:
    workers, api = procs.ready(workers=2)
    async with AsyncTokenRelay(base_url=api.base_url, stream_policy=POLICY) as tr:
        created = await tr.generations.create(model="demo/story", messages=MESSAGES, max_tokens=120)
        stream = tr.generations.stream(created.id)
        text_before_reset: list[str] = []
        async for event in stream:
            if event.type == "delta" and len(stream.text) > 15 and not text_before_reset:
                text_before_reset.append(stream.text)
                runner_of(created.id, workers).kill()
            if event.type == "reset":
                assert stream.text == "" and event.attempt == 2
    assert text_before_reset and text_before_reset[0]
    assert stream.text == expected_story(120)
    assert stream.attempt == 2 and stream.status == "completed"


async def test_resync_after_the_stream_was_trimmed(
    procs: Processes, own_redis: RedisServer
) -> None:
    _, api = procs.ready(workers=1)
    async with AsyncTokenRelay(base_url=api.base_url, stream_policy=POLICY) as tr:
        created = await tr.generations.create(model="demo/story", messages=MESSAGES, max_tokens=160)
        early = tr.generations.stream(created.id)
        first: list[StreamEvent] = []
        async for event in early:
            first.append(event)
            if len(first) == 3:
                break
        await early.close()
        with sync_redis.Redis.from_url(own_redis.url) as r:
            r.xtrim(keys.events(created.id), maxlen=1, approximate=False)
        # The first event is gone now: the server must say so rather than skip ahead.
        resumed = tr.generations.stream(created.id, last_event_id=first[0].id)
        kinds = [event.type async for event in resumed]
    assert kinds[0] == "resync" and kinds[-1] == "done"
    assert resumed.text == expected_story(160)
