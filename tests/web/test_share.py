"""Viewer-token links in a real browser: a person with no key watches live from a link."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import BrowserContext, Request, expect

from tests.support.processes import ApiProcess
from tests.web.conftest import WebStack, screenshot

API_KEY = "share-test-key-5e1d0c9b8a7f"


@pytest.fixture()
def auth_api(web_stack: WebStack) -> Iterator[ApiProcess]:
    """An API replica with auth on, on the module's Redis and worker."""
    api = ApiProcess({**web_stack.env, "TOKENRELAY_API_KEYS": f"{API_KEY}:acme"})
    try:
        yield api.wait_ready(60)
    finally:
        api.stop()


def start_story(api: ApiProcess, tokens: int) -> str:
    answer = httpx.post(
        f"{api.base_url}/v1/generations",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json={
            "model": "demo/story",
            "max_tokens": tokens,
            "messages": [{"role": "user", "content": "a shared story"}],
        },
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def test_a_token_link_shows_the_generation_live_to_a_browser_without_a_key(
    context: BrowserContext, auth_api: ApiProcess
) -> None:
    gen_id = start_story(auth_api, 200)
    minted = httpx.post(
        f"{auth_api.base_url}/v1/generations/{gen_id}/viewer-tokens",
        headers={"Authorization": f"Bearer {API_KEY}"},
    ).json()
    token = minted["token"]
    requests: list[Request] = []
    context.on("request", lambda request: requests.append(request))
    page = context.new_page()
    page.goto(f"{auth_api.base_url}{minted['watch_url']}")

    # Live first, then to the end, and never asked for a key.
    expect(page.locator("#stat-status [data-status]")).to_have_attribute("data-status", "running")
    assert "token=" not in page.url  # taken out of the address bar once loaded
    expect(page.locator("#stat-status [data-status]")).to_have_attribute("data-status", "completed")
    expect(page.locator("#key-dialog")).to_be_hidden()
    screenshot(page, "watch-from-token-link")
    final = httpx.get(
        f"{auth_api.base_url}/v1/generations/{gen_id}",
        headers={"Authorization": f"Bearer {API_KEY}"},
    ).json()
    assert page.evaluate("() => window.tokenrelay.generation.text") == final["content"]

    # The token went in headers after the first navigation, never in another URL.
    with_token_in_url = [r.url for r in requests if token in r.url]
    assert len(with_token_in_url) == 1 and "/watch/" in with_token_in_url[0]
    api_calls = [r for r in requests if "/v1/generations/" in r.url]
    assert api_calls and all(r.headers.get("authorization") == f"Bearer {token}" for r in api_calls)
    # Nor in a Referer (the pages send none: Referrer-Policy no-referrer).
    assert not [r.url for r in requests if token in (r.headers.get("referer") or "")]


def test_the_share_button_mints_a_link_that_opens_without_the_key(
    context: BrowserContext, auth_api: ApiProcess
) -> None:
    gen_id = start_story(auth_api, 20)
    page = context.new_page()
    page.goto(f"{auth_api.base_url}/watch/{gen_id}")
    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()
    dialog.locator("input[name=key]").fill(API_KEY)
    dialog.get_by_role("button", name="Use key").click()
    expect(page.locator("#stat-status [data-status]")).to_have_attribute("data-status", "completed")
    page.on("dialog", lambda prompt: prompt.dismiss())  # clipboard refused: the link is shown
    page.get_by_role("button", name="Share").click()
    page.wait_for_function("() => document.getElementById('share-url').value.includes('?token=')")
    link = page.locator("#share-url").input_value()
    assert link.startswith(f"{auth_api.base_url}/watch/{gen_id}?token=")

    stranger = context.browser.new_context() if context.browser else None
    assert stranger is not None
    try:
        other = stranger.new_page()
        other.goto(link)
        expect(other.locator("#stat-status [data-status]")).to_have_attribute(
            "data-status", "completed"
        )
        expect(other.locator("#key-dialog")).to_be_hidden()
    finally:
        stranger.close()
