"""Every malformed request answers a precise 4xx in the contract's error shape,
and nothing is recorded or queued for it."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import redis

from services import keys

GOOD = {"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]}


def with_(**changes: Any) -> dict[str, Any]:
    body = {**GOOD, **changes}
    return {k: v for k, v in body.items() if v is not ...}


BAD_BODIES = [
    pytest.param(with_(messages=...), 422, "messages", id="missing-messages"),
    pytest.param(with_(messages=[]), 422, "messages", id="empty-messages"),
    pytest.param(with_(model=...), 422, "model", id="missing-model"),
    pytest.param(with_(model="nope/x"), 400, "unknown provider 'nope'", id="unknown-provider"),
    pytest.param(with_(model="gpt-4o"), 422, "model", id="model-without-provider"),
    pytest.param(with_(model=42), 422, "model", id="model-wrong-type"),
    pytest.param(with_(messages="hi"), 422, "messages", id="messages-wrong-type"),
    pytest.param(with_(messages=[{"role": "wizard", "content": "x"}]), 422, "role", id="bad-role"),
    pytest.param(with_(messages=[{"role": "user"}]), 422, "content", id="missing-content"),
    pytest.param(
        with_(messages=[{"role": "user", "content": 5}]), 422, "content", id="content-type"
    ),
    pytest.param(with_(max_tokens=0), 422, "max_tokens", id="max-tokens-zero"),
    pytest.param(with_(max_tokens=-5), 422, "max_tokens", id="max-tokens-negative"),
    pytest.param(with_(max_tokens=10**9), 422, "max_tokens", id="max-tokens-huge"),
    pytest.param(with_(max_tokens="many"), 422, "max_tokens", id="max-tokens-type"),
    pytest.param(with_(temperature=2.5), 422, "temperature", id="temperature-high"),
    pytest.param(with_(temperature=-1), 422, "temperature", id="temperature-negative"),
    pytest.param(with_(metadata={"k": 1}), 422, "metadata", id="metadata-values"),
    pytest.param(with_(tools=[{"type": "function"}]), 422, "tools", id="tool-without-function"),
    pytest.param(with_(surprise=True), 422, "surprise", id="unknown-field"),
    pytest.param(
        with_(model="openai/gpt-4o-mini"), 400, "not configured", id="unconfigured-provider"
    ),
    pytest.param([1, 2], 422, "body: must be a JSON object", id="body-is-a-list"),
]


def generation_count(redis_client: redis.Redis) -> int:
    count: int = redis_client.zcard(keys.RECENT)  # type: ignore[assignment]  # sync client
    return count


def assert_error_shape(response: httpx.Response, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert isinstance(body["error"]["type"], str) and body["error"]["type"]
    assert fragment in body["error"]["message"], body
    assert "Traceback" not in response.text


@pytest.mark.parametrize(("body", "status", "fragment"), BAD_BODIES)
async def test_bad_body_is_refused_before_anything_is_queued(
    client: httpx.AsyncClient,
    redis_client: redis.Redis,
    body: Any,
    status: int,
    fragment: str,
) -> None:
    before = generation_count(redis_client)
    response = await client.post("/v1/generations", json=body)
    assert_error_shape(response, status, fragment)
    assert generation_count(redis_client) == before


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b'{"model": "demo/echo", "messages": [', "not valid JSON"),
        (b"", "body is missing"),
        (b"\xff\xfe not utf8", "not valid JSON"),
    ],
)
async def test_invalid_json_is_a_400(
    client: httpx.AsyncClient, redis_client: redis.Redis, content: bytes, fragment: str
) -> None:
    before = generation_count(redis_client)
    response = await client.post(
        "/v1/generations", content=content, headers={"content-type": "application/json"}
    )
    assert_error_shape(response, 400, fragment)
    assert generation_count(redis_client) == before


@pytest.mark.parametrize("content", [b"null", b"42", b'"text"'])
async def test_json_that_is_not_an_object_is_a_422(
    client: httpx.AsyncClient, content: bytes
) -> None:
    response = await client.post(
        "/v1/generations", content=content, headers={"content-type": "application/json"}
    )
    assert_error_shape(response, 422, "body: must be a JSON object")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
async def test_body_that_is_not_declared_json_is_a_415(
    client: httpx.AsyncClient, redis_client: redis.Redis, content_type: str
) -> None:
    before = generation_count(redis_client)
    response = await client.post(
        "/v1/generations", content=json.dumps(GOOD), headers={"content-type": content_type}
    )
    assert_error_shape(response, 415, "Content-Type: application/json")
    assert generation_count(redis_client) == before


async def test_oversized_body_is_a_413(client: httpx.AsyncClient) -> None:
    huge = "x" * (1_048_576 + 10)
    body = {"model": "demo/echo", "messages": [{"role": "user", "content": huge}]}
    response = await client.post("/v1/generations", json=body)
    assert_error_shape(response, 413, "exceeds the limit")


async def test_oversized_chunked_body_is_a_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> Any:
        for _ in range(40):
            yield b"x" * 65536

    response = await client.post(
        "/v1/generations", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_error_shape(response, 413, "exceeds the limit")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/generations/gen_00000000000000000000000000000000",
        "/v1/generations/not-an-id",
        "/v1/generations/gen_00000000000000000000000000000000/events",
        "/v1/generations/%7Bweird%7D/events",
    ],
)
async def test_unknown_generation_is_a_404(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert_error_shape(response, 404, "no generation")


async def test_cancel_unknown_generation_is_a_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/generations/gen_00000000000000000000000000000000/cancel")
    assert_error_shape(response, 404, "no generation")


@pytest.mark.parametrize(
    "cursor",
    ["garbage", "12-", "-1", "1.5-0", "abc-def", "1-2-3", "99999999999999999999999-0", "1 0"],
)
async def test_malformed_cursor_is_a_400(client: httpx.AsyncClient, cursor: str) -> None:
    created = (await client.post("/v1/generations", json=GOOD)).json()
    by_header = await client.get(created["events_url"], headers={"Last-Event-ID": cursor})
    assert_error_shape(by_header, 400, "cursor")
    by_query = await client.get(created["events_url"], params={"last_event_id": cursor})
    assert_error_shape(by_query, 400, "cursor")


async def test_cursor_after_the_last_event_is_a_400(client: httpx.AsyncClient) -> None:
    created = (await client.post("/v1/generations", json=GOOD)).json()
    response = await client.get(
        created["events_url"], headers={"Last-Event-ID": "99999999999999-0"}
    )
    assert_error_shape(response, 400, "not an event of generation")


async def test_unknown_format_is_a_422(client: httpx.AsyncClient) -> None:
    created = (await client.post("/v1/generations", json=GOOD)).json()
    response = await client.get(created["events_url"], params={"format": "xml"})
    assert_error_shape(response, 422, "format")


async def test_wrong_method_and_path_answer_in_the_error_shape(client: httpx.AsyncClient) -> None:
    assert_error_shape(await client.delete("/v1/generations"), 405, "")
    assert_error_shape(await client.get("/v1/nothing-here"), 404, "")
