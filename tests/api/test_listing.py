"""`GET /v1/generations`: recent generations, newest first, without their text."""

from __future__ import annotations

import httpx

from tests.api.test_stream_basics import create
from tests.support.sse import read_sse
from tests.support.stack import Stack


async def finished(client: httpx.AsyncClient, **body: object) -> str:
    created = await create(client, **body)
    await read_sse(client, created["events_url"])  # to the terminal event
    gen_id: str = created["id"]
    return gen_id


async def test_listing_is_newest_first_without_content(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    first = await finished(client, max_tokens=5)
    second = await finished(
        client, model="demo/echo", messages=[{"role": "user", "content": "héllo"}]
    )
    running = (await create(client, max_tokens=100_000))["id"]
    try:
        response = await client.get("/v1/generations", params={"limit": 3})
        assert response.status_code == 200
        body = response.json()
        assert body["object"] == "list"
        assert [row["id"] for row in body["data"]] == [running, second, first]
        rows = {row["id"]: row for row in body["data"]}
        assert all("content" not in row for row in body["data"])
        assert rows[second]["content_bytes"] == len("héllo".encode())
        assert rows[second]["status"] == "completed"
        assert rows[second]["model"] == "demo/echo"
        assert rows[first]["usage"] == {"input_tokens": 4, "output_tokens": 5}
        assert rows[first]["finished_at"] >= rows[first]["started_at"] >= rows[first]["created_at"]
        assert rows[running]["status"] in ("queued", "running")
        assert rows[running]["usage"] is None

        two = (await client.get("/v1/generations", params={"limit": 2})).json()
        assert [row["id"] for row in two["data"]] == [running, second]
        assert two["has_more"] is True
    finally:
        await client.post(f"/v1/generations/{running}/cancel")


async def test_listing_filters_by_status(client: httpx.AsyncClient, stack: Stack) -> None:
    done = await finished(client, max_tokens=3)
    running = (await create(client, max_tokens=100_000))["id"]
    try:
        completed = (await client.get("/v1/generations?status=completed&limit=200")).json()["data"]
        assert done in [row["id"] for row in completed]
        assert {row["status"] for row in completed} == {"completed"}

        live = (await client.get("/v1/generations?status=queued,running")).json()["data"]
        assert running in [row["id"] for row in live]
        assert done not in [row["id"] for row in live]
        repeated = (await client.get("/v1/generations?status=queued&status=running")).json()
        assert [row["id"] for row in repeated["data"]] == [row["id"] for row in live]
    finally:
        await client.post(f"/v1/generations/{running}/cancel")
    await read_sse(client, f"/v1/generations/{running}/events")  # to `cancelled`
    cancelled = (await client.get("/v1/generations?status=cancelled")).json()["data"]
    assert running in [row["id"] for row in cancelled]


async def test_bad_listing_parameters_are_precise_errors(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    for query, fragment in [
        ("status=finished", "'finished'"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=ten", "limit"),
    ]:
        response = await client.get(f"/v1/generations?{query}")
        assert response.status_code == 422, query
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert fragment in error["message"], (query, error)


async def test_listing_given_ids_answers_those_in_order(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    first = await finished(client, max_tokens=2)
    second = await finished(client, max_tokens=3)
    unknown = "gen_" + "f" * 32
    body = (await client.get(f"/v1/generations?id={second},{unknown}&id={first}")).json()
    assert [row["id"] for row in body["data"]] == [second, first]
    assert body["has_more"] is False

    response = await client.get("/v1/generations?id=not-an-id")
    assert response.status_code == 422
    assert "'not-an-id' is not a generation id" in response.json()["error"]["message"]
