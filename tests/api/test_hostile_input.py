"""Hostile input at the native route: deep nesting, lone surrogates, odd bytes.

Each is a precise 400 (never a 500, never a 202 that fails later in the worker),
nothing is recorded for it, and what the API does accept, the worker runs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from tests.api.test_bad_input import GOOD, assert_error_shape
from tests.conftest import Stack
from tests.support.json_bodies import (
    deep_array_body,
    generation_count,
    json_depth,
    nested_object,
)
from tests.support.processes import ApiProcess, stack_env
from tests.support.sse import read_sse

JSON = {"content-type": "application/json"}
DEFAULT_DEPTH = 64


def with_tool_parameters(parameters: dict[str, Any], model: str = "demo/tool") -> dict[str, Any]:
    tool = {"type": "function", "function": {"name": "lookup", "parameters": parameters}}
    return {**GOOD, "model": model, "tools": [tool]}


def at_depth(depth: int) -> dict[str, Any]:
    """A body with tool parameters nested so that the whole body is `depth` deep."""
    body = with_tool_parameters(nested_object(depth - 4))
    assert json_depth(body) == depth
    return body


async def run_to_the_end(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    """Create, read the stream until the server closes it, and answer the final status."""
    created = await client.post("/v1/generations", json=body)
    assert created.status_code == 202, created.text
    reading = await read_sse(client, created.json()["events_url"])
    assert reading.closed_by_server
    final: dict[str, Any] = (await client.get(f"/v1/generations/{created.json()['id']}")).json()
    return final


async def test_the_deepest_accepted_body_runs_in_the_worker(client: httpx.AsyncClient) -> None:
    final = await run_to_the_end(client, at_depth(DEFAULT_DEPTH))
    assert final["status"] == "completed", final
    assert [call["name"] for call in final["tool_calls"]] == ["lookup"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(json.dumps(at_depth(DEFAULT_DEPTH + 1)).encode(), id="one-level-too-deep"),
        pytest.param(json.dumps(with_tool_parameters(nested_object(199))).encode(), id="199"),
        pytest.param(json.dumps(with_tool_parameters(nested_object(254))).encode(), id="254"),
        pytest.param(json.dumps(with_tool_parameters(nested_object(400))).encode(), id="400"),
        pytest.param(deep_array_body(5000), id="5000-deep-array"),
    ],
)
async def test_a_body_nested_past_the_limit_is_a_400(
    client: httpx.AsyncClient, redis_client: redis.Redis, body: bytes
) -> None:
    before = generation_count(redis_client)
    response = await client.post("/v1/generations", content=body, headers=JSON)
    assert_error_shape(response, 400, f"nested more than {DEFAULT_DEPTH} levels deep")
    assert "TOKENRELAY_MAX_JSON_DEPTH" in response.json()["error"]["message"]
    assert generation_count(redis_client) == before


def _raw(model: str = "demo/echo", content: str = "hi", extra: str = "") -> bytes:
    """A body written by hand, so escapes like `\\ud800` reach the server as sent."""
    return (
        f'{{"model":"{model}","messages":[{{"role":"user","content":"{content}"}}]{extra}}}'
    ).encode()


@pytest.mark.parametrize(
    ("body", "where"),
    [
        pytest.param(_raw(content="a\\ud800b"), "messages.0.content", id="high-surrogate"),
        pytest.param(_raw(content="\\udfff"), "messages.0.content", id="low-surrogate"),
        pytest.param(_raw(content="\\ude00\\ud83d"), "messages.0.content", id="pair-reversed"),
        pytest.param(_raw(model="demo/\\ud800"), "model", id="in-model"),
        pytest.param(_raw(extra=',"metadata":{"\\udc00":"x"}'), "metadata.\\udc00", id="in-key"),
        pytest.param(_raw(extra=',"stop":["\\ud800"]'), "stop.0", id="in-list"),
        pytest.param(
            _raw(content="x").replace(b'"x"', b'"\xed\xa0\x80"'),
            "messages.0.content",
            id="utf8-encoded-surrogate",
        ),
    ],
)
async def test_a_lone_surrogate_is_a_400_naming_where(
    client: httpx.AsyncClient, redis_client: redis.Redis, body: bytes, where: str
) -> None:
    before = generation_count(redis_client)
    response = await client.post("/v1/generations", content=body, headers=JSON)
    assert_error_shape(response, 400, f"'{where}' holds a lone UTF-16 surrogate")
    assert generation_count(redis_client) == before


async def test_a_surrogate_pair_is_a_character_and_is_accepted(client: httpx.AsyncClient) -> None:
    final_body = _raw(content="smile \\ud83d\\ude00")
    created = await client.post("/v1/generations", content=final_body, headers=JSON)
    assert created.status_code == 202, created.text
    reading = await read_sse(client, created.json()["events_url"])
    assert "".join(e.json().get("text", "") for e in reading.events if e.event == "delta") == (
        "smile \N{GRINNING FACE}"
    )


async def test_a_number_too_long_to_read_is_a_400(
    client: httpx.AsyncClient, redis_client: redis.Redis
) -> None:
    before = generation_count(redis_client)
    body = _raw(extra=',"max_tokens":' + "9" * 5000)
    response = await client.post("/v1/generations", content=body, headers=JSON)
    assert_error_shape(response, 400, "a number has too many digits")
    assert generation_count(redis_client) == before


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
async def test_nan_and_infinity_are_not_json(
    client: httpx.AsyncClient, redis_client: redis.Redis, constant: str
) -> None:
    before = generation_count(redis_client)
    parameters = '{"default":' + constant + "}"
    tool = '{"type":"function","function":{"name":"f","parameters":' + parameters + "}}"
    body = _raw(extra=f',"tools":[{tool}]')
    response = await client.post("/v1/generations", content=body, headers=JSON)
    assert_error_shape(response, 400, f"{constant} is not a JSON value")
    assert generation_count(redis_client) == before


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-content-type"),
        pytest.param({"content-type": "multipart/form-data; boundary=x"}, id="multipart"),
        pytest.param({"content-type": "text/plain;charset=UTF-8"}, id="text-plain"),
    ],
)
async def test_a_body_not_declared_json_is_a_415(
    client: httpx.AsyncClient, redis_client: redis.Redis, headers: dict[str, str]
) -> None:
    before = generation_count(redis_client)
    response = await client.post("/v1/generations", content=json.dumps(GOOD), headers=headers)
    assert_error_shape(response, 415, "Content-Type: application/json")
    assert generation_count(redis_client) == before


@pytest.mark.parametrize(
    "query", ["last_event_id=%ED%A0%80", "last_event_id=%FF%FE", "last_event_id=%00"]
)
async def test_odd_bytes_in_the_cursor_query_are_a_400(
    client: httpx.AsyncClient, query: str
) -> None:
    created = (await client.post("/v1/generations", json=GOOD)).json()
    response = await client.get(f"{created['events_url']}?{query}")
    assert_error_shape(response, 400, "malformed cursor")


@pytest.mark.parametrize("value", [b"\xed\xa0\x80", b"\xff\xfe", b"1-\xc3\xa9"])
async def test_odd_bytes_in_last_event_id_are_a_400(
    client: httpx.AsyncClient, value: bytes
) -> None:
    gen = (await client.post("/v1/generations", json=GOOD)).json()
    response = await client.get(gen["events_url"], headers=[(b"Last-Event-ID", value)])
    assert_error_shape(response, 400, "malformed cursor")


@pytest.mark.parametrize(
    ("path", "status", "fragment"),
    [
        ("/v1/generations/%ED%A0%80", 404, "no generation"),
        ("/v1/generations/gen_%FF/events", 404, "no generation"),
        ("/v1/generations?status=%ED%A0%80", 422, "status"),
    ],
)
async def test_odd_bytes_in_paths_and_queries_are_a_4xx(
    client: httpx.AsyncClient, path: str, status: int, fragment: str
) -> None:
    assert_error_shape(await client.get(path), status, fragment)


@pytest.fixture(scope="module")
def deepest_api(stack: Stack) -> Iterator[ApiProcess]:
    """An API at the highest depth limit allowed, on the session's Redis and worker."""
    api = ApiProcess(stack_env(stack.redis_url, TOKENRELAY_MAX_JSON_DEPTH="128"))
    try:
        yield api.wait_ready()
    finally:
        api.stop()


