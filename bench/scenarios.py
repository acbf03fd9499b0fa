"""The measurements, each run the same way against either server.

A scenario creates generations in the private Redis (through the real store, so
the hub's route finds their status), opens the viewers from the client
processes, publishes delta events carrying their publish time at a fixed rate,
and reads back what the viewers measured and what Redis counted (`INFO
commandstats`, reset before each window).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import secrets
import time
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from redis.asyncio import Redis

from bench.client import client_main, command
from bench.servers import Server
from services import keys
from services.generation import GenerationRequest, Message
from services.store import GenerationStore

EXCLUDED_COMMANDS = {"xadd", "config", "info", "ping"}  # the publisher's and the bench's own


@dataclass
class Window:
    system: str
    label: str
    streams: int
    viewers: int
    rate: float
    seconds: float
    published: int
    expected: int
    delivered: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    delivered_per_s: float
    redis_commands: int
    commands_per_event: float
    server_cpu_us_per_event: float
    errors: int

    def row(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Harness:
    """The client processes and the publisher, shared by every scenario of a run."""

    def __init__(self, redis_url: str, clients: int, warmup_s: float = 3.0) -> None:
        self.redis_url = redis_url
        self.warmup_s = warmup_s
        self.redis = Redis.from_url(redis_url, decode_responses=True)
        self.store = GenerationStore(self.redis, retention_s=3600, max_stream_events=10_000_000)
        context = multiprocessing.get_context("spawn")
        self.clients: list[tuple[BaseProcess, Connection]] = []
        for _ in range(clients):
            ours, theirs = context.Pipe()
            process = context.Process(target=client_main, args=(theirs,), daemon=True)
            process.start()
            self.clients.append((process, ours))

    async def close(self) -> None:
        for process, pipe in self.clients:
            pipe.send(("exit", None))
            process.join(timeout=10)
        await self.redis.aclose()

    async def _all(self, name: str, args: list[Any]) -> list[Any]:
        return list(
            await asyncio.gather(
                *(
                    asyncio.to_thread(command, pipe, name, arg)
                    for (_, pipe), arg in zip(self.clients, args, strict=True)
                )
            )
        )

    async def new_generations(self, count: int) -> list[str]:
        request = GenerationRequest(model="demo/echo", messages=[Message(role="user", content="b")])
        ids = [f"gen_{secrets.token_hex(16)}" for _ in range(count)]
        for gen_id in ids:
            await self.store.create(gen_id, request, time.time())
        return ids

    async def connect(self, server: Server, gen_ids: list[str], per_stream: int) -> int:
        paths = [f"/v1/generations/{g}/events" for _ in range(per_stream) for g in gen_ids]
        shares: list[list[str]] = [paths[i :: len(self.clients)] for i in range(len(self.clients))]
        errors = await self._all("connect", [(server.port, share, 200) for share in shares])
        return sum(errors)

    async def disconnect(self) -> None:
        await self._all("close", [None] * len(self.clients))

    async def publish(self, gen_ids: list[str], rate: float, seconds: float) -> int:
        """XADD one delta per stream every 1/rate s, each stamped with its publish time."""
        interval = 1.0 / rate
        ticks = max(1, int(seconds * rate))
        start = time.perf_counter()
        for tick in range(ticks):
            delay = start + tick * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            async with self.redis.pipeline(transaction=False) as pipe:
                stamp = time.time()
                data = json.dumps({"text": "tok ", "t": stamp}, separators=(",", ":"))
                for gen_id in gen_ids:
                    pipe.xadd(keys.events(gen_id), {"type": "delta", "data": data})
                await pipe.execute()
        return ticks * len(gen_ids)

    async def window(
        self,
        server: Server,
        label: str,
        gen_ids: list[str],
        per_stream: int,
        rate: float,
        seconds: float,
    ) -> Window:
        # Warm-up, not measured: long enough for the one full garbage collection that
        # follows a burst of new connections (see README) to happen before the window.
        await self.publish(gen_ids, rate, min(self.warmup_s, seconds))
        await asyncio.sleep(0.3)
        await self.redis.config_resetstat()
        await self._all("mark", [None] * len(self.clients))
        started = time.perf_counter()
        cpu_before = server.cpu_seconds
        published = await self.publish(gen_ids, rate, seconds)
        await asyncio.sleep(0.5)  # let the last events arrive
        elapsed = time.perf_counter() - started
        cpu = server.cpu_seconds - cpu_before
        stats = await self.redis.info("commandstats")
        results = await self._all("collect", [None] * len(self.clients))
        latencies = [value for lat, _, _ in results for value in lat]
        delivered = sum(count for _, count, _ in results)
        errors = sum(err for _, _, err in results)
        commands = sum(
            int(entry["calls"])
            for name, entry in stats.items()
            if name.removeprefix("cmdstat_").split("|")[0] not in EXCLUDED_COMMANDS
        )
        return Window(
            system=server.kind,
            label=label,
            streams=len(gen_ids),
            viewers=len(gen_ids) * per_stream,
            rate=rate,
            seconds=seconds,
            published=published,
            expected=published * per_stream,
            delivered=delivered,
            p50_ms=percentile(latencies, 0.50) * 1000,
            p99_ms=percentile(latencies, 0.99) * 1000,
            max_ms=max(latencies, default=float("nan")) * 1000,
            delivered_per_s=delivered / elapsed,
            redis_commands=commands,
            commands_per_event=commands / delivered if delivered else float("nan"),
            server_cpu_us_per_event=cpu * 1e6 / delivered if delivered else float("nan"),
            errors=errors,
        )


async def latency(
    harness: Harness, server: Server, streams: int, per_stream: int, rate: float, seconds: float
) -> Window:
    gen_ids = await harness.new_generations(streams)
    errors = await harness.connect(server, gen_ids, per_stream)
    try:
        await asyncio.sleep(0.5)
        result = await harness.window(
            server, f"{streams}x{per_stream}", gen_ids, per_stream, rate, seconds
        )
        result.errors += errors
        return result
    finally:
        await harness.disconnect()


async def throughput(
    harness: Harness,
    server: Server,
    viewers: int,
    rates: list[float],
    seconds: float,
) -> list[Window]:
    """Raise the publish rate on one stream until it saturates: events go missing
    (fewer than 95% arrive within the window) or p99 passes a second."""
    gen_ids = await harness.new_generations(1)
    await harness.connect(server, gen_ids, viewers)
    windows: list[Window] = []
    try:
        await asyncio.sleep(0.5)
        for rate in rates:
            result = await harness.window(server, f"1x{viewers}", gen_ids, viewers, rate, seconds)
            windows.append(result)
            if result.p99_ms > 1000 or result.delivered < 0.95 * result.expected:
                break
    finally:
        await harness.disconnect()
    return windows


@dataclass
class XaddRate:
    system: str
    viewers: int
    xadds_per_s: float
    delivered_per_s: float


async def xadd_rate(harness: Harness, server: Server, viewers: int, seconds: float) -> XaddRate:
    """The issue's own symptom: a plain XADD loop (one command at a time, as fast as
    Redis answers) while `viewers` watch the stream."""
    gen_ids = await harness.new_generations(1)
    if viewers:
        await harness.connect(server, gen_ids, viewers)
    key = keys.events(gen_ids[0])
    try:
        await asyncio.sleep(1.0)
        await harness._all("mark", [None] * len(harness.clients))
        count = 0
        started = time.perf_counter()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            data = json.dumps({"text": "tok ", "t": time.time()}, separators=(",", ":"))
            await harness.redis.xadd(key, {"type": "delta", "data": data})
            count += 1
        elapsed = time.perf_counter() - started
        await asyncio.sleep(1.0)
        results = await harness._all("collect", [None] * len(harness.clients))
    finally:
        if viewers:
            await harness.disconnect()
    delivered = sum(n for _, n, _ in results)
    return XaddRate(server.kind, viewers, count / elapsed, delivered / (elapsed + 1.0))


@dataclass
class IdleMemory:
    system: str
    connections: int
    server_rss_before_kib: int
    server_rss_after_kib: int
    per_connection_kib: float
    redis_memory_delta_kib: float
    redis_clients: int
    errors: int


async def idle_memory(
    harness: Harness, server: Server, connections: int, streams: int = 50
) -> IdleMemory:
    gen_ids = await harness.new_generations(streams)
    warm = await harness.new_generations(1)
    await harness.connect(server, warm, 20)  # warm the code paths first
    await harness.disconnect()
    await asyncio.sleep(1.0)
    before = server.rss_kib
    redis_before = int((await harness.redis.info("memory"))["used_memory"])
    errors = await harness.connect(server, gen_ids, max(1, connections // streams))
    try:
        await asyncio.sleep(2.0)
        after = server.rss_kib
        redis_after = int((await harness.redis.info("memory"))["used_memory"])
        clients = int((await harness.redis.info("clients"))["connected_clients"])
    finally:
        await harness.disconnect()
    opened = max(1, connections // streams) * streams
    return IdleMemory(
        system=server.kind,
        connections=opened,
        server_rss_before_kib=before,
        server_rss_after_kib=after,
        per_connection_kib=(after - before) / opened,
        redis_memory_delta_kib=(redis_after - redis_before) / 1024,
        redis_clients=clients,
        errors=errors,
    )


def load_conditions() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "loadavg": [round(x, 2) for x in os.getloadavg()]}
