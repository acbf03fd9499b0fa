"""Time to first token through tokenrelay, and how much of it is the queue.

Starts its own redis-server, one API and one worker (the demo provider at full
speed, so the provider adds nothing), then, one generation at a time: `POST
/v1/generations`, open its event stream at once, and time the `start` event (the
worker picked the job up) and the first `delta` (the first token reached the
viewer), both from the moment the POST was sent.

    python -m bench.first_token            # 60 generations
    python -m bench.first_token --quick    # 15

Run from another checkout (PYTHONPATH=that checkout) to measure the code there
the same way: the processes are started from the checkout the tests package
belongs to.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from tests.faults.support import RedisServer
from tests.support.processes import ApiProcess, WorkerProcess, stack_env
from tests.support.sse import SseEvent, iter_sse

POSTS: list[float] = []


async def one(client: httpx.AsyncClient) -> tuple[float, float]:
    sent = time.perf_counter()
    created = await client.post(
        "/v1/generations",
        json={"model": "demo/echo", "messages": [{"role": "user", "content": "one two"}]},
    )
    gen_id = created.json()["id"]
    POSTS.append(time.perf_counter() - sent)
    started = first = 0.0
    async with client.stream("GET", f"/v1/generations/{gen_id}/events") as response:
        async for item in iter_sse(response):
            if not isinstance(item, SseEvent):
                continue
            if item.event == "start" and not started:
                started = time.perf_counter() - sent
            if item.event == "delta" and not first:
                first = time.perf_counter() - sent
            if item.event in ("done", "error", "cancelled"):
                break
    return started, first


def describe(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[int(len(ordered) * 0.9) - 1]
    return (
        f"| {name} | {statistics.median(ordered) * 1000:.1f} | {p90 * 1000:.1f} "
        f"| {ordered[-1] * 1000:.1f} |"
    )


async def main(quick: bool) -> None:
    runs = 15 if quick else 60
    with tempfile.TemporaryDirectory() as workdir:
        redis = RedisServer(Path(workdir), appendonly=False)
        redis.start()
        env = stack_env(redis.url, TOKENRELAY_DEMO_TOKENS_PER_S="0")
        worker, api = WorkerProcess(env), ApiProcess(env)
        try:
            worker.wait_ready(60)
            api.wait_ready(60)
            async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as client:
                for _ in range(3):  # warm-up: connections, caches
                    await one(client)
                    await asyncio.sleep(0.3)
                samples = []
                for _ in range(runs):
                    samples.append(await one(client))
                    await asyncio.sleep(0.3)  # the worker is idle again, as between users
        finally:
            api.stop()
            worker.stop()
            redis.stop()
    print(f"{runs} generations, demo provider at full speed, one at a time")
    print("| from POST sent, ms | p50 | p90 | max |")
    print("|---|---|---|---|")
    print(describe("`start` (the worker picked the job up)", [s for s, _ in samples]))
    print(describe("first `delta` at the viewer", [f for _, f in samples]))
    print(describe("POST answered", POSTS[3:]))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="15 generations")
    asyncio.run(main(parser.parse_args().quick))
