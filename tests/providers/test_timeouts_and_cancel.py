"""Stalls caught by the time limits, and a cancel that reaches the upstream socket."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.providers.conftest import ATTEMPTS, Fakes
from tests.providers.flows import assert_consistent, new_script_id, run, start, step_text
from tests.support.sse import SseEvent, iter_sse

MODELS = ["openai/gpt-test", "anthropic/claude-test"]
FINAL = {"text": "Answer after the stall."}


@pytest.mark.parametrize("model", MODELS)
async def test_stall_before_first_token_is_retried_invisibly(
    relay: httpx.AsyncClient, fakes: Fakes, model: str
) -> None:
    script = new_script_id("ttft")

    outcome = await run(relay, model, script, {"fault": "stall"}, FINAL)

    assert_consistent(outcome, FINAL)
    assert outcome.kinds.count("start") == 1 and "reset" not in outcome.kinds
    assert outcome.text == step_text(FINAL)
    stalled, served = fakes.for_model(model).requests_for(script)
    # The worker gave up on the stalled request and closed it itself.
    assert stalled.closed_by == "client"
    assert served.closed_by == "server"


async def test_stall_mid_stream_on_every_attempt_fails_with_idle_timeout(
    relay: httpx.AsyncClient, fakes: Fakes
) -> None:
    # One provider is enough here: the clock is the worker's, not the adapter's,
    # and test_faults retries a mid-stream stall through both adapters.
    model = "anthropic/claude-test"
    script = new_script_id("idle")
    step = {"text": "a stream that stops", "fault": "stall", "fault_after": 2}

    outcome = await run(relay, model, script, step)

    assert_consistent(outcome, step)
    assert outcome.terminal.event == "error"
    error = outcome.terminal.json()
    assert error["type"] == "timeout"
    assert "idle" in error["message"]
    assert error["retryable"] is True
    assert outcome.kinds.count("reset") == ATTEMPTS - 1
    assert outcome.status["status"] == "failed"
    assert outcome.status["error"]["type"] == "timeout"
    requests = fakes.for_model(model).requests_for(script)
    assert len(requests) == ATTEMPTS
    assert all(r.closed_by == "client" for r in requests)


@pytest.mark.parametrize("model", MODELS)
async def test_cancel_closes_the_upstream_connection(
    relay: httpx.AsyncClient, fakes: Fakes, model: str
) -> None:
    script = new_script_id("cancel")
    # 600 slow tokens: a minute of streaming unless the cancel cuts it short.
    slow = {"text": ["tok "] * 600, "delay_s": 0.1}
    gen = await start(relay, model, script, slow)
    fake = fakes.for_model(model)

    seen: list[str] = []
    cancel_sent_at = 0.0
    async with relay.stream("GET", gen["events_url"]) as response:
        async for item in iter_sse(response):
            if not isinstance(item, SseEvent):
                continue
            seen.append(item.event)
            if seen.count("delta") == 3 and not cancel_sent_at:
                cancel_sent_at = time.monotonic()
                answer = await relay.post(f"/v1/generations/{gen['id']}/cancel")
                assert answer.status_code == 202
    assert seen[-1] == "cancelled"

    fake.wait_until(
        lambda: fake.requests_for(script)[0].closed_at is not None, what="connection close"
    )
    (request,) = fake.requests_for(script)
    # Closed by the worker, long before the scripted minute of tokens ran out.
    assert request.closed_by == "client"
    assert request.closed_at is not None
    print(
        f"{model}: upstream saw the close {request.closed_at - cancel_sent_at:.3f} s after cancel"
    )
    status = (await relay.get(f"/v1/generations/{gen['id']}")).json()
    assert status["status"] == "cancelled"
