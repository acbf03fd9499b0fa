"""How fast faults are handled: cancel across replicas, and takeover after a SIGKILL.

Starts its own redis-server, two API replicas and two workers on 127.0.0.1, then
measures, as a viewer on API 1 sees it:

- cancel: from sending `POST /cancel` to API 2 until the `cancelled` event arrives;
- takeover: from SIGKILL of the worker running a generation until `reset` arrives
  (the lease has to run out first, then a reaper's round, then a worker picks the
  takeover job up), with the lease and reap interval given (defaults: the product's).

    python -m bench.faults_timing            # product defaults: 10 s lease, 2 s reaps
    python -m bench.faults_timing --quick    # 1.5 s lease, 0.5 s reaps, fewer rounds
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from tests.faults.support import (
    Processes,
    RedisServer,
    create,
    fault_env,
    runner_of,
    status,
    wait_for,
    watch,
)
from tests.support.sse import SseEvent


async def time_cancel(procs: Processes, api_1: str, api_2: str) -> float:
    gen_id = await create(api_1, max_tokens=2000)
    arrived: dict[str, float] = {}

    def note(event: SseEvent) -> None:
        arrived.setdefault(event.event, time.perf_counter())

    viewer = asyncio.create_task(watch(api_1, gen_id, on_event=note))
    await wait_for(lambda: "delta" in arrived, what="first delta")
    async with httpx.AsyncClient(base_url=api_2, timeout=30) as client:
        sent = time.perf_counter()
        answer = await client.post(f"/v1/generations/{gen_id}/cancel")
    assert answer.status_code == 202, answer.text
    await viewer
    return arrived["cancelled"] - sent


async def time_takeover(procs: Processes, api: str) -> float:
    workers = [procs.worker(), procs.worker()]
    for worker in workers:
        worker.wait_ready()
    gen_id = await create(api, max_tokens=2000)
    arrived: dict[str, float] = {}

    def note(event: SseEvent) -> None:
        arrived.setdefault(event.event, time.perf_counter())

    viewer = asyncio.create_task(watch(api, gen_id, on_event=note, timeout_s=120))
    await wait_for(lambda: "delta" in arrived, what="first delta")
    victim = runner_of(gen_id, workers)
    killed = time.perf_counter()
    victim.kill()
    await wait_for(lambda: "reset" in arrived, timeout_s=120, what="reset")
    taken_over = arrived["reset"] - killed
    async with httpx.AsyncClient(base_url=api, timeout=30) as client:
        await client.post(f"/v1/generations/{gen_id}/cancel")
    await viewer
    assert (await status(api, gen_id))["attempt"] == 2
    for worker in workers:
        if worker is not victim:
            worker.stop()
    return taken_over


async def main(quick: bool) -> None:
    overrides = (
        {"TOKENRELAY_LEASE_S": "1.5", "TOKENRELAY_REAP_INTERVAL_S": "0.5"}
        if quick
        else {"TOKENRELAY_LEASE_S": "10", "TOKENRELAY_REAP_INTERVAL_S": "2"}
    )
    cancels, takeovers = (5, 1) if quick else (20, 3)
    with tempfile.TemporaryDirectory() as workdir:
        redis = RedisServer(Path(workdir), appendonly=False)
        redis.start()
        procs = Processes(fault_env(redis.url, **overrides))
        try:
            worker = procs.worker()
            api_1, api_2 = procs.api(), procs.api()
            worker.wait_ready()
            api_1.wait_ready()
            api_2.wait_ready()
            cancel_s = [
                await time_cancel(procs, api_1.base_url, api_2.base_url) for _ in range(cancels)
            ]
            worker.stop()
            takeover_s = [await time_takeover(procs, api_1.base_url) for _ in range(takeovers)]
        finally:
            procs.stop_all()
            redis.stop()
    lease, reap = overrides["TOKENRELAY_LEASE_S"], overrides["TOKENRELAY_REAP_INTERVAL_S"]
    print(
        f"cancel via API 2 -> 'cancelled' on API 1: n={len(cancel_s)} "
        f"median={statistics.median(cancel_s) * 1000:.0f} ms max={max(cancel_s) * 1000:.0f} ms"
    )
    print(
        f"SIGKILL -> 'reset' (lease {lease} s, reap interval {reap} s): n={len(takeover_s)} "
        f"median={statistics.median(takeover_s):.1f} s max={max(takeover_s):.1f} s"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short lease, few rounds (CI)")
    asyncio.run(main(parser.parse_args().quick))
