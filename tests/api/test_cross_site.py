"""With auth off, a page on another site cannot make a visitor's browser act on the API.

Browsers send JSON cross-site only after a CORS preflight, which the API never
grants, so what such a page can send is a non-JSON body (refused with 415, see
test_hostile_input.py) or a request whose `Origin` names the other site: a 403
here, in each door's error shape, with nothing recorded.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from tests.api.test_bad_input import GOOD
from tests.support.json_bodies import generation_count
from tests.support.processes import ApiProcess, stack_env
from tests.support.stack import Stack

EVIL = "https://evil.example"
ANTHROPIC_GOOD = {**GOOD, "max_tokens": 5}
POSTS: list[tuple[str, dict[str, Any]]] = [
    ("/v1/generations", GOOD),
    ("/v1/chat/completions", GOOD),
    ("/v1/messages", ANTHROPIC_GOOD),
]


def permission_error(response: httpx.Response) -> dict[str, Any]:
    """The error object of a 403, whichever door's shape it comes in."""
    assert response.status_code == 403, response.text
    body = response.json()
    error: dict[str, Any] = body["error"]
    if "type" in body:
        assert body["type"] == "error"  # Anthropic's shape
    assert error["type"] == "permission_error"
    assert "cross-site request refused" in error["message"]
    return error


@pytest.mark.parametrize(("path", "body"), POSTS)
@pytest.mark.parametrize("origin", [EVIL, "null", "http://127.0.0.1:1"])
async def test_a_foreign_origin_is_refused_with_nothing_recorded(
    client: httpx.AsyncClient,
    redis_client: redis.Redis,
    path: str,
    body: dict[str, Any],
    origin: str,
) -> None:
    before = generation_count(redis_client)
    response = await client.post(path, json=body, headers={"Origin": origin})
    error = permission_error(response)
    assert f"origin '{origin}'" in error["message"]
    assert generation_count(redis_client) == before


async def test_a_foreign_origin_cannot_cancel(client: httpx.AsyncClient) -> None:
    created = (await client.post("/v1/generations", json={**GOOD, "model": "demo/story"})).json()
    cancel = f"/v1/generations/{created['id']}/cancel"
    permission_error(await client.post(cancel, headers={"Origin": EVIL}))
    assert (await client.get(f"/v1/generations/{created['id']}")).json()["status"] != "cancelled"


@pytest.mark.parametrize(("path", "body"), POSTS)
async def test_the_apis_own_origin_is_accepted(
    stack: Stack, client: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> None:
    """What the web pages served by the API send: their own origin."""
    response = await client.post(path, json=body, headers={"Origin": stack.base_url})
    assert response.status_code in (200, 202), response.text


async def test_reads_are_not_refused(client: httpx.AsyncClient) -> None:
    """A read changes nothing, and without CORS headers the page cannot see the answer."""
    response = await client.get("/v1/models", headers={"Origin": EVIL})
    assert response.status_code == 200


@pytest.fixture(scope="module")
def front_end_api(stack: Stack) -> Iterator[ApiProcess]:
    """Auth off, with one front end on another origin allowed."""
    env = stack_env(stack.redis_url, TOKENRELAY_ALLOWED_ORIGINS="https://app.example/, x")
    api = ApiProcess(env)
    try:
        yield api.wait_ready()
    finally:
        api.stop()


async def test_allowed_origins_may_send(front_end_api: ApiProcess) -> None:
    async with httpx.AsyncClient(base_url=front_end_api.base_url, timeout=30) as client:
        allowed = await client.post(
            "/v1/generations", json=GOOD, headers={"Origin": "https://app.example"}
        )
        assert allowed.status_code == 202, allowed.text
        permission_error(
            await client.post("/v1/messages", json=ANTHROPIC_GOOD, headers={"Origin": EVIL})
        )


@pytest.fixture(scope="module")
def keyed_api(stack: Stack) -> Iterator[ApiProcess]:
    api = ApiProcess(stack_env(stack.redis_url, TOKENRELAY_API_KEYS="sk-cross"))
    try:
        yield api.wait_ready()
    finally:
        api.stop()


async def test_with_auth_on_the_key_decides(keyed_api: ApiProcess) -> None:
    """A page elsewhere cannot know the key; a front end that has it may call from anywhere."""
    async with httpx.AsyncClient(base_url=keyed_api.base_url, timeout=30) as client:
        keyed = await client.post(
            "/v1/generations",
            json=GOOD,
            headers={"Origin": EVIL, "Authorization": "Bearer sk-cross"},
        )
        assert keyed.status_code == 202, keyed.text
        keyless = await client.post("/v1/generations", json=GOOD, headers={"Origin": EVIL})
        assert keyless.status_code == 401
