"""Memory per idle SSE connection in one `tokenrelay api` process, on its own.

    python -m bench.idle_memory                      # 5,000 connections
    python -m bench.idle_memory --connections 19000  # needs an open-file limit of 2x that
    python -m bench.idle_memory --quick              # 300: what CI runs

The same measurement as `bench.run`'s (bench/scenarios.py `idle_memory`: the API's
RSS before and after opening the connections over 50 streams with no output, from
client processes), without the rest of that run, so a change to the per-connection
cost can be measured in a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from bench.scenarios import Harness, idle_memory
from bench.servers import Server, redis_for_connections


async def main_async(connections: int) -> int:
    with redis_for_connections(connections) as redis_url:
        harness = Harness(redis_url, max(1, connections // 2500), warmup_s=0.5)
        server = Server("hub", redis_url)
        try:
            memory = await idle_memory(harness, server, connections)
        finally:
            server.stop()
            await harness.close()
    print("| connections | API RSS before KiB | after KiB | KiB per connection |")
    print("|---|---|---|---|")
    print(
        f"| {memory.connections} (errors {memory.errors}) | {memory.server_rss_before_kib:,} "
        f"| {memory.server_rss_after_kib:,} | {memory.per_connection_kib:.1f} |"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--quick", action="store_true", help="300 connections")
    args = parser.parse_args()
    return asyncio.run(main_async(300 if args.quick else args.connections))


if __name__ == "__main__":
    sys.exit(main())
