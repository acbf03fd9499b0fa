"""Time to first token added by the relay, side by side with the same SDK going direct.

One fake OpenAI upstream (tests/support/fake_openai.py, in a process of its own)
streams 50 tokens/s. The official `openai` SDK asks it for the same answer two
ways, alternately: directly (`base_url` = the upstream), and through tokenrelay's
Chat Completions door (`base_url` = one API, `openai/` model, one worker whose
provider is that upstream).
Each sample is the time from the call to the first content delta; the relay's
added cost is the difference of the medians. Everything runs on this machine, the
client on the same cores as the servers, as the issue's setting asks.

    python -m bench.ttft_vs_direct               # 60 pairs
    python -m bench.ttft_vs_direct --pairs 200   # a steadier median, for a before/after
    python -m bench.ttft_vs_direct --quick       # 15 pairs
    python -m bench.ttft_vs_direct --upstream-in-process   # the setting of rounds one to six
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import openai

from bench.servers import fake_upstream_process
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


@contextlib.contextmanager
def upstream_url(in_process: bool) -> Iterator[str]:
    """The fake upstream's base URL: in a process of its own, as a real provider is, or
    (`in_process`, the setting of the rounds before the seventh) a thread of this
    client's process, where it waits for the client's GIL on the relayed path."""
    if not in_process:
        with fake_upstream_process("openai") as base_url:
            yield base_url
        return
    upstream = fake_openai().start()
    try:
        yield f"{upstream.base_url}/v1"
    finally:
        upstream.stop()


async def main(pairs: int, in_process: bool) -> None:
    with upstream_url(in_process) as base_url, tempfile.TemporaryDirectory() as workdir:
        redis = RedisServer(Path(workdir), appendonly=False)
        redis.start()
        env = stack_env(redis.url, OPENAI_BASE_URL=base_url, OPENAI_API_KEY="sk-bench")
        worker, api = WorkerProcess(env), ApiProcess(env)
        direct = openai.AsyncOpenAI(base_url=base_url, api_key="sk-bench")
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
    parser.add_argument(
        "--upstream-in-process",
        action="store_true",
        help="the fake upstream in a thread of the client's process (rounds one to six)",
    )
    args = parser.parse_args()
    asyncio.run(main(15 if args.quick else args.pairs, args.upstream_in_process))
