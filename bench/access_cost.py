"""What access control costs: the latency of a read, and creates/s, auth and limits on vs off.

    python -m bench.access_cost            # 3000 creates and 2000 reads per configuration
    python -m bench.access_cost --quick    # 1000 of each

Each configuration runs a real `tokenrelay api` process (no worker: created
generations stay queued, so the limits are set high enough never to refuse) on
a private Redis:

- off: TOKENRELAY_API_KEYS unset (no auth, no limits);
- auth: a managed key (Redis lookup, cached 0.5 s) and tenant checks, no limits;
- auth+limits: the same key with requests per minute and the tenant's running
  limit set (the admission Lua script on every create) and a stream limit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time

import httpx

from bench.servers import cpu_seconds
from cli.redis_server import find_redis_server, private_redis
from tests.support.processes import ROOT, ApiProcess, stack_env

BODY = {"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]}


def managed_key(env: dict[str, str]) -> str:
    made = subprocess.run(
        [sys.executable, "-m", "cli.main", "keys", "create", "--tenant", "bench"],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return made.stdout.strip()


async def measure(
    base: str, key: str | None, creates: int, reads: int, api_pid: int
) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits) as http:
        for _ in range(50):  # warm-up
            assert (await http.post("/v1/generations", json=BODY)).status_code == 202
        gen_id = (await http.post("/v1/generations", json=BODY)).json()["id"]
        latencies = []
        for _ in range(reads):
            started = time.perf_counter()
            answer = await http.get(f"/v1/generations/{gen_id}")
            latencies.append(time.perf_counter() - started)
            assert answer.status_code == 200
        queue: asyncio.Queue[None] = asyncio.Queue()
        for _ in range(creates):
            queue.put_nowait(None)

        async def creator() -> None:
            while not queue.empty():
                queue.get_nowait()
                try:
                    answer = await http.post("/v1/generations", json=BODY)
                except httpx.TransportError:  # a kept-alive connection the server just closed
                    answer = await http.post("/v1/generations", json=BODY)
                assert answer.status_code == 202

        started, api_cpu = time.perf_counter(), cpu_seconds(api_pid)
        await asyncio.gather(*(creator() for _ in range(32)))
        elapsed, api_cpu = time.perf_counter() - started, cpu_seconds(api_pid) - api_cpu
    latencies.sort()
    return {
        "read_p50_ms": statistics.median(latencies) * 1000,
        "read_p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "creates_per_s": creates / elapsed,
        "api_cpu_us_per_create": api_cpu / creates * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    creates, reads = (1000, 1000) if args.quick else (3000, 2000)
    binary = find_redis_server()
    assert binary is not None, "needs redis-server"
    print(
        f"{'configuration':<14} {'read p50 ms':>12} {'read p99 ms':>12} {'creates/s':>10}"
        f" {'API CPU µs/create':>18}"
    )
    for name in ("off", "auth", "auth+limits"):
        with private_redis(binary) as url:
            env = stack_env(url)
            key = None
            if name != "off":
                env["TOKENRELAY_AUTH_REQUIRED"] = "true"
                key = managed_key(env)
            if name == "auth+limits":
                env["TOKENRELAY_KEY_REQUESTS_PER_MINUTE"] = "10000000"
                env["TOKENRELAY_MAX_RUNNING_PER_TENANT"] = "10000000"
                env["TOKENRELAY_KEY_MAX_STREAMS"] = "1000"
            api = ApiProcess(env)
            try:
                api.wait_ready(60)
                figures = asyncio.run(measure(api.base_url, key, creates, reads, api.pid))
            finally:
                api.stop()
        print(
            f"{name:<14} {figures['read_p50_ms']:>12.2f} {figures['read_p99_ms']:>12.2f} "
            f"{figures['creates_per_s']:>10.0f} {figures['api_cpu_us_per_create']:>18.0f}"
        )


if __name__ == "__main__":
    main()
