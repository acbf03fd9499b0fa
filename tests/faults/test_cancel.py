"""Cancel reaches the worker from any API replica; a cancelled queued generation never starts."""

from __future__ import annotations

import asyncio

import httpx

from tests.faults.support import Processes, create, expected_story, status, watch
from tests.support.polling import wait_for
from tests.support.sse import assemble_text


async def test_cancel_through_api_2_ends_the_stream_watched_through_api_1(
    procs: Processes,
) -> None:
    worker = procs.worker()
    api_1, api_2 = procs.api(), procs.api()
    worker.wait_ready()
    api_1.wait_ready()
    api_2.wait_ready()
    gen_id = await create(api_1.base_url, max_tokens=400)
    on_1 = asyncio.create_task(watch(api_1.base_url, gen_id))
    on_2 = asyncio.create_task(watch(api_2.base_url, gen_id))
    await wait_for(lambda: _content(api_1.base_url, gen_id), what="first output")

    async with httpx.AsyncClient(base_url=api_2.base_url, timeout=30) as client:
        answer = await client.post(f"/v1/generations/{gen_id}/cancel")
    assert answer.status_code == 202, answer.text

    viewings = [await on_1, await on_2, await watch(api_1.base_url, gen_id)]
    final = await status(api_2.base_url, gen_id)
    assert final["status"] == "cancelled"
    assert final["content"]
    assert expected_story(400).startswith(final["content"])
    assert final["content"] != expected_story(400)
    for viewing in viewings:
        assert viewing.kinds[-1] == "cancelled"
        assert [k for k in viewing.kinds if k in ("done", "error", "cancelled")] == ["cancelled"]
        assert assemble_text(viewing.events) == final["content"]
    await wait_for(lambda: "'cancelled'" in worker.log(), what="the worker's job to end")
    async with httpx.AsyncClient(base_url=api_1.base_url, timeout=30) as client:
        again = await client.post(f"/v1/generations/{gen_id}/cancel")
    assert again.status_code == 409


async def test_cancelled_queued_generation_never_starts(procs: Processes) -> None:
    api = procs.api()
    api.wait_ready()
    gen_id = await create(api.base_url, max_tokens=40)  # no worker yet: it stays queued
    async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as client:
        answer = await client.post(f"/v1/generations/{gen_id}/cancel")
    assert answer.status_code == 202
    assert answer.json()["status"] == "cancelled"

    worker = procs.worker()  # now the job is delivered
    worker.wait_ready()
    await wait_for(lambda: "'finished'" in worker.log(), what="the worker to skip the job")

    viewing = await watch(api.base_url, gen_id)
    assert viewing.kinds == ["cancelled"]
    final = await status(api.base_url, gen_id)
    assert (final["status"], final["attempt"], final["started_at"], final["content"]) == (
        "cancelled",
        0,
        None,
        "",
    )


async def _content(base_url: str, gen_id: str) -> bool:
    return bool((await status(base_url, gen_id))["content"])
