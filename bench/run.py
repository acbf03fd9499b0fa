"""Run every benchmark against the hub and the naive baseline, side by side.

    python -m bench.run            # the full run (about 10 minutes on 2 cores)
    python -m bench.run --quick    # small sizes for CI (under a minute)
    python -m bench.run --json out.json

It starts its own redis-server on a free port (never the machine's 6379), the
`tokenrelay api` under test and the baseline `bench.naive`, one after the other
against the same Redis, and the client processes; everything talks to
127.0.0.1 only and everything is stopped at the end. Figures are printed as
Markdown tables (copied into bench/README.md) and optionally saved as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.scenarios import (
    Harness,
    IdleMemory,
    Window,
    XaddRate,
    idle_memory,
    latency,
    load_conditions,
    throughput,
    xadd_rate,
)
from bench.servers import Server, redis_for_connections

SYSTEMS = ("hub", "naive")


@dataclass(frozen=True)
class Sizes:
    viewers: tuple[int, ...]
    multi: tuple[int, int]
    rate: float
    seconds: float
    ramp: tuple[tuple[int, tuple[float, ...]], ...]
    ramp_seconds: float
    idle_connections: int
    clients: int
    warmup_s: float
    xadd_viewers: tuple[int, ...]
    xadd_seconds: float


FULL = Sizes(
    viewers=(1, 100, 1000),
    multi=(100, 10),
    rate=10.0,
    seconds=6.0,
    ramp=(
        (100, (10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0)),
        (1000, (2.0, 5.0, 10.0, 20.0, 40.0, 80.0)),
    ),
    ramp_seconds=4.0,
    idle_connections=5000,
    clients=2,
    warmup_s=3.0,
    xadd_viewers=(0, 100, 1000),
    xadd_seconds=3.0,
)
QUICK = Sizes(
    viewers=(1, 10, 100),
    multi=(10, 5),
    rate=10.0,
    seconds=1.5,
    ramp=((100, (5.0, 20.0)),),
    ramp_seconds=1.5,
    idle_connections=300,
    clients=1,
    warmup_s=0.5,
    xadd_viewers=(0, 100),
    xadd_seconds=1.0,
)


async def run_system(kind: str, redis_url: str, sizes: Sizes, harness: Harness) -> dict[str, Any]:
    server = Server(kind, redis_url)
    try:
        windows: list[Window] = []
        for viewers in sizes.viewers:
            windows.append(await latency(harness, server, 1, viewers, sizes.rate, sizes.seconds))
            print(f"  {kind}: 1 stream x {viewers} viewers done", file=sys.stderr, flush=True)
        streams, per_stream = sizes.multi
        windows.append(
            await latency(harness, server, streams, per_stream, sizes.rate, sizes.seconds)
        )
        print(f"  {kind}: {streams} streams x {per_stream} done", file=sys.stderr, flush=True)
        ramp: list[Window] = []
        for viewers, rates in sizes.ramp:
            ramp += await throughput(harness, server, viewers, list(rates), sizes.ramp_seconds)
            print(f"  {kind}: throughput ramp 1x{viewers} done", file=sys.stderr, flush=True)
        xadds = [
            await xadd_rate(harness, server, viewers, sizes.xadd_seconds)
            for viewers in sizes.xadd_viewers
        ]
        print(f"  {kind}: XADD loop done", file=sys.stderr, flush=True)
        memory = await idle_memory(harness, server, sizes.idle_connections)
        print(f"  {kind}: idle memory done", file=sys.stderr, flush=True)
        return {"latency": windows, "ramp": ramp, "xadd": xadds, "memory": memory}
    finally:
        server.stop()


def best(ramp: list[Window], label: str, limit_ms: float | None) -> float:
    """Highest delivered/s of the windows that kept up (and, given a limit, kept p99 under it)."""
    return max(
        (
            w.delivered_per_s
            for w in ramp
            if w.label == label
            and w.delivered >= 0.95 * w.expected
            and (limit_ms is None or w.p99_ms <= limit_ms)
        ),
        default=0.0,
    )


def fmt(value: float, digits: int = 1) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.{digits}f}"


def report(results: dict[str, dict[str, Any]], sizes: Sizes, conditions: dict[str, Any]) -> str:
    lines = [
        f"Load: {conditions['cpus']} CPUs, load average before {conditions['before']}, "
        f"after {conditions['after']}; {sizes.clients} client process(es).",
        "",
        f"### Publish-to-receive latency ({fmt(sizes.rate, 0)} events/s per stream, "
        f"{fmt(sizes.seconds, 0)} s)",
        "",
        "| viewers | system | p50 ms | p99 ms | max ms | delivered/expected "
        "| Redis cmds per delivered event | server CPU us per delivered event |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for index in range(len(results["hub"]["latency"])):
        for kind in SYSTEMS:
            w: Window = results[kind]["latency"][index]
            lines.append(
                f"| {w.label} | {kind} | {fmt(w.p50_ms)} | {fmt(w.p99_ms)} | {fmt(w.max_ms)} "
                f"| {w.delivered}/{w.expected} | {fmt(w.commands_per_event, 4)} "
                f"| {fmt(w.server_cpu_us_per_event)} |"
            )
    lines += [
        "",
        "### Throughput on one stream: the publish rate doubles until delivery saturates",
        "",
        "| viewers | system | publish rate | delivered/s | delivered/expected | p50 ms | p99 ms "
        "| Redis cmds/event | server CPU us/event |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for viewers, _ in sizes.ramp:
        for kind in SYSTEMS:
            for w in results[kind]["ramp"]:
                if w.label != f"1x{viewers}":
                    continue
                lines.append(
                    f"| {w.label} | {kind} | {fmt(w.rate, 0)}/s | {fmt(w.delivered_per_s, 0)} "
                    f"| {w.delivered}/{w.expected} | {fmt(w.p50_ms)} | {fmt(w.p99_ms)} "
                    f"| {fmt(w.commands_per_event, 4)} | {fmt(w.server_cpu_us_per_event)} |"
                )
    lines += [
        "",
        "| viewers | system | best delivered/s with p99 <= 50 ms | best delivered/s sustained |",
        "|---|---|---|---|",
    ]
    for viewers, _ in sizes.ramp:
        label = f"1x{viewers}"
        figures = {
            kind: (
                best(results[kind]["ramp"], label, 50.0),
                best(results[kind]["ramp"], label, None),
            )
            for kind in SYSTEMS
        }
        for kind in SYSTEMS:
            limited, sustained = figures[kind]
            lines.append(f"| {label} | {kind} | {fmt(limited, 0)} | {fmt(sustained, 0)} |")
        naive_sustained = figures["naive"][1]
        ratio = figures["hub"][1] / naive_sustained if naive_sustained else float("nan")
        lines.append(f"| {label} | hub/naive | | x{fmt(ratio, 1)} |")
    lines += [
        "",
        "### A plain XADD loop while viewers watch the stream",
        "",
        "| viewers | system | XADD/s | events delivered/s |",
        "|---|---|---|---|",
    ]
    for index, viewers in enumerate(sizes.xadd_viewers):
        for kind in SYSTEMS:
            x: XaddRate = results[kind]["xadd"][index]
            lines.append(
                f"| {viewers} | {kind} | {fmt(x.xadds_per_s, 0)} | {fmt(x.delivered_per_s, 0)} |"
            )
    lines += [
        "",
        "### Memory per idle SSE connection",
        "",
        "| system | connections | server RSS before KiB | after KiB | KiB per connection "
        "| Redis memory delta KiB | Redis clients |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in SYSTEMS:
        m: IdleMemory = results[kind]["memory"]
        lines.append(
            f"| {kind} | {m.connections} (errors {m.errors}) | {m.server_rss_before_kib:,} "
            f"| {m.server_rss_after_kib:,} | {fmt(m.per_connection_kib)} "
            f"| {fmt(m.redis_memory_delta_kib, 0)} | {m.redis_clients} |"
        )
    return "\n".join(lines)


async def main_async(sizes: Sizes, json_path: str | None) -> int:
    conditions: dict[str, Any] = {**load_conditions()}
    conditions["before"] = conditions.pop("loadavg")
    with redis_for_connections(sizes.idle_connections) as redis_url:
        harness = Harness(redis_url, sizes.clients, warmup_s=sizes.warmup_s)
        try:
            results = {}
            for kind in SYSTEMS:
                print(f"{kind}:", file=sys.stderr, flush=True)
                results[kind] = await run_system(kind, redis_url, sizes, harness)
        finally:
            await harness.close()
    conditions["after"] = load_conditions()["loadavg"]
    print(report(results, sizes, conditions))
    if json_path:
        serializable = {
            kind: {
                "latency": [asdict(w) for w in data["latency"]],
                "ramp": [asdict(w) for w in data["ramp"]],
                "xadd": [asdict(x) for x in data["xadd"]],
                "memory": asdict(data["memory"]),
            }
            for kind, data in results.items()
        }
        payload = json.dumps({"conditions": conditions, "results": serializable}, indent=1)
        await asyncio.to_thread(Path(json_path).write_text, payload)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes for CI")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    return asyncio.run(main_async(QUICK if args.quick else FULL, args.json))


if __name__ == "__main__":
    sys.exit(main())
