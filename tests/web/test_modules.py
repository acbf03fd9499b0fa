"""The pages' JavaScript modules, run in the real browser: SSE parsing, event folding, markdown."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page

from tests.web.conftest import WebStack


@pytest.fixture()
def page(context: BrowserContext, web_stack: WebStack) -> Page:
    page = context.new_page()
    page.goto(f"{web_stack.base_url}/dashboard")  # any page: it gives the modules an origin
    return page


def run(page: Page, script: str, arg: Any = None) -> Any:
    """Evaluates an async function body with `sse`, `generation` and `md` modules in scope."""
    return page.evaluate(
        f"""async (arg) => {{
            const sse = await import("/static/js/sse.js");
            const generation = await import("/static/js/generation.js");
            const md = await import("/static/js/markdown.js");
            {script}
        }}""",
        arg,
    )


def test_sse_parser_follows_the_whatwg_rules_across_chunk_boundaries(page: Page) -> None:
    stream = (
        "\ufeffretry: 1500\n\n: ping\n\n"
        'id: 1-0\nevent: delta\ndata: {"text":"a"}\n\n'
        "id: 1-1\r\nevent: delta\r\ndata: line one\r\ndata:line two\r\n\r\n"
        "id: 1-2\revent: done\rdata\r\r"
        "id: 1-3\ndata: incomplete at the end"
    )
    result = run(
        page,
        """
        const events = [], retries = [];
        const parser = sse.createSseParser({
            onEvent: (e) => events.push(e), onRetry: (ms) => retries.push(ms) });
        for (let i = 0; i < arg.length; i += 3) parser.push(arg.slice(i, i + 3));
        return { events, retries };
        """,
        stream,
    )
    assert result["retries"] == [1500]
    assert result["events"] == [
        {"type": "delta", "data": '{"text":"a"}', "id": "1-0"},
        {"type": "delta", "data": "line one\nline two", "id": "1-1"},
        {"type": "done", "data": "", "id": "1-2"},
    ]


def test_event_ids_order_numerically(page: Page) -> None:
    result = run(
        page,
        "return [sse.compareEventIds('9-0', '10-0'), sse.compareEventIds('10-2', '10-10'),"
        " sse.compareEventIds('10-1', '10-1')];",
    )
    assert result[0] < 0 and result[1] < 0 and result[2] == 0


def test_a_reset_voids_the_text_and_the_new_attempt_starts_empty(page: Page) -> None:
    result = run(
        page,
        """
        const gen = generation.newGeneration({ id: "g", createdAt: 1000 });
        const events = [
            ["start", { attempt: 1, model: "demo/story" }, "1000100-0"],
            ["delta", { text: "void " }, "1000200-0"],
            ["delta", { text: "text" }, "1000300-0"],
            ["reset", { attempt: 2, reason: "worker_restarted" }, "1000400-0"],
            ["start", { attempt: 2, model: "demo/story" }, "1000400-1"],
            ["delta", { text: "kept" }, "1000500-0"],
            ["delta", { text: " text" }, "1001500-0"],
            ["done", { finish_reason: "stop", usage: { input_tokens: 1, output_tokens: 2 } },
             "1001600-0"],
        ];
        const changes = events.map(
            ([type, data, id]) => generation.applyEvent(gen, { type, data, id }));
        return { gen, changes, stats: generation.stats(gen) };
        """,
    )
    gen = result["gen"]
    assert gen["text"] == "kept text"
    assert gen["status"] == "completed"
    assert gen["attempt"] == 2
    assert gen["discarded"] == [{"attempt": 1, "reason": "worker_restarted", "text": "void text"}]
    assert result["changes"][3] == "reset"
    assert result["stats"] == {"tokens": 2, "exact": True, "ttftMs": 200, "tokensPerS": 1}


def test_a_resync_snapshot_replaces_the_state(page: Page) -> None:
    gen = run(
        page,
        """
        const gen = generation.newGeneration({ id: "g" });
        generation.applyEvent(gen, { type: "delta", data: { text: "old" }, id: "5-0" });
        generation.applyEvent(gen, { type: "resync", id: "9-0", data: {
            status: "running", model: "m", attempt: 1, content: "all the text so far",
            tool_calls: [], finish_reason: null, usage: null, error: null, created_at: 1 } });
        return gen;
        """,
    )
    assert gen["text"] == "all the text so far"
    assert gen["status"] == "running"
    assert gen["wordCount"] == 5


PAYLOADS = [
    "<script>window.pwned = 1</script>",
    '<img src=x onerror="window.pwned = 2">',
    "[click](javascript:window.pwned=3)",
    '[click](https://example.com/"onmouseover="window.pwned=4)',
    "**<svg onload=window.pwned=5>**",
    "`<iframe src=javascript:window.pwned=6>`",
    "```\n</code></pre><img src=x onerror=window.pwned=7>\n```",
    "- <a href='javascript:window.pwned=8'>x</a>",
    "> <details open ontoggle=window.pwned=9>",
    'https://example.com/?q="><img src=x onerror=window.pwned=10>',
    "# <style>body{display:none}</style>",
]


def test_markdown_never_produces_active_content(page: Page) -> None:
    result = run(
        page,
        """
        const host = document.createElement("div");
        document.body.append(host);
        const found = [];
        for (const payload of arg) {
            host.innerHTML = md.renderMarkdown(payload);
            const active = host.querySelectorAll(
                "script, img, svg, iframe, style, details,"
                + "[onerror], [onload], [onmouseover], [ontoggle]");
            const hrefs = [...host.querySelectorAll("a")].map((a) => a.getAttribute("href"));
            found.push({ active: active.length, hrefs, text: host.textContent });
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
        return { found, pwned: window.pwned ?? null };
        """,
        PAYLOADS,
    )
    assert result["pwned"] is None
    for payload, rendered in zip(PAYLOADS, result["found"], strict=True):
        assert rendered["active"] == 0, payload
        assert all(href.startswith(("https://", "http://")) for href in rendered["hrefs"]), payload
        assert all('"' not in href for href in rendered["hrefs"]), payload


def test_markdown_subset(page: Page) -> None:
    html = run(
        page,
        "return arg.map((source) => md.renderMarkdown(source));",
        [
            "**bold** and *it* and _it_ and `a < b`",
            "1. one\n2. two",
            "```js\nconst x = 1 && 2;\n```",
            "```\nstill streaming",
            "line one\nline two\n\nnext paragraph",
            "see https://example.com/a_b_c.",
            "snake_case_name and 2*3*4",
        ],
    )
    assert (
        html[0]
        == "<p><strong>bold</strong> and <em>it</em> and <em>it</em> and <code>a &lt; b</code></p>"
    )
    assert html[1] == "<ol><li>one</li><li>two</li></ol>"
    assert '<pre><code class="language-js">const x = 1 &amp;&amp; 2;</code></pre>' in html[2]
    assert "<pre><code>still streaming</code></pre>" in html[3]
    assert html[4] == "<p>line one<br>line two</p><p>next paragraph</p>"
    assert html[5] == (
        '<p>see <a href="https://example.com/a_b_c" target="_blank" '
        'rel="noopener noreferrer nofollow">https://example.com/a_b_c</a>.</p>'
    )
    assert html[6] == "<p>snake_case_name and 2*3*4</p>"
