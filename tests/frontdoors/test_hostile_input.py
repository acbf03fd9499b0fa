"""Hostile input at the OpenAI and Anthropic doors: each a precise 4xx in the door's
own error shape, with nothing recorded, as at the native route."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import redis

from tests.support.json_bodies import deep_array_body, generation_count, nested_object

MESSAGES = [{"role": "user", "content": "hi"}]
OPENAI_GOOD = {"model": "demo/echo", "messages": MESSAGES}
ANTHROPIC_GOOD = {"model": "demo/echo", "max_tokens": 10, "messages": MESSAGES}
DOORS = ["/v1/chat/completions", "/v1/messages"]


def door_error(response: httpx.Response, path: str, status: int, fragment: str) -> None:
    """The answer is `status` in the door's error shape, with `fragment` in its message."""
    assert response.status_code == status, response.text
    body = response.json()
    if path == "/v1/chat/completions":
        assert set(body) == {"error"}
        assert set(body["error"]) == {"message", "type", "param", "code"}
        error = body["error"]
    else:
        assert body["type"] == "error"
        assert set(body["error"]) == {"type", "message"}
        error = body["error"]
    assert error["type"] == "invalid_request_error"
    assert fragment in error["message"], error
    assert "Traceback" not in response.text


def good(path: str) -> dict[str, Any]:
    return dict(OPENAI_GOOD if path == "/v1/chat/completions" else ANTHROPIC_GOOD)


def with_deep_tool(path: str, levels: int) -> dict[str, Any]:
    schema = nested_object(levels)
    if path == "/v1/chat/completions":
        tool: dict[str, Any] = {
            "type": "function",
            "function": {"name": "lookup", "parameters": schema},
        }
    else:
        tool = {"name": "lookup", "input_schema": schema}
    return {**good(path), "tools": [tool]}


def raw_with_content(path: str, content: str) -> bytes:
    """The door's good body with `content` spliced in unescaped, as a client could send it."""
    body = json.dumps(good(path)).replace('"content": "hi"', f'"content": "{content}"')
    assert content in body
    return body.encode()


@pytest.mark.parametrize("path", DOORS)
@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda path: deep_array_body(5000), id="5000-deep"),
        pytest.param(lambda path: json.dumps(with_deep_tool(path, 400)).encode(), id="tool-400"),
        pytest.param(lambda path: json.dumps(with_deep_tool(path, 200)).encode(), id="tool-200"),
    ],
)
async def test_a_body_nested_past_the_limit_is_a_400(
    client: httpx.AsyncClient, redis_client: redis.Redis, path: str, build: Any
) -> None:
    before = generation_count(redis_client)
    response = await client.post(
        path, content=build(path), headers={"content-type": "application/json"}
    )
    door_error(response, path, 400, "nested more than 64 levels deep")
    assert generation_count(redis_client) == before


@pytest.mark.parametrize("path", DOORS)
@pytest.mark.parametrize("content", ["a\\ud800b", "\\udc00", "\\ud83d"])
async def test_a_lone_surrogate_is_a_400(
    client: httpx.AsyncClient, redis_client: redis.Redis, path: str, content: str
) -> None:
    before = generation_count(redis_client)
    response = await client.post(
        path, content=raw_with_content(path, content), headers={"content-type": "application/json"}
    )
    door_error(response, path, 400, "'messages.0.content' holds a lone UTF-16 surrogate")
    assert generation_count(redis_client) == before


@pytest.mark.parametrize("path", DOORS)
async def test_a_number_too_long_to_read_is_a_400(
    client: httpx.AsyncClient, redis_client: redis.Redis, path: str
) -> None:
    before = generation_count(redis_client)
    body = json.dumps(good(path))[:-1] + ', "temperature": ' + "1" * 5000 + "}"
    response = await client.post(path, content=body, headers={"content-type": "application/json"})
    door_error(response, path, 400, "a number has too many digits")
    assert generation_count(redis_client) == before


@pytest.mark.parametrize("path", DOORS)
@pytest.mark.parametrize(
    ("content_type", "shown"),
    [
        ("text/plain;charset=UTF-8", "not 'text/plain;charset=UTF-8'"),
        ("application/x-www-form-urlencoded", "not 'application/x-www-form-urlencoded'"),
        ("multipart/form-data; boundary=----x", "not 'multipart/form-data"),
        (None, "it had no Content-Type"),
    ],
)
async def test_a_body_not_declared_json_is_a_415(
    client: httpx.AsyncClient,
    redis_client: redis.Redis,
    path: str,
    content_type: str | None,
    shown: str,
) -> None:
    """What a page on another site can send without a CORS preflight, refused."""
    before = generation_count(redis_client)
    headers = {"content-type": content_type} if content_type else {}
    response = await client.post(path, content=json.dumps(good(path)), headers=headers)
    door_error(response, path, 415, "Content-Type: application/json")
    assert shown in response.text
    assert generation_count(redis_client) == before


@pytest.mark.parametrize("path", DOORS)
async def test_json_variants_of_the_content_type_are_accepted(
    client: httpx.AsyncClient, path: str
) -> None:
    for content_type in ("application/json; charset=utf-8", "application/vnd.api+json"):
        response = await client.post(
            path, content=json.dumps(good(path)), headers={"content-type": content_type}
        )
        assert response.status_code == 200, response.text
