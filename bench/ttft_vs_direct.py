"""Time to first token added by the relay, side by side with the same SDK going direct.

One fake OpenAI upstream (tests/support/fake_openai.py) streams 50 tokens/s. The
official `openai` SDK asks it for the same answer two ways, alternately: directly
(`base_url` = the upstream), and through tokenrelay's Chat Completions door
(`base_url` = one API, `openai/` model, one worker whose provider is that upstream).
Each sample is the time from the call to the first content delta; the relay's
added cost is the difference of the medians. Everything runs on this machine, the
client on the same cores as the servers, as the issue's setting asks.

    python -m bench.ttft_vs_direct               # 60 pairs
    python -m bench.ttft_vs_direct --pairs 200   # a steadier median, for a before/after
    python -m bench.ttft_vs_direct --quick       # 15 pairs
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import tempfile
import time
from pathlib import Path

import openai

from tests.faults.support import RedisServer
from tests.support.fake_openai import fake_openai
from tests.support.fake_upstream import script_prompt
from tests.support.processes import ApiProcess, WorkerProcess, stack_env

WORDS = " ".join(f"word{i}" for i in range(20))
_ids = itertools.count()


async def first_token_s(client: openai.AsyncOpenAI, model: str) -> float:
    """Seconds from the call to the first chunk with content; reads the stream to its end."""
    prompt = script_prompt(f"ttft-{next(_ids)}", {"text": WORDS, "delay_s": 0.02})
    started = time.perf_counter()
    first = 0.0
    stream = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], stream=True
    )
    async for chunk in stream:
        if not first and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - started
    return first


def row(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[max(0, int(len(ordered) * 0.9) - 1)]
    return f"| {name} | {statistics.median(ordered) * 1000:.1f} | {p90 * 1000:.1f} |"


async def main(pairs: int) -> None:
    upstream = fake_openai().start()
    with tempfile.TemporaryDirectory() as workdir:
        redis = RedisServer(Path(workdir), appendonly=False)
        redis.start()
        env = stack_env(
            redis.url, OPENAI_BASE_URL=f"{upstream.base_url}/v1", OPENAI_API_KEY="sk-bench"
        )
        worker, api = WorkerProcess(env), ApiProcess(env)
        direct = openai.AsyncOpenAI(base_url=f"{upstream.base_url}/v1", api_key="sk-bench")
        relayed = openai.AsyncOpenAI(base_url=f"{api.base_url}/v1", api_key="unused")
        try:
            worker.wait_ready(60)
            api.wait_ready(60)
            for _ in range(3):  # warm-up: connections, caches, imports
                await first_token_s(direct, "gpt-4o-mini")
                await first_token_s(relayed, "openai/gpt-4o-mini")
            samples: dict[str, list[float]] = {"direct": [], "relayed": []}
            for _ in range(pairs):
                samples["direct"].append(await first_token_s(direct, "gpt-4o-mini"))
                await asyncio.sleep(0.2)
                samples["relayed"].append(await first_token_s(relayed, "openai/gpt-4o-mini"))
                await asyncio.sleep(0.2)  # the worker is idle again, as between users
        finally:
            await direct.close()
            await relayed.close()
            api.stop()
            worker.stop()
            redis.stop()
            upstream.stop()
    added = statistics.median(samples["relayed"]) - statistics.median(samples["direct"])
    print(f"{pairs} pairs, one stream at a time, 50 tokens/s upstream (first token after 20 ms)")
    print("| time to first token, ms | p50 | p90 |")
    print("|---|---|---|")
    print(row("`openai` SDK → upstream directly", samples["direct"]))
    print(row("`openai` SDK → tokenrelay `/v1/chat/completions`", samples["relayed"]))
    print(f"\nadded by the relay at p50: {added * 1000:.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="15 pairs")
    parser.add_argument("--pairs", type=int, default=60, help="pairs of requests (default 60)")
    args = parser.parse_args()
    asyncio.run(main(15 if args.quick else args.pairs))
