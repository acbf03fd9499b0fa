"""One Redis vs a Redis Cluster, in one run: fan-out cost, and generations per second.

1. Fan-out: one real API process, its generations on (a) one Redis (XREAD hub) and
   (b) a 3-master cluster (sharded pub/sub hub). The bench publishes delta batches
   through the real store (with SPUBLISH on the cluster) to S streams watched by V
   viewers each, and reports the Redis commands the API's reader sends per delivered
   event (every node's `INFO commandstats`: XREAD, XRANGE, SSUBSCRIBE, PING…),
   the p99 publish-to-viewer latency, and the API's CPU per delivered event.
2. Throughput: an API and two workers (demo/echo, no token pacing) with the
   streams role on one Redis, a 1-master cluster and a 3-master cluster;
   generations created (202s per second) and completed per second.

    python -m bench.cluster [--quick]

Figures on a small shared machine measure the Python processes as much as Redis;
read them as ratios between the set-ups, run in the same minute.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import redis

from cli.redis_server import find_redis_server, private_redis
from services.generation import GenerationRequest, Message
from services.store import AttemptGrant, EventBatch, GenerationStore
from tests.support.processes import ApiProcess, WorkerProcess, stack_env
from tests.support.redis_topologies import RedisCluster, redis_cluster
from tests.support.sse import SseEvent, iter_sse


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


READER_COMMANDS = {"xread", "xrange", "xrevrange", "ssubscribe", "sunsubscribe", "ping", "cluster"}
"""What an API process asks of the streams Redis to follow streams (the writes inside the
publisher's scripts, SPUBLISH included, are counted by Redis too, and left out here)."""


def _command_calls(ports: list[int]) -> int:
    total = 0
    for port in ports:
        client = redis.Redis(port=port, decode_responses=True)
        info: dict[str, Any] = client.info("commandstats")  # type: ignore[assignment]  # a sync client's reply
        for name, stats in info.items():
            if name.removeprefix("cmdstat_").split("|")[0] in READER_COMMANDS:
                total += int(stats["calls"])
        client.close()
    return total


def _reset_stats(ports: list[int]) -> None:
    for port in ports:
        client = redis.Redis(port=port)
        client.config_resetstat()
        client.close()


async def _streams_store(url: str | None, single: str) -> GenerationStore:
    from services.config import Settings
    from services.redis_connections import command_client, streams_client

    settings = Settings(redis_url=single, streams_redis_url=url)
    control = command_client(settings, "bench")
    return GenerationStore(
        streams_client(settings, "bench", control),
        control=control,
        announce=settings.streams_on_cluster,
        retention_s=3600,
        max_stream_events=1_000_000,
    )


async def _view(base: str, gen_id: str, latencies: list[float], count: list[int]) -> None:
    async with (
        httpx.AsyncClient(timeout=120) as client,
        client.stream("GET", f"{base}/v1/generations/{gen_id}/events") as response,
    ):
        async for item in iter_sse(response):
            if isinstance(item, SseEvent):
                if item.event == "delta":
                    sent = float(item.json()["text"].split("|", 1)[0])
                    latencies.append(time.time() - sent)
                    count[0] += 1
                if item.event == "done":
                    return


async def fanout(
    label: str, control_url: str, streams_url: str | None, ports: list[int], sizes: dict[str, int]
) -> dict[str, Any]:
    env = stack_env(
        control_url, **({"TOKENRELAY_STREAMS_REDIS_URL": streams_url} if streams_url else {})
    )
    api = ApiProcess(env)
    try:
        api.wait_ready(timeout_s=90)
        store = await _streams_store(streams_url, control_url)
        request = GenerationRequest(model="demo/echo", messages=[Message(role="user", content="b")])
        gens: dict[str, str] = {}
        for _ in range(sizes["streams"]):
            gen_id = f"gen_{secrets.token_hex(16)}"
            await store.create(gen_id, request, time.time())
            token = secrets.token_hex(8)
            grant = await store.begin_attempt(gen_id, token, 600_000)
            assert isinstance(grant, AttemptGrant)
            gens[gen_id] = token
        latencies: list[float] = []
        delivered = [0]
        viewers = [
            asyncio.create_task(_view(api.base_url, gen_id, latencies, delivered))
            for gen_id in gens
            for _ in range(sizes["viewers"])
        ]
        await asyncio.sleep(2.0)  # every viewer attached
        _reset_stats(ports)
        cpu_before = _cpu_s(api.pid)
        for n in range(sizes["batches"]):
            for gen_id, token in gens.items():
                text = f"{time.time()}|{n} "
                batch = EventBatch(
                    events=[("delta", json.dumps({"text": text}))],
                    text_append=text,
                    batch_id=f"{token}:{n}",
                )
                assert await store.publish(gen_id, token, batch) == "ok"
            await asyncio.sleep(1 / sizes["rate"])
        for gen_id, token in gens.items():
            done = EventBatch(
                events=[("done", json.dumps({"finish_reason": "stop", "usage": None}))],
                terminal_status="completed",
                finish_reason="stop",
            )
            await store.publish(gen_id, token, done)
        await asyncio.wait_for(asyncio.gather(*viewers), 120)
        cpu = _cpu_s(api.pid) - cpu_before
        await store.redis.aclose()
        await store.control.aclose()
        calls = _command_calls(ports)
        latencies.sort()
        return {
            "setup": label,
            "streams": sizes["streams"],
            "viewers_per_stream": sizes["viewers"],
            "delivered_events": delivered[0],
            "published_events": sizes["streams"] * sizes["batches"],
            "reader_redis_commands": calls,
            "reader_commands_per_delivered_event": round(calls / max(delivered[0], 1), 4),
            "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
            "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 1),
            "api_cpu_us_per_event": round(cpu / max(delivered[0], 1) * 1e6, 1),
        }
    finally:
        api.stop()


async def throughput(
    label: str, control_url: str, streams_url: str | None, generations: int
) -> dict[str, Any]:
    overrides = {"TOKENRELAY_DEMO_TOKENS_PER_S": "0"}
    if streams_url:
        overrides["TOKENRELAY_STREAMS_REDIS_URL"] = streams_url
    env = stack_env(control_url, **overrides)
    workers = [WorkerProcess(env) for _ in range(2)]
    api = ApiProcess(env)
    try:
        for worker in workers:
            worker.wait_ready(timeout_s=90)
        api.wait_ready(timeout_s=90)
        body = {"model": "demo/echo", "messages": [{"role": "user", "content": "x " * 20}]}
        limit = asyncio.Semaphore(16)
        async with httpx.AsyncClient(base_url=api.base_url, timeout=60) as client:

            async def create() -> str:
                async with limit:
                    response = await client.post("/v1/generations", json=body)
                    assert response.status_code == 202, response.text
                    return str(response.json()["id"])

            started = time.monotonic()
            ids = await asyncio.gather(*(create() for _ in range(generations)))
            created_s = time.monotonic() - started
            pending = set(ids)
            while pending:
                for gen_id in list(pending):
                    status = (await client.get(f"/v1/generations/{gen_id}")).json()["status"]
                    if status in ("completed", "failed", "cancelled"):
                        assert status == "completed", status
                        pending.discard(gen_id)
                await asyncio.sleep(0.05)
            completed_s = time.monotonic() - started
        return {
            "setup": label,
            "generations": generations,
            "created_per_s": round(generations / created_s, 1),
            "completed_per_s": round(generations / completed_s, 1),
        }
    finally:
        api.stop()
        for worker in workers:
            worker.stop()


@contextlib.contextmanager
def _single() -> Iterator[str]:
    binary = find_redis_server()
    assert binary is not None
    with private_redis(binary) as url:
        yield url


def _ports(cluster: RedisCluster) -> list[int]:
    return [n.port for n in cluster.masters()]


async def main(quick: bool) -> None:
    sizes = (
        {"streams": 4, "viewers": 5, "batches": 20, "rate": 20}
        if quick
        else {"streams": 20, "viewers": 10, "batches": 100, "rate": 20}
    )
    generations = 40 if quick else 300
    results: dict[str, list[dict[str, Any]]] = {"fanout": [], "throughput": []}
    with _single() as control, _single() as streams, redis_cluster(masters=3) as three:
        streams_port = int(streams.rsplit(":", 1)[1].split("/")[0])
        results["fanout"].append(
            await fanout("one Redis (XREAD hub)", control, streams, [streams_port], sizes)
        )
        print(json.dumps(results["fanout"][-1]), flush=True)
        results["fanout"].append(
            await fanout(
                "3-master cluster (sharded pub/sub hub)", control, three.url, _ports(three), sizes
            )
        )
        results["throughput"].append(await throughput("one Redis", control, streams, generations))
        results["throughput"].append(
            await throughput("3-master cluster", control, three.url, generations)
        )
        with redis_cluster(masters=1) as one:
            results["throughput"].append(
                await throughput("1-master cluster", control, one.url, generations)
            )
    print(json.dumps(results, indent=2), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    asyncio.run(main(parser.parse_args().quick))
