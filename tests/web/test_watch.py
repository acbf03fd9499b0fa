"""The watch page in a real browser: live and late viewers, through an API killed mid-stream."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from api.state import AppState
from services.providers.demo import story_tokens
from tests.support.processes import ApiProcess
from tests.web.conftest import WebStack, screenshot

PROMPT = "Watch this story together."
TOKENS = 400


def create_story(stack: WebStack, prompt: str = PROMPT, tokens: int = TOKENS) -> str:
    with stack.http() as http:
        response = http.post(
            "/v1/generations",
            json={
                "model": "demo/story",
                "messages": [{"role": "user", "content": prompt}],
                "max_tokens": tokens,
            },
        )
    assert response.status_code == 202, response.text
    gen_id: str = response.json()["id"]
    return gen_id


def wait_finished(stack: WebStack, gen_id: str) -> None:
    """Reads the generation's events to its terminal one."""
    with stack.http() as http, http.stream("GET", f"/v1/generations/{gen_id}/events") as events:
        for _ in events.iter_lines():
            pass


def open_watch(context: BrowserContext, stack: WebStack, gen_id: str) -> Page:
    page = context.new_page()
    page.goto(f"{stack.base_url}/watch/{gen_id}")
    return page


def watched_text(page: Page) -> str:
    text: str = page.evaluate("() => window.tokenrelay.generation.text")
    return text


def notices(page: Page) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = page.evaluate("() => window.tokenrelay.notices")
    return found


def test_two_viewers_keep_exactly_the_text_through_an_api_killed_mid_stream(
    context: BrowserContext, web_stack: WebStack
) -> None:
    expected = "".join(story_tokens(PROMPT, TOKENS))
    gen_id = create_story(web_stack)
    early = open_watch(context, web_stack, gen_id)
    expect(early.locator("#conn")).to_have_attribute("data-state", "live")
    expect(early.locator("[data-role=answer]")).not_to_be_empty()
    late = open_watch(context, web_stack, gen_id)  # a late joiner: replay, then live
    expect(late.locator("#conn")).to_have_attribute("data-state", "live")
    for page in (early, late):
        expect(page.locator("#stat-model")).to_have_text("demo/story")
        expect(page.locator("#stat-status [data-status]")).to_have_attribute(
            "data-status", "running"
        )
        expect(page.locator("#stat-ttft")).not_to_have_text("—")

    port = web_stack.api.port
    web_stack.api.kill()  # SIGKILL: no goodbye, connections just break
    web_stack.api.stop()  # already dead: this only closes its log file
    for page in (early, late):
        expect(page.locator("#conn")).to_have_attribute("data-state", "dropped", timeout=30_000)
        expect(page.locator(".notice-warn")).to_contain_text("Connection lost")
        assert expected.startswith(watched_text(page))
    web_stack.api = ApiProcess(web_stack.env, port=port).wait_ready(60)

    for page in (early, late):
        expect(page.locator("#stat-status [data-status]")).to_have_attribute(
            "data-status", "completed", timeout=90_000
        )
        assert watched_text(page) == expected
        assert page.locator("[data-role=answer]").inner_text().strip() == expected
        expect(page.locator(".notice-ok")).to_contain_text("Reconnected: resumed after event")
        expect(page.locator("#stat-tokens")).to_have_text(str(TOKENS))
        expect(page.locator("#conn")).to_have_attribute("data-state", "ended")
    kinds = [n["kind"] for n in notices(early)]
    assert kinds.index("warn") < kinds.index("ok"), kinds
    screenshot(late, "watch")


def test_a_finished_generation_replays_in_full(
    context: BrowserContext, web_stack: WebStack
) -> None:
    gen_id = create_story(web_stack, "short one", 12)
    wait_finished(web_stack, gen_id)
    page = open_watch(context, web_stack, gen_id)
    expect(page.locator("#stat-status [data-status]")).to_have_attribute("data-status", "completed")
    assert watched_text(page) == "".join(story_tokens("short one", 12))
    expect(page.locator(".notice-info")).to_contain_text("Replaying the finished generation")
    expect(page.locator("#stat-tokens")).to_have_text("12")


def test_a_cancelled_generation_says_so(context: BrowserContext, web_stack: WebStack) -> None:
    gen_id = create_story(web_stack, "to be cancelled", 2000)
    page = open_watch(context, web_stack, gen_id)
    expect(page.locator("[data-role=answer]")).not_to_be_empty()
    with web_stack.http() as http:
        assert http.post(f"/v1/generations/{gen_id}/cancel").status_code == 202
    expect(page.locator("#stat-status [data-status]")).to_have_attribute("data-status", "cancelled")
    expect(page.locator(".end-cancelled")).to_be_visible()
    expect(page.locator(".notice-warn")).to_contain_text("cancelled")


def test_an_unknown_generation_is_reported(context: BrowserContext, web_stack: WebStack) -> None:
    page = open_watch(context, web_stack, "gen_" + "0" * 32)
    expect(page.locator(".notice-error")).to_contain_text("does not exist")
    expect(page.locator("#conn")).to_have_attribute("data-state", "ended")


def test_viewers_are_counted_on_the_watch_page_and_the_dashboard(
    context: BrowserContext, web_stack: WebStack
) -> None:
    if "presence" not in AppState.__dataclass_fields__:
        pytest.skip("viewer counts need the hub's presence tracker (api/streaming/presence.py)")
    gen_id = create_story(web_stack, "count the viewers", 2000)
    try:
        first = open_watch(context, web_stack, gen_id)
        second = open_watch(context, web_stack, gen_id)
        for page in (first, second):
            expect(page.locator("#stat-viewers")).to_have_text("2", timeout=30_000)
        dashboard = context.new_page()
        dashboard.goto(f"{web_stack.base_url}/dashboard")
        row = dashboard.locator(f"tr[data-generation='{gen_id}']")
        expect(row.locator("td").nth(3)).to_have_text("2")
        second.close()
        expect(first.locator("#stat-viewers")).to_have_text("1", timeout=30_000)
        expect(row.locator("td").nth(3)).to_have_text("1")
    finally:
        with web_stack.http() as http:
            http.post(f"/v1/generations/{gen_id}/cancel")
