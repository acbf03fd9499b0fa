"""The JavaScript client in Chromium: bare, and as React hooks in the example chat app.

Against a real API and worker, the API is SIGKILLed mid-answer and started again
on its port; the page is reloaded mid-answer. What the page shows at the end
must be exactly the text the server stored. The example app
(clients/js/examples/chat) is built with its own `npm run build` and served by
`vite preview`, which passes /v1 through to the API, as a user runs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from cli.redis_server import free_port
from services.providers.demo import story_tokens
from tests.support.processes import ROOT, ApiProcess
from tests.web.conftest import WebStack, screenshot

EXAMPLE = ROOT / "clients" / "js" / "examples" / "chat"
PROMPT = "a story about resuming"


def kill_api(web_stack: WebStack) -> None:
    web_stack.api.kill()  # SIGKILL: connections just break
    web_stack.api.stop()  # already dead: closes its log file


def start_api_again(web_stack: WebStack) -> None:
    web_stack.api = ApiProcess(web_stack.env, port=web_stack.api.port).wait_ready(60)


def stored_text(web_stack: WebStack, gen_id: str) -> str:
    with web_stack.http() as http:
        body = http.get(f"/v1/generations/{gen_id}").json()
    assert body["status"] == "completed", body
    text: str = body["content"]
    return text


def test_the_bare_client_in_chromium_resumes_exactly_through_an_api_sigkill(
    context: BrowserContext, web_stack: WebStack
) -> None:
    page = context.new_page()
    page.goto(f"{web_stack.base_url}/dashboard")  # any page: it gives the module an origin
    gen_id = page.evaluate(
        """async (prompt) => {
            const { TokenRelay } = await import("/static/js/tokenrelay/index.js");
            const tr = new TokenRelay({ maxBackoffMs: 1000 });
            const messages = [{ role: "user", content: prompt }];
            const { id } = await tr.create({ model: "demo/story", max_tokens: 160, messages });
            const s = tr.stream(id);
            window.follow = { text: "", status: "", reconnects: 0, ended: false, ids: [] };
            (async () => {
                for await (const ev of s) {
                    window.follow.ids.push(ev.id);
                    window.follow.text = s.text;
                }
                const { status, reconnects } = s;
                Object.assign(window.follow, { status, reconnects, ended: true });
            })();
            return id;
        }""",
        PROMPT,
    )
    page.wait_for_function("() => window.follow.text.length > 20")
    kill_api(web_stack)
    start_api_again(web_stack)
    page.wait_for_function("() => window.follow.ended", timeout=90_000)
    follow = page.evaluate("() => window.follow")
    assert follow["status"] == "completed" and follow["reconnects"] >= 1
    assert follow["text"] == "".join(story_tokens(PROMPT, 160)) == stored_text(web_stack, gen_id)
    assert len(follow["ids"]) == len(set(follow["ids"]))


@pytest.fixture(scope="module")
def example_app(web_stack: WebStack) -> Iterator[str]:
    """The example chat app, built and served by `vite preview`; its URL."""
    if shutil.which("npm") is None:
        pytest.skip("the React example needs Node.js and npm on the PATH")
    if not (EXAMPLE / "node_modules" / "vite").exists():
        pytest.skip(
            "the React example's packages are not installed: "
            "npm ci --prefix clients/js/examples/chat (.ci/run does it)"
        )
    build = subprocess.run(
        ["npm", "run", "build"], cwd=EXAMPLE, capture_output=True, text=True, timeout=180
    )
    assert build.returncode == 0, build.stdout + build.stderr
    port = free_port()
    env = {**os.environ, "TOKENRELAY_URL": web_stack.base_url, "PORT": str(port)}
    vite = EXAMPLE / "node_modules" / ".bin" / "vite"
    url = f"http://127.0.0.1:{port}"
    with (EXAMPLE / "dist" / "preview.log").open("wb") as log:
        server = subprocess.Popen(
            [str(vite), "preview", "--host", "127.0.0.1"],
            cwd=EXAMPLE,
            env=env,
            stdout=log,
            stderr=log,
        )
        yield from _serving(server, url)


def _serving(server: subprocess.Popen[bytes], url: str) -> Iterator[str]:
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, "vite preview exited"
            assert time.monotonic() < deadline, "vite preview did not answer in 60 s"
            time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(10)


def send(page: Page, text: str) -> None:
    page.fill("input[name=prompt]", text)
    page.click("button[type=submit]")


def last_answer(page: Page) -> tuple[str, str]:
    answer = page.locator("li.assistant").last
    expect(answer).to_have_attribute("data-status", "completed", timeout=90_000)
    gen_id = answer.get_attribute("data-generation") or ""
    assert gen_id.startswith("gen_")
    return gen_id, answer.locator(".content").inner_text()


def test_react_chat_and_watch_follow_an_answer_through_an_api_sigkill(
    context: BrowserContext, web_stack: WebStack, example_app: str
) -> None:
    chat = context.new_page()
    chat.goto(example_app)
    send(chat, PROMPT)
    answer = chat.locator("li.assistant").last
    expect(answer).to_have_attribute("data-status", "running")
    gen_id = answer.get_attribute("data-generation") or ""
    watch = context.new_page()  # useGeneration on its own, from a shared link
    watch.goto(f"{example_app}/#watch={gen_id}")
    expect(watch.get_by_test_id("text")).to_have_attribute("data-status", "running")
    chat.wait_for_function(
        "() => document.querySelector('li.assistant:last-child .content').textContent.length > 20"
    )

    kill_api(web_stack)
    expect(chat.get_by_test_id("state")).to_contain_text("Reconnecting")
    start_api_again(web_stack)

    gen_id, text = last_answer(chat)
    expected = stored_text(web_stack, gen_id)
    assert text == expected and expected
    expect(watch.get_by_test_id("text")).to_have_attribute("data-status", "completed")
    assert watch.get_by_test_id("text").inner_text() == expected
    screenshot(chat, "react-chat")


def test_react_chat_survives_a_reload_mid_answer_and_keeps_the_conversation(
    context: BrowserContext, web_stack: WebStack, example_app: str
) -> None:
    page = context.new_page()
    page.goto(example_app)
    send(page, "first question")
    first_id, first = last_answer(page)
    send(page, PROMPT)
    expect(page.locator("li.assistant").last).to_have_attribute("data-status", "running")
    page.wait_for_function(
        "() => document.querySelector('li.assistant:last-child .content').textContent.length > 10"
    )
    page.reload()  # the answer is replayed from its first event, then followed live
    gen_id, text = last_answer(page)
    assert gen_id != first_id
    assert text == stored_text(web_stack, gen_id)
    assert page.locator("li.user").all_inner_texts() == ["first question", PROMPT]
    assert page.locator("li.assistant .content").first.inner_text() == first
