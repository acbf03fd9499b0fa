"""How many concurrent generations one worker process carries, and its CPU per token.

Starts its own redis-server, one API and one worker (`--workers N` for more),
then creates C generations of `demo/story` at once (each T tokens, paced at 50
tokens/s like a real model) and waits for all of them. Reports, per concurrency:

- queue wait: `started_at - created_at` of each generation (p50, p99, max): the
  time a generation waited for a free slot in the worker;
- stream time: `finished_at - started_at` (p50, p99) against the model's own
  T / 50 tokens/s: how far a running generation falls behind its model when the
  worker is short of CPU (its viewers see the tokens that late);
- the workers' CPU (user + system, from /proc) per token they published;
- how long the whole batch took against the ideal (T / 50 tokens/s).

    python -m bench.worker_capacity                 # 300 and 1,000 concurrent, 150 tokens
    python -m bench.worker_capacity --quick         # 50 concurrent, 50 tokens
    python -m bench.worker_capacity --concurrency 300 --tokens 150 --max-jobs 100
    python -m bench.worker_capacity --provider openai   # through the openai SDK
    python -m bench.worker_capacity --provider anthropic

The demo provider's own pacing (one timer per token) is part of the CPU measured:
a real provider costs the worker a socket read and an SSE parse per token instead.
`--provider openai` (or `anthropic`) measures that: the worker's provider streams
from a fake upstream of that API (tests/support/fake_openai.py, fake_anthropic.py,
in a process of its own) that sends one word per chunk at 50 chunks/s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.servers import fake_upstream_process
from tests.faults.support import RedisServer
from tests.support.fake_upstream import script_prompt
from tests.support.processes import ApiProcess, WorkerProcess, stack_env

TOKENS_PER_S = 50.0


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


_MODELS = {"openai": "openai/gpt-4o-mini", "anthropic": "anthropic/claude-haiku-4-5"}


def _request(provider: str, tokens: int, n: int) -> dict[str, Any]:
    if provider in _MODELS:
        words = " ".join(f"w{n}x{i}" for i in range(tokens))
        prompt = script_prompt(f"capacity-{n}", {"text": words, "delay_s": 1 / TOKENS_PER_S})
        return {"model": _MODELS[provider], "messages": [{"role": "user", "content": prompt}]}
    return {
        "model": "demo/story",
        "max_tokens": tokens,
        "messages": [{"role": "user", "content": f"story number {n}"}],
    }


@contextlib.contextmanager
def _fake_upstream(provider: str) -> Iterator[dict[str, str]]:
    """The worker's environment for a fake upstream of `provider` in a process of its own."""
    if provider not in _MODELS:
        yield {}
        return
    with fake_upstream_process(provider) as base_url:
        name = provider.upper()
        yield {f"{name}_BASE_URL": base_url, f"{name}_API_KEY": "sk-bench"}


CLIENT_CONNECTIONS = 4
"""Requests the benchmark's client has in flight at once; the others wait on a semaphore,
not in httpx. httpx got slower with every connection it juggled: 1,000 creations took
11 s with 1,000 requests queued in a pool of 50 connections, 5.3 s with 50 in flight,
2.4 s with 20 and 1.1 s with 4 (a create takes 1.6 ms one at a time), so the
generations meant to run "1,000 at once" arrived over 11 s and overlapped far less
(bench/README.md, "Eighth round")."""


async def _create(
    client: httpx.AsyncClient, provider: str, tokens: int, n: int, slots: asyncio.Semaphore
) -> str:
    async with slots:
        created = await client.post("/v1/generations", json=_request(provider, tokens, n))
    created.raise_for_status()
    gen_id: str = created.json()["id"]
    return gen_id


async def _get(client: httpx.AsyncClient, gen_id: str, slots: asyncio.Semaphore) -> httpx.Response:
    async with slots:
        return await client.get(f"/v1/generations/{gen_id}")


