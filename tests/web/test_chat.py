"""The chat page in a real browser: streamed answers, history, Stop, errors, safe markdown."""

from __future__ import annotations

import re

from playwright.sync_api import BrowserContext, Locator, Page, expect

from services.providers.demo import story_tokens
from tests.web.conftest import WebStack, screenshot


def open_chat(context: BrowserContext, stack: WebStack) -> Page:
    page = context.new_page()
    page.goto(f"{stack.base_url}/")
    expect(page.locator("#model option")).not_to_have_count(0)
    return page


def send(page: Page, model: str, text: str) -> Locator:
    """Sends a message and answers the assistant turn it creates."""
    before = page.locator(".message.assistant").count()
    page.select_option("#model", model)
    page.fill("#prompt", text)
    page.keyboard.press("Enter")
    turn = page.locator(".message.assistant").nth(before)
    expect(turn).to_have_attribute("data-generation", re.compile(r"^gen_[0-9a-f]{32}$"))
    return turn


def status_of(turn: Locator) -> Locator:
    return turn.locator(".answer-footer [data-status]")


def raw_text(page: Page, turn: Locator) -> str:
    gen_id = turn.get_attribute("data-generation")
    text: str = page.evaluate("(id) => window.tokenrelay.generations[id].text", gen_id)
    return text


def test_answer_streams_in_and_the_conversation_keeps_its_history(
    context: BrowserContext, web_stack: WebStack
) -> None:
    page = open_chat(context, web_stack)
    first_prompt = "Tell me a story about a relay."
    turn = send(page, "demo/story", first_prompt)

    # It streams: the page shows part of the answer while the generation still runs.
    expect(status_of(turn)).to_have_attribute("data-status", "running")
    expect(turn.locator("[data-role=answer]")).to_contain_text(story_tokens(first_prompt, 3)[0])
    partial = raw_text(page, turn)
    first_answer = "".join(story_tokens(first_prompt, 256))
    assert first_answer.startswith(partial) and len(partial) < len(first_answer)
    expect(page.locator("#stop")).to_be_visible()
    screenshot(page, "chat")

    expect(status_of(turn)).to_have_attribute("data-status", "completed", timeout=60_000)
    assert raw_text(page, turn) == first_answer
    assert turn.locator("[data-role=answer]").inner_text().strip() == first_answer
    share = turn.locator("a.share-link")
    gen_id = turn.get_attribute("data-generation")
    assert share.get_attribute("href") == f"{web_stack.base_url}/watch/{gen_id}"
    expect(page.locator("#send")).to_be_visible()

    # The next message carries the history: the demo story is seeded by every message.
    second_prompt = "And then?"
    second = send(page, "demo/story", second_prompt)
    expect(status_of(second)).to_have_attribute("data-status", "completed", timeout=60_000)
    seed = "\n".join([first_prompt, first_answer, second_prompt])
    assert raw_text(page, second) == "".join(story_tokens(seed, 256))

    # A reload keeps the conversation (it lives in the tab's session).
    page.reload()
    expect(page.locator(".message.assistant")).to_have_count(2)
    expect(page.locator(".message.user").nth(1)).to_have_text(second_prompt)


def test_stop_cancels_the_answer_and_the_chat_goes_on(
    context: BrowserContext, web_stack: WebStack
) -> None:
    page = open_chat(context, web_stack)
    prompt = "A long story, please."
    turn = send(page, "demo/story", prompt)
    expect(turn.locator("[data-role=answer]")).not_to_be_empty()
    page.click("#stop")

    expect(status_of(turn)).to_have_attribute("data-status", "cancelled", timeout=30_000)
    expect(turn.locator(".end-note")).to_contain_text("Stopped")
    gen_id = turn.get_attribute("data-generation")
    with web_stack.http() as http:
        status = http.get(f"/v1/generations/{gen_id}").json()
    assert status["status"] == "cancelled"
    partial = raw_text(page, turn)
    assert partial == status["content"]
    assert 0 < len(partial) < len("".join(story_tokens(prompt, 256)))
    expect(page.locator("#send")).to_be_visible()

    # The stopped answer's text stays part of the conversation.
    follow_up = "Go on."
    second = send(page, "demo/story", follow_up)
    expect(status_of(second)).to_have_attribute("data-status", "completed", timeout=60_000)
    assert raw_text(page, second) == "".join(story_tokens(f"{prompt}\n{partial}\n{follow_up}", 256))


def test_errors_are_shown_not_silence(context: BrowserContext, web_stack: WebStack) -> None:
    page = open_chat(context, web_stack)
    # Models the list does not offer, to reach both error paths: the worker's `error`
    # event (unknown demo model) and the API refusing the request (unknown provider).
    page.evaluate(
        """() => {
        for (const id of ["demo/nonexistent", "nope/model"]) {
          const option = document.createElement("option");
          option.value = option.textContent = id;
          document.querySelector("#model").append(option);
        }
    }"""
    )
    failed = send(page, "demo/nonexistent", "hello")
    expect(status_of(failed)).to_have_attribute("data-status", "failed", timeout=30_000)
    expect(failed.locator(".end-error")).to_contain_text("unknown demo model")

    page.select_option("#model", "nope/model")
    page.fill("#prompt", "hello")
    page.keyboard.press("Enter")
    refused = page.locator(".message.assistant").nth(1)
    expect(status_of(refused)).to_have_attribute("data-status", "failed")
    expect(refused.locator(".end-error")).to_contain_text("nope")
    expect(page.locator("#send")).to_be_visible()


def test_markdown_is_rendered_and_html_in_answers_is_inert(
    context: BrowserContext, web_stack: WebStack
) -> None:
    page = open_chat(context, web_stack)
    message = (
        "Some **bold** and `inline code` and [a link](https://example.com/x?a=1&b=2).\n\n"
        "- first\n- second\n\n"
        "```python\nprint('<b>not bold</b>')\n```\n\n"
        '<img src=x onerror="window.pwned=1"> <script>window.pwned=2</script>'
        " [bad](javascript:window.pwned=3)"
    )
    turn = send(page, "demo/echo", message)
    expect(status_of(turn)).to_have_attribute("data-status", "completed", timeout=30_000)
    answer = turn.locator("[data-role=answer]")
    expect(answer.locator("strong")).to_have_text("bold")
    expect(answer.locator("p code")).to_have_text("inline code")
    expect(answer.locator("a")).to_have_count(1)
    expect(answer.locator("a")).to_have_attribute("href", "https://example.com/x?a=1&b=2")
    expect(answer.locator("li")).to_have_count(2)
    expect(answer.locator("pre code")).to_have_text("print('<b>not bold</b>')")
    expect(answer.locator("img, script, b, [onerror]")).to_have_count(0)
    expect(answer).to_contain_text('<img src=x onerror="window.pwned=1">')
    assert page.evaluate("() => window.pwned") is None
