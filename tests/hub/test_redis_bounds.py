"""What an API process leaves in Redis is bounded: its connections, and its wake stream."""

from __future__ import annotations

import asyncio

import httpx
import redis

from services import keys
from tests.hub.conftest import ApiFactory


def api_connections(redis_client: redis.Redis) -> int:
    """Command connections of every API process (by client name)."""
    clients: list[dict[str, str]] = redis_client.client_list()  # type: ignore[assignment]  # sync client
    return sum(1 for c in clients if c.get("name") == "tokenrelay-api")


async def test_a_burst_of_requests_never_opens_more_connections_than_the_bound(
    start_api: ApiFactory, redis_client: redis.Redis
) -> None:
    before = api_connections(redis_client)
    api = start_api(TOKENRELAY_REDIS_MAX_CONNECTIONS="6")
    ids = [keys.new_generation_id() for _ in range(300)]
    async with httpx.AsyncClient(
        base_url=api.base_url, timeout=30, limits=httpx.Limits(max_connections=300)
    ) as client:
        answers = await asyncio.gather(*(client.get(f"/v1/generations/{i}") for i in ids))
    assert {answer.status_code for answer in answers} == {404}
    assert api_connections(redis_client) - before <= 6


async def test_the_wake_stream_of_a_killed_api_expires(
    start_api: ApiFactory, redis_client: redis.Redis
) -> None:
    """A SIGKILLed replica cannot delete its hub's wake stream: it carries a TTL."""
    api = start_api()
    async with httpx.AsyncClient(base_url=api.base_url, timeout=10) as client:
        created = await client.post(
            "/v1/generations",
            json={"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert created.status_code == 202, created.text
        gen_id = created.json()["id"]  # queued: no worker runs in this test
        async with client.stream("GET", f"/v1/generations/{gen_id}/events") as response:
            assert response.status_code == 200
            wakes: list[str] = []
            for _ in range(100):
                wakes = [str(k) for k in redis_client.scan_iter(match="tokenrelay:hub:*:wake")]
                if wakes:
                    break
                await asyncio.sleep(0.05)
            api.kill()
    assert wakes, "the viewer's stream woke the shared reader"
    for wake in wakes:
        ttl = redis_client.ttl(wake)
        assert isinstance(ttl, int) and ttl > 0, (wake, ttl)
