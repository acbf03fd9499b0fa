"""What an API process leaves in Redis is bounded: its connections, and its wake stream."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import redis

from services import keys
from tests.faults.support import RedisServer
from tests.hub.conftest import ApiFactory
from tests.support.polling import wait_for


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


async def test_with_a_separate_streams_redis_the_wake_lands_where_the_reader_reads(
    start_api: ApiFactory, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """Generations on their own plain Redis: the shared read's XREAD is there, so the
    wake that makes it pick up a newly watched stream must be written there too."""
    streams = RedisServer(tmp_path, appendonly=False)
    streams.start()
    try:
        api = start_api(TOKENRELAY_STREAMS_REDIS_URL=streams.url)
        async with httpx.AsyncClient(base_url=api.base_url, timeout=10) as client:
            created = await client.post(
                "/v1/generations",
                json={"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert created.status_code == 202, created.text
            gen_id = created.json()["id"]
            on_streams = redis.Redis.from_url(streams.url, decode_responses=True)
            try:
                assert on_streams.exists(keys.meta(gen_id)), "the generation lives there"
                async with client.stream("GET", f"/v1/generations/{gen_id}/events") as answer:
                    assert answer.status_code == 200

                    async def woken() -> list[str]:
                        return [str(k) for k in on_streams.scan_iter(match="tokenrelay:hub:*")]

                    assert await wait_for(woken, timeout_s=10, what="the wake stream")
            finally:
                on_streams.close()
    finally:
        streams.stop()
