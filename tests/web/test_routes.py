"""Page and asset routes over plain HTTP: what is served, with which headers, what is not."""

from __future__ import annotations

import httpx
import pytest

from tests.support.stack import Stack


@pytest.mark.parametrize(
    ("path", "marker"),
    [
        ("/", "/static/js/chat.js"),
        ("/watch/gen_0123456789abcdef0123456789abcdef", "/static/js/watch.js"),
        ("/dashboard", "/static/js/dashboard.js"),
    ],
)
async def test_pages_are_served_without_a_key_and_with_a_strict_policy(
    client: httpx.AsyncClient, stack: Stack, path: str, marker: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert marker in response.text
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


async def test_assets_have_their_types(client: httpx.AsyncClient, stack: Stack) -> None:
    for path, media_type in [
        ("/static/js/sse.js", "text/javascript; charset=utf-8"),
        ("/static/css/app.css", "text/css; charset=utf-8"),
        ("/static/favicon.svg", "image/svg+xml"),
        ("/favicon.ico", "image/svg+xml"),
    ]:
        response = await client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == media_type, path
        assert response.headers["etag"], path


@pytest.mark.parametrize(
    "path",
    [
        "/static/nope.js",
        "/static/../routes/web.py",
        "/static/%2e%2e/routes/web.py",
        "/static/..%2fmain.py",
        "/static//etc/passwd",
        "/static/js/",
    ],
)
async def test_nothing_outside_the_static_files_is_served(
    client: httpx.AsyncClient, stack: Stack, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"
