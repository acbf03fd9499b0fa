"""The event stream served below FastAPI (api/events_fast_path.py) answers as FastAPI does.

Every request is sent twice, in-process, to the same running app: once through
`EventsFastPath` (what `tokenrelay api` serves) and once to the FastAPI app alone.
Status, headers and body must be byte-for-byte the same, for streams, resumes, the
204 at the end, each refusal (credentials, tenants, viewer tokens, cursors), and
the requests the fast path leaves to FastAPI (other formats, values FastAPI
refuses, other methods). The plain requests must not reach FastAPI at all.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from redis.asyncio import Redis
from starlette.types import Receive, Scope, Send

from api.events_fast_path import EventsFastPath
from api.main import create_app
from services import keys
from services.config import Settings
from services.events import DeltaEvent, DoneEvent, encode_data
from services.generation import GenerationRequest, Message
from services.store import AttemptGrant, EventBatch, GenerationStore
from tests.faults.support import RedisServer

KEY_ALPHA = "key-alpha-" + secrets.token_hex(8)
KEY_BETA = "key-beta-" + secrets.token_hex(8)


class PassedOn:
    """The FastAPI app, noting each request the fast path passed on to it."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.state = app.state
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.app(scope, receive, send)


@dataclass
class Apps:
    fastapi: httpx.AsyncClient
    fast: httpx.AsyncClient
    passed_on: PassedOn
    finished: str  # alpha's generation, ended
    running: str  # alpha's generation, still running
    event_ids: list[str]


async def write_generation(store: GenerationStore, *, finish: bool) -> tuple[str, list[str]]:
    gen_id = keys.new_generation_id()
    request = GenerationRequest(model="demo/echo", messages=[Message(role="user", content="x")])
    await store.create(gen_id, request, time.time(), tenant="alpha")
    token = secrets.token_hex(8)
    assert isinstance(await store.begin_attempt(gen_id, token, 600_000), AttemptGrant)
    for text in ("Hel", "lo"):
        batch = EventBatch(events=[("delta", encode_data(DeltaEvent(text=text)))], text_append=text)
        assert await store.publish(gen_id, token, batch) == "ok"
    if finish:
        done = EventBatch(
            events=[("done", encode_data(DoneEvent(finish_reason="stop")))],
            terminal_status="completed",
            finish_reason="stop",
        )
        assert await store.publish(gen_id, token, done) == "ok"
    ids = [entry_id for entry_id, _ in await store.redis.xrange(keys.events(gen_id))]
    return gen_id, ids


@pytest.fixture()
async def apps(own_redis: RedisServer) -> AsyncIterator[Apps]:
    settings = Settings(
        redis_url=own_redis.url,
        api_keys=SecretStr(f"{KEY_ALPHA}:alpha,{KEY_BETA}:beta"),
        heartbeat_s=30,
    )
    app = create_app(settings)
    redis = Redis.from_url(own_redis.url, decode_responses=True)
    store = GenerationStore(redis, retention_s=600, max_stream_events=1000)
    async with app.router.lifespan_context(app):
        fast = EventsFastPath(app)
        passed_on = PassedOn(app)
        fast.app = cast(FastAPI, passed_on)
        finished, event_ids = await write_generation(store, finish=True)
        running, _ = await write_generation(store, finish=False)
        transports = (httpx.ASGITransport(app=app), httpx.ASGITransport(app=fast))
        async with (
            httpx.AsyncClient(transport=transports[0], base_url="http://relay") as plain,
            httpx.AsyncClient(transport=transports[1], base_url="http://relay") as through,
        ):
            yield Apps(plain, through, passed_on, finished, running, event_ids)
    await redis.aclose()


async def same_answer(apps: Apps, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """Send the request both ways; the answers must be identical. Returns the fast one."""
    plain = await apps.fastapi.request(method, url, **kwargs)
    fast = await apps.fast.request(method, url, **kwargs)
    assert (fast.status_code, fast.content) == (plain.status_code, plain.content), url
    assert fast.headers.multi_items() == plain.headers.multi_items(), url
    return fast


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_plain_streams_and_refusals_are_answered_below_fastapi(apps: Apps) -> None:
    events = f"/v1/generations/{apps.finished}/events"
    first, last = apps.event_ids[0], apps.event_ids[-1]
    answered = [
        (events, bearer(KEY_ALPHA), 200),
        (events, {**bearer(KEY_ALPHA), "Last-Event-ID": first}, 200),
        (f"{events}?last_event_id={first}", bearer(KEY_ALPHA), 200),
        (f"{events}?last_event_id=nope&last_event_id={first}", bearer(KEY_ALPHA), 200),
        (f"{events}?format=native&utm_source=x", {"x-api-key": KEY_ALPHA}, 200),
        (events, {**bearer(KEY_ALPHA), "Last-Event-ID": last}, 204),
        (events, {**bearer(KEY_ALPHA), "Last-Event-ID": "not-a-cursor"}, 400),
        (events, {**bearer(KEY_ALPHA), "Last-Event-ID": "99999999999999-0"}, 400),
        (f"/v1/generations/{keys.new_generation_id()}/events", bearer(KEY_ALPHA), 404),
        ("/v1/generations/not-an-id/events", bearer(KEY_ALPHA), 404),
        (events, bearer(KEY_BETA), 404),  # another tenant's generation
        (events, {}, 401),
        (events, bearer("wrong-key"), 401),
        (f"{events}?token={KEY_ALPHA}", {}, 401),  # a key is never taken from a URL
    ]
    for url, headers, status in answered:
        answer = await same_answer(apps, "GET", url, headers=headers)
        assert answer.status_code == status, (url, answer.text)
    assert apps.passed_on.paths == []

    streamed = await apps.fast.get(events, headers=bearer(KEY_ALPHA))
    assert streamed.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert streamed.headers["x-generation-id"] == apps.finished
    assert "event: done" in streamed.text and '"text":"Hel"' in streamed.text


async def test_viewer_tokens_read_only_the_generation_they_name(apps: Apps) -> None:
    minted = await apps.fastapi.post(
        f"/v1/generations/{apps.finished}/viewer-tokens", headers=bearer(KEY_ALPHA), json={}
    )
    assert minted.status_code == 201, minted.text
    token = minted.json()["token"]
    apps.passed_on.paths.clear()
    mine = await same_answer(apps, "GET", f"/v1/generations/{apps.finished}/events?token={token}")
    assert mine.status_code == 200 and "event: done" in mine.text
    other = await same_answer(apps, "GET", f"/v1/generations/{apps.running}/events?token={token}")
    assert other.status_code == 403
    assert apps.passed_on.paths == []


async def test_what_fastapi_should_answer_is_passed_on(apps: Apps) -> None:
    events = f"/v1/generations/{apps.finished}/events"
    passed = [
        ("GET", f"{events}?format=openai", 200),
        ("GET", f"{events}?format=bogus", 422),
        ("GET", f"{events}?last_event_id={'1' * 300}", 422),
        ("HEAD", events, 405),
        ("GET", f"{events}/", 307),  # FastAPI redirects to the path without the slash
        ("POST", events, 405),
    ]
    for method, url, status in passed:
        answer = await same_answer(apps, method, url, headers=bearer(KEY_ALPHA))
        assert answer.status_code == status, (method, url, answer.text)
    assert len(apps.passed_on.paths) == len(passed)