async def _wait_all(
    client: httpx.AsyncClient, gen_ids: list[str], slots: asyncio.Semaphore
) -> list[dict[str, Any]]:
    pending = set(gen_ids)
    finished: dict[str, dict[str, Any]] = {}
    while pending:
        await asyncio.sleep(0.5)
        # All at once (`slots` bounds what is in flight): one by one, a round over 1,000
        # generations took seconds and stretched "batch took" far past the last token.
        asked = list(pending)
        answers = await asyncio.gather(*(_get(client, gen_id, slots) for gen_id in asked))
        for gen_id, answer in zip(asked, answers, strict=True):
            status = answer.json()
            if status["status"] in ("completed", "failed", "cancelled", "expired"):
                finished[gen_id] = status
                pending.discard(gen_id)
    return [finished[gen_id] for gen_id in gen_ids]


async def measure(
    concurrency: int, tokens: int, max_jobs: int | None, workers: int = 1, provider: str = "demo"
) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory() as workdir,
        _fake_upstream(provider) as upstream_env,
    ):
        redis = RedisServer(Path(workdir), appendonly=False)
        redis.start()
        extra = {"TOKENRELAY_DEMO_TOKENS_PER_S": str(TOKENS_PER_S), **upstream_env}
        if max_jobs is not None:
            extra["TOKENRELAY_WORKER_MAX_JOBS"] = str(max_jobs)
        env = stack_env(redis.url, **extra)
        pool, api = [WorkerProcess(env) for _ in range(workers)], ApiProcess(env)
        try:
            for worker in pool:
                worker.wait_ready(60)
            api.wait_ready(60)
            limits = httpx.Limits(max_connections=CLIENT_CONNECTIONS)
            slots = asyncio.Semaphore(CLIENT_CONNECTIONS)
            client = httpx.AsyncClient(base_url=api.base_url, timeout=60, limits=limits)
            async with client:
                cpu_before = sum(_cpu_s(worker.process.pid) for worker in pool)
                began = time.perf_counter()
                gen_ids = await asyncio.gather(
                    *(_create(client, provider, tokens, n, slots) for n in range(concurrency))
                )
                statuses = await _wait_all(client, list(gen_ids), slots)
                elapsed = time.perf_counter() - began
                cpu = sum(_cpu_s(worker.process.pid) for worker in pool) - cpu_before
        finally:
            api.stop()
            for worker in pool:
                worker.stop()
            redis.stop()
    completed = [s for s in statuses if s["status"] == "completed"]
    waits = [s["started_at"] - s["created_at"] for s in completed]
    streams = [s["finished_at"] - s["started_at"] for s in completed]
    published = sum(len(s["content"].split()) for s in completed)
    return {
        "concurrency": concurrency,
        "completed": len(completed),
        "wait_p50_ms": statistics.median(waits) * 1000,
        "wait_p99_ms": _percentile(waits, 0.99) * 1000,
        "wait_max_ms": max(waits) * 1000,
        "stream_p50_s": statistics.median(streams),
        "stream_p99_s": _percentile(streams, 0.99),
        "cpu_us_per_token": cpu / max(published, 1) * 1e6,
        "elapsed_s": elapsed,
        "ideal_s": tokens / TOKENS_PER_S,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--concurrency", type=int, action="append")
    parser.add_argument("--tokens", type=int)
    parser.add_argument("--max-jobs", type=int, help="TOKENRELAY_WORKER_MAX_JOBS (default: ours)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--provider", choices=("demo", *_MODELS), default="demo")
    args = parser.parse_args()
    levels = args.concurrency or ([50] if args.quick else [300, 1000])
    tokens = args.tokens or (50 if args.quick else 150)
    print(
        "| concurrent | completed | queue wait p50 / p99 / max (ms) | stream time p50 / p99 (s) "
        "| worker CPU per token (µs) | batch took (s) | ideal (s) |"
    )
    print("|---|---|---|---|---|---|---|")
    for level in levels:
        r = asyncio.run(measure(level, tokens, args.max_jobs, args.workers, args.provider))
        print(
            f"| {r['concurrency']} | {r['completed']} "
            f"| {r['wait_p50_ms']:.0f} / {r['wait_p99_ms']:.0f} / {r['wait_max_ms']:.0f} "
            f"| {r['stream_p50_s']:.1f} / {r['stream_p99_s']:.1f} "
            f"| {r['cpu_us_per_token']:.1f} | {r['elapsed_s']:.1f} | {r['ideal_s']:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
