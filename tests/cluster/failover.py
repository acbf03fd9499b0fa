"""The shared scenario of the failover tests: a Redis dies while generations stream.

Two workers and two API replicas; stories watched on both replicas; once the first
has output, `kill` runs (it gets the generation ids, to pick its victim). Every
viewer must end with `done` and the exact text, and every generation completed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.faults.support import Processes, create, expected_story, status, watch
from tests.support.polling import wait_for
from tests.support.sse import assemble_text

TOKENS = 200


async def kill_mid_stream(
    procs: Processes,
    kill: Callable[[list[str]], None],
    *,
    generations: int,
    env: dict[str, str] | None = None,
    ready_timeout_s: float = 20,
    watch_timeout_s: float = 120,
) -> None:
    workers = [procs.worker(**(env or {})) for _ in range(2)]
    apis = [procs.api(**(env or {})) for _ in range(2)]
    for worker in workers:
        worker.wait_ready(timeout_s=ready_timeout_s)
    for api in apis:
        api.wait_ready(timeout_s=ready_timeout_s)

    gen_ids = [await create(apis[0].base_url, max_tokens=TOKENS) for _ in range(generations)]
    watching = [
        asyncio.create_task(watch(api.base_url, gen_id, timeout_s=watch_timeout_s))
        for gen_id in gen_ids
        for api in apis
    ]

    async def has_output() -> bool:
        return bool((await status(apis[0].base_url, gen_ids[0]))["content"])

    await wait_for(has_output, what="output before the kill")
    kill(gen_ids)

    try:
        viewings = await asyncio.gather(*watching)
        expected = expected_story(TOKENS)
        for viewing in viewings:
            assert viewing.kinds[-1] == "done", (viewing.kinds[-3:], viewing.events[-1].data)
            text = assemble_text(viewing.events)
            assert text == expected, _first_difference(text, expected, viewing.kinds)
        for gen_id in gen_ids:
            final = await status(apis[1].base_url, gen_id)
            assert (final["status"], final["content"]) == ("completed", expected)
        for api in apis:  # the hub's safety net must not have been needed
            for sign in ("had no running subscription", "failed unexpectedly"):
                assert sign not in api.log(), f"{api.name} logged {sign!r}"
    except (AssertionError, TimeoutError):  # what no viewer should get: show the logs
        for process in [*apis, *workers]:
            print(f"--- {process.name}\n{_unusual(process.log())[-20000:]}")
        raise


def _unusual(log: str) -> str:
    """A log without the lines every failover writes by the hundred (503s and their cause)."""
    usual = ("uvicorn.access", "Redis unavailable: ")
    return "\n".join(line for line in log.splitlines() if not any(u in line for u in usual))


def _first_difference(text: str, expected: str, kinds: list[str]) -> str:
    """Where a viewer's text leaves the expected one, and what it saw: enough to tell a
    gap from a duplicate from a foreign write without rerunning a failover."""
    pairs = enumerate(zip(text, expected, strict=False))
    at = next((i for i, (a, b) in pairs if a != b), min(len(text), len(expected)))
    start, end = max(0, at - 40), at + 80
    return (
        f"{len(text)} chars vs {len(expected)}; first difference at {at}: "
        f"got {text[start:end]!r}, expected {expected[start:end]!r}; "
        f"event kinds other than token: {[k for k in kinds if k != 'token']}"
    )
