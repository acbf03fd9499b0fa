"""Delivery through the hub alone: latency and API CPU per delivered event, by viewers.

One `tokenrelay api` on a private redis-server, client processes holding V viewers
of one stream, the publisher XADDing one delta per tick at R events/s (the same
harness as `bench.run`, without the naive baseline, so a before/after comparison
of the hub fits in a few minutes):

    python -m bench.delivery                       # 1,000 and 3,000 viewers, 10 events/s
    python -m bench.delivery --viewers 1000 --rate 20 --clients 2
    python -m bench.delivery --quick               # 100 viewers, for CI

Reported per window: p50/p99/max publish-to-receive, events delivered per second,
the API's CPU per delivered event, and the share of events the hub wrote itself
in one pass (api/streaming/direct.py; `tokenrelay_sse_events_delivered_direct_total`).
The clients share the machine's cores with the server, as in production where
TLS, the app and other tenants do.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import httpx

from bench.scenarios import Harness, latency, load_conditions
from bench.servers import Server, raise_fd_limit
from cli.redis_server import find_redis_server, private_redis


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


async def _delivered(server: Server) -> tuple[float, float]:
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"{server.base_url}/metrics")).text
    return (
        _metric(text, "tokenrelay_sse_events_delivered_total"),
        _metric(text, "tokenrelay_sse_events_delivered_direct_total"),
    )


async def main_async(viewers: list[int], rate: float, seconds: float, clients: int) -> int:
    raise_fd_limit()
    binary = find_redis_server()
    if binary is None:
        print("no redis-server found", file=sys.stderr)
        return 1
    print(f"load before: {load_conditions()['loadavg']}", file=sys.stderr)
    print(
        "| viewers | events/s per stream | p50 ms | p99 ms | max ms | delivered/s "
        "| API CPU µs per delivered event | written by the hub itself |"
    )
    print("|---|---|---|---|---|---|---|---|")
    with private_redis(binary, extra_args=("--maxclients", "20000")) as redis_url:
        harness = Harness(redis_url, clients, warmup_s=3.0)
        try:
            for count in viewers:
                server = Server("hub", redis_url)
                try:
                    before = await _delivered(server)
                    window = await latency(harness, server, 1, count, rate, seconds)
                    after = await _delivered(server)
                finally:
                    server.stop()
                total, direct = after[0] - before[0], after[1] - before[1]
                share = f"{direct / total:.0%}" if total else "n/a"
                print(
                    f"| {count} | {rate:g} | {window.p50_ms:.1f} | {window.p99_ms:.1f} "
                    f"| {window.max_ms:.1f} | {window.delivered_per_s:.0f} "
                    f"| {window.server_cpu_us_per_event:.1f} | {share} |",
                    flush=True,
                )
        finally:
            await harness.close()
    print(f"load after: {load_conditions()['loadavg']}", file=sys.stderr)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--viewers", type=int, action="append")
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--clients", type=int, default=2)
    args = parser.parse_args()
    viewers = args.viewers or ([100] if args.quick else [1000, 3000])
    seconds = args.seconds or (1.5 if args.quick else 6.0)
    return asyncio.run(main_async(viewers, args.rate, seconds, 1 if args.quick else args.clients))


if __name__ == "__main__":
    sys.exit(main())
