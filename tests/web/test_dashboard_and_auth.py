"""The dashboard, and the pages with auth on: a key asked once, never put in a URL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import BrowserContext, Request, expect

from tests.support.processes import ApiProcess
from tests.web.conftest import WebStack
from tests.web.test_watch import create_story, wait_finished

API_KEY = "web-test-key-7f3a"


def test_dashboard_lists_running_and_finished_generations_with_watch_links(
    context: BrowserContext, web_stack: WebStack
) -> None:
    running = create_story(web_stack, "a long one for the dashboard", 2000)
    finished = create_story(web_stack, "a short one for the dashboard", 5)
    wait_finished(web_stack, finished)
    try:
        page = context.new_page()
        page.goto(f"{web_stack.base_url}/dashboard")
        running_row = page.locator(f"tr[data-generation='{running}']")
        finished_row = page.locator(f"tr[data-generation='{finished}']")
        expect(running_row).to_have_attribute("data-status", "running")
        expect(running_row.locator("td").nth(2)).to_have_text("demo/story")
        expect(finished_row).to_have_attribute("data-status", "completed")
        expect(finished_row.locator("td").nth(4)).to_have_text("5")  # tokens, from usage
        expect(page.locator("#tile-running")).not_to_have_text("0")

        page.get_by_role("tab", name="Running").click()
        expect(finished_row).to_have_count(0)
        expect(running_row).to_have_count(1)

        running_row.get_by_role("link", name="Watch live").click()
        page.wait_for_url(f"**/watch/{running}")
        expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    finally:
        with web_stack.http() as http:
            http.post(f"/v1/generations/{running}/cancel")


@pytest.fixture()
def auth_api(web_stack: WebStack) -> Iterator[ApiProcess]:
    """A second API replica on the same Redis and worker, with auth on."""
    api = ApiProcess({**web_stack.env, "TOKENRELAY_API_KEYS": f"other-key,{API_KEY}"})
    try:
        yield api.wait_ready(60)
    finally:
        api.stop()


def test_with_auth_on_the_page_asks_for_a_key_once_and_never_puts_it_in_a_url(
    context: BrowserContext, auth_api: ApiProcess
) -> None:
    requests: list[Request] = []
    context.on("request", lambda request: requests.append(request))
    page = context.new_page()
    page.goto(f"{auth_api.base_url}/")

    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()
    dialog.locator("input[name=key]").fill("wrong-key")
    dialog.get_by_role("button", name="Use key").click()
    expect(dialog).to_be_visible()  # rejected: asked again, saying so
    expect(dialog.locator("[data-role=key-message]")).to_contain_text("not accepted")
    dialog.locator("input[name=key]").fill(API_KEY)
    dialog.get_by_role("button", name="Use key").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#model option")).not_to_have_count(0)

    page.select_option("#model", "demo/echo")
    page.fill("#prompt", "hello with a key")
    page.keyboard.press("Enter")
    turn = page.locator(".message.assistant").first
    expect(turn.locator(".answer-footer [data-status]")).to_have_attribute(
        "data-status", "completed"
    )
    expect(turn.locator("[data-role=answer]")).to_have_text("hello with a key")

    # The watch page in the same tab session reuses the key without asking.
    gen_id = turn.get_attribute("data-generation")
    page.goto(f"{auth_api.base_url}/watch/{gen_id}")
    expect(page.locator("#stat-status [data-status]")).to_have_attribute("data-status", "completed")
    expect(page.locator("#key-dialog")).to_be_hidden()
    assert page.evaluate("() => window.tokenrelay.generation.text") == "hello with a key"

    urls = [request.url for request in requests]
    assert any("/events" in url for url in urls)
    assert not [url for url in urls if API_KEY in url or "wrong-key" in url]
    api_calls = [r for r in requests if "/v1/" in r.url]
    assert all(r.headers.get("authorization") == f"Bearer {API_KEY}" for r in api_calls[-3:])

    page.get_by_role("button", name="Forget key").click()
    expect(page.locator("#key-dialog")).to_be_visible()