async def test_at_the_highest_allowed_limit_every_door_still_runs(deepest_api: ApiProcess) -> None:
    """At the ceiling of TOKENRELAY_MAX_JSON_DEPTH, the worker still reads every request
    back, including through the Anthropic door, whose tool schemas gain a level when
    translated."""
    async with httpx.AsyncClient(base_url=deepest_api.base_url, timeout=30) as client:
        final = await run_to_the_end(client, at_depth(128))
        assert final["status"] == "completed", final

        schema = nested_object(128 - 3)
        anthropic_body = {
            "model": "demo/tool",
            "max_tokens": 20,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"name": "lookup", "input_schema": schema}],
        }
        assert json_depth(anthropic_body) == 128
        message = await client.post("/v1/messages", json=anthropic_body)
        assert message.status_code == 200, message.text
        assert message.json()["stop_reason"] == "tool_use"

        too_deep = await client.post("/v1/generations", json=at_depth(129))
        assert_error_shape(too_deep, 400, "nested more than 128 levels deep")


async def test_a_client_that_hangs_up_mid_body_is_not_an_error(stack: Stack) -> None:
    """A body cut short by the client is an ordinary event on the internet, not a
    fault of ours: nothing is queued and no error line is logged."""
    host, port = "127.0.0.1", stack.api.port
    before = stack.api.log().count("ERROR")
    for _ in range(3):
        _reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            b"POST /v1/generations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n" + json.dumps(GOOD).encode()[:20]
        )
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()
        await writer.wait_closed()
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=10) as client:
        assert (await client.get("/healthz")).status_code == 200
    await asyncio.sleep(0.5)
    assert stack.api.log().count("ERROR") == before, stack.api.log()[-2000:]
