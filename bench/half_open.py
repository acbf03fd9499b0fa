"""Quiet faults: the longest stall a viewer sees when Redis connections go half-open,
and what the bounds that end such stalls cost an idle deployment in Redis commands.

Starts its own redis-server, a proxy that can mute the connections it carries
(tests/support/blackhole_proxy.py), an API and workers on 127.0.0.1, with the
product's default timeouts (5 s reply timeout, 10 s lease, 2 s reaps, 5 s hub
block), and measures, as one viewer sees it, the longest gap between two events
of a 40 tokens/s generation when, mid-stream:

- worker, open connections mute: every connection the worker has open goes
  half-open; new ones still work (an expired NAT entry);
- worker, cut off for good: every connection of the worker, old and new, goes
  mute; another worker is running;
- API, open connections mute: every connection the API has open goes half-open
  (its shared reader among them); new ones still work.

Then the idle load: an API and a worker with nothing to do, `INFO commandstats`
over a window, in commands per second by command.

    python -m bench.half_open            # 3 rounds each, 30 s idle window
    python -m bench.half_open --quick    # 1 round each, 10 s idle window
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis.asyncio as aioredis

from tests.faults.support import Processes, RedisServer, create, fault_env, watch
from tests.support.blackhole_proxy import BlackholeProxy
from tests.support.processes import ApiProcess, WorkerProcess, stack_env
from tests.support.sse import SseEvent

DEFAULTS = {
    "TOKENRELAY_LEASE_S": "10",
    "TOKENRELAY_REAP_INTERVAL_S": "2",
    "TOKENRELAY_REDIS_TIMEOUT_S": "5",
    "TOKENRELAY_HEARTBEAT_S": "15",
    "TOKENRELAY_DEMO_TOKENS_PER_S": "40",
}


async def longest_gap(api: str, fault: Callable[[], None], tokens: int = 1200) -> float:
    """Seconds of the longest silence between two events, the fault injected mid-stream."""
    gen_id = await create(api, max_tokens=tokens)
    stamps: list[float] = []

    def note(event: SseEvent) -> None:
        stamps.append(time.perf_counter())
        if len(stamps) == 20:
            fault()

    viewing = await watch(api, gen_id, on_event=note, timeout_s=180)
    assert viewing.kinds[-1] == "done", viewing.kinds[-5:]
    return max(b - a for a, b in itertools.pairwise(stamps))


async def worker_scenario(redis: RedisServer, *, for_good: bool) -> float:
    proxy = BlackholeProxy(redis.port).start()
    procs = Processes(fault_env(redis.url, **DEFAULTS))
    try:
        cut = procs.worker(TOKENRELAY_REDIS_URL=proxy.url)
        api = procs.api()
        cut.wait_ready(60)
        api.wait_ready(60)

        def fault() -> None:
            proxy.cut(new_connections=for_good)
            if for_good:
                procs.worker()  # takes over once the lease runs out

        return await longest_gap(api.base_url, fault)
    finally:
        procs.stop_all()
        proxy.stop()


async def api_scenario(redis: RedisServer) -> float:
    proxy = BlackholeProxy(redis.port).start()
    procs = Processes(fault_env(redis.url, **DEFAULTS))
    try:
        worker = procs.worker()
        api = procs.api(TOKENRELAY_REDIS_URL=proxy.url)
        worker.wait_ready(60)
        api.wait_ready(60)
        return await longest_gap(api.base_url, proxy.cut)
    finally:
        procs.stop_all()
        proxy.stop()


async def idle_load(redis: RedisServer, window_s: float) -> dict[str, float]:
    env = stack_env(redis.url, **DEFAULTS)
    worker, api = WorkerProcess(env), ApiProcess(env)
    client = aioredis.Redis.from_url(redis.url, decode_responses=True)
    try:
        worker.wait_ready(60)
        api.wait_ready(60)
        await asyncio.sleep(3)
        await client.config_resetstat()
        await asyncio.sleep(window_s)
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
        api.stop()
        worker.stop()
    rates = {
        name.removeprefix("cmdstat_"): float(fields["calls"]) / window_s
        for name, fields in stats.items()
        if name not in ("cmdstat_config", "cmdstat_info")
    }
    return dict(sorted(rates.items(), key=lambda item: -item[1]))


def describe(name: str, gaps: list[float]) -> str:
    return f"| {name} | {len(gaps)} | {statistics.median(gaps):.1f} | {max(gaps):.1f} |"


async def main(quick: bool) -> None:
    rounds, window_s = (1, 10.0) if quick else (3, 30.0)
    with tempfile.TemporaryDirectory() as workdir:
        redis = RedisServer(Path(workdir), appendonly=False)
        redis.start()
        try:
            rows = [
                (
                    "worker, open connections mute",
                    [await worker_scenario(redis, for_good=False) for _ in range(rounds)],
                ),
                (
                    "worker, cut off for good",
                    [await worker_scenario(redis, for_good=True) for _ in range(rounds)],
                ),
                ("API, open connections mute", [await api_scenario(redis) for _ in range(rounds)]),
            ]
        finally:
            redis.stop()
        # The idle load on a Redis of its own: jobs the fault scenarios left behind
        # (their workers were cut off) would show up as arq retrying them.
        idle_redis = RedisServer(Path(workdir), appendonly=False)
        idle_redis.start()
        try:
            idle = await idle_load(idle_redis, window_s)
        finally:
            idle_redis.stop()
    print("| half-open fault mid-stream | runs | longest gap, median (s) | longest gap, max (s) |")
    print("|---|---|---|---|")
    for name, gaps in rows:
        print(describe(name, gaps))
    print()
    print(f"Idle API + worker, {window_s:.0f} s: {sum(idle.values()):.1f} Redis commands/s")
    print("| command | calls/s |")
    print("|---|---|")
    for command, rate in idle.items():
        print(f"| {command} | {rate:.2f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round each, short idle window")
    asyncio.run(main(parser.parse_args().quick))
