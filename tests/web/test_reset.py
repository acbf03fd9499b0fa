"""A `reset` on the watch and chat views: the void text is cleared visibly, the new attempt shown.

The test plays the worker itself through `GenerationStore` (the same fenced Lua
writes a worker makes) on a generation that no worker was asked to run, so it
controls exactly when the reset happens while a real browser watches.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from playwright.sync_api import BrowserContext, expect
from redis.asyncio import Redis

from services import keys
from services.generation import GenerationRequest
from services.store import EventBatch, GenerationStore
from tests.web.conftest import WebStack, screenshot

T = TypeVar("T")


def run_async(stack: WebStack, step: Callable[[GenerationStore], Awaitable[T]]) -> T:
    """Runs one store step on its own loop in a thread (Playwright's sync API owns this one)."""

    async def with_store() -> T:
        redis = Redis.from_url(stack.redis_url, decode_responses=True)
        try:
            return await step(GenerationStore(redis, retention_s=600, max_stream_events=10_000))
        finally:
            await redis.aclose()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, with_store()).result(timeout=30)


def delta(text: str) -> EventBatch:
    return EventBatch(events=[("delta", json.dumps({"text": text}))], text_append=text)


def test_a_reset_voids_the_shown_text_and_the_new_attempt_replaces_it(
    context: BrowserContext, web_stack: WebStack
) -> None:
    gen_id = keys.new_generation_id()
    request = GenerationRequest.model_validate(
        {"model": "demo/story", "messages": [{"role": "user", "content": "reset me"}]}
    )
    token = "test-worker-token"

    async def first_attempt(store: GenerationStore) -> None:
        await store.create(gen_id, request, time.time())
        grant = await store.begin_attempt(gen_id, token, lease_ms=60_000)
        assert not isinstance(grant, str), grant
        assert await store.publish(gen_id, token, delta("This text will be voided.")) == "ok"

    run_async(web_stack, first_attempt)
    page = context.new_page()
    page.goto(f"{web_stack.base_url}/watch/{gen_id}")
    answer = page.locator("[data-role=answer]")
    expect(answer).to_have_text("This text will be voided.")

    async def second_attempt(store: GenerationStore) -> None:
        assert await store.restart_attempt(gen_id, token, "provider_error") == 2
        assert await store.publish(gen_id, token, delta("The second attempt's text.")) == "ok"

    run_async(web_stack, second_attempt)
    expect(answer).to_have_text("The second attempt's text.")
    discarded = page.locator(".discarded")
    expect(discarded).to_have_count(1)
    expect(discarded.locator("summary")).to_contain_text("Attempt 1 was discarded (provider error)")
    expect(discarded.locator(".discarded-text")).to_have_text("This text will be voided.")
    expect(page.locator(".notice-warn")).to_contain_text("Attempt 1 was discarded")
    expect(discarded.locator(".discarded-text")).to_be_visible()
    expect(page.locator("#stat-attempt")).to_have_text("2")
    expect(page.locator("#stat-tokens")).to_have_text("≈4")
    screenshot(page, "watch-reset")

    async def finish(store: GenerationStore) -> None:
        done = json.dumps({"finish_reason": "stop", "usage": None})
        batch = EventBatch(
            events=[("done", done)], terminal_status="completed", finish_reason="stop"
        )
        assert await store.publish(gen_id, token, batch) == "ok"

    run_async(web_stack, finish)
    expect(page.locator("#stat-status [data-status]")).to_have_attribute("data-status", "completed")
    assert page.evaluate("() => window.tokenrelay.generation.text") == "The second attempt's text."

    # A late joiner replays the same history and ends in the same place.
    late = context.new_page()
    late.goto(f"{web_stack.base_url}/watch/{gen_id}")
    expect(late.locator("#stat-status [data-status]")).to_have_attribute("data-status", "completed")
    expect(late.locator("[data-role=answer]")).to_have_text("The second attempt's text.")
    expect(late.locator(".discarded-text")).to_have_text("This text will be voided.")
