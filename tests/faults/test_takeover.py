"""A worker dies mid-stream: another one takes over, or the generation fails `worker_lost`."""

from __future__ import annotations

import asyncio

import httpx

from tests.faults.support import (
    Processes,
    create,
    expected_story,
    runner_of,
    status,
    watch,
)
from tests.support.polling import wait_for
from tests.support.sse import assemble_text


async def test_sigkill_mid_stream_is_taken_over_with_reset_and_exact_text(
    procs: Processes,
) -> None:
    workers, api = procs.ready(workers=2)

    gen_id = await create(api.base_url, max_tokens=120)
    early = asyncio.create_task(watch(api.base_url, gen_id))
    await wait_for(lambda: _has_content(api.base_url, gen_id), what="output of the first attempt")
    victim = runner_of(gen_id, workers)
    victim.kill()
    survivor = next(w for w in workers if w is not victim)

    first = await early
    late = await watch(api.base_url, gen_id)  # joins after the fact: a full replay

    expected = expected_story(120)
    for viewing in (first, late):
        assert viewing.kinds.count("reset") == 1
        assert [k for k in viewing.kinds if k in ("done", "error", "cancelled")] == ["done"]
        assert viewing.kinds[-1] == "done"
        starts = [e.json()["attempt"] for e in viewing.events if e.event == "start"]
        assert starts == [1, 2]
        assert viewing.events[viewing.kinds.index("reset")].json()["attempt"] == 2
        assert assemble_text(viewing.events) == expected
    assert [e.id for e in first.events] == [e.id for e in late.events]
    final = await status(api.base_url, gen_id)
    assert final["status"] == "completed"
    assert final["content"] == expected
    assert final["attempt"] == 2
    assert "takeover 1 queued" in survivor.log()


async def test_exhausted_takeovers_end_with_worker_lost(procs: Processes) -> None:
    procs.env["TOKENRELAY_MAX_TAKEOVERS"] = "0"
    doomed = procs.worker()
    api = procs.api()
    doomed.wait_ready()
    api.wait_ready()
    gen_id = await create(api.base_url, max_tokens=400)
    await wait_for(lambda: _has_content(api.base_url, gen_id), what="first output")
    doomed.kill()
    reaper = procs.worker()  # a fresh worker finds the orphan through the running index
    reaper.wait_ready()

    viewing = await watch(api.base_url, gen_id)

    assert viewing.kinds[-1] == "error"
    assert viewing.events[-1].json() == {
        "type": "worker_lost",
        "message": "the worker running this generation was lost too many times",
        "retryable": True,
    }
    assert viewing.kinds.count("error") == 1
    final = await status(api.base_url, gen_id)
    assert final["status"] == "failed"
    assert final["error"]["type"] == "worker_lost"
    assert final["content"] == assemble_text(viewing.events)
    assert expected_story(400).startswith(final["content"])


async def test_cancel_of_a_generation_whose_worker_died_ends_cancelled(procs: Processes) -> None:
    doomed = procs.worker()
    api = procs.api()
    doomed.wait_ready()
    api.wait_ready()
    gen_id = await create(api.base_url, max_tokens=400)
    await wait_for(lambda: _has_content(api.base_url, gen_id), what="first output")
    doomed.kill()
    async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as client:
        answer = await client.post(f"/v1/generations/{gen_id}/cancel")
    assert answer.status_code == 202
    procs.worker().wait_ready()

    viewing = await watch(api.base_url, gen_id)

    assert viewing.kinds[-1] == "cancelled"
    assert "reset" not in viewing.kinds  # no new attempt was started for a cancelled one
    final = await status(api.base_url, gen_id)
    assert final["status"] == "cancelled"
    assert final["attempt"] == 1
    assert final["content"] == assemble_text(viewing.events)


async def _has_content(base_url: str, gen_id: str) -> bool:
    return bool((await status(base_url, gen_id))["content"])


async def test_worker_stopped_mid_stream_hands_its_generation_over(procs: Processes) -> None:
    """SIGTERM past the drain time: the job is cancelled, its lease handed back at once."""
    workers, api = procs.ready(workers=2)
    gen_id = await create(api.base_url, max_tokens=200)
    viewer = asyncio.create_task(watch(api.base_url, gen_id))
    await wait_for(lambda: _has_content(api.base_url, gen_id), what="first output")
    leaving = runner_of(gen_id, workers)
    assert await asyncio.to_thread(leaving.stop) == 0

    viewing = await viewer
    assert viewing.kinds.count("reset") == 1
    assert viewing.kinds[-1] == "done"
    assert assemble_text(viewing.events) == expected_story(200)
    final = await status(api.base_url, gen_id)
    assert (final["status"], final["content"], final["attempt"]) == (
        "completed",
        expected_story(200),
        2,
    )
