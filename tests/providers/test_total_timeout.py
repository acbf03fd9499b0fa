"""The total time limit, on a stack of its own whose limit is two seconds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.providers.conftest import Fakes
from tests.providers.flows import assert_consistent, new_script_id, run
from tests.support.processes import stack_env
from tests.support.stack import Stack, running_stack


@pytest.fixture(scope="module")
def short_stack(redis_url: str, fakes: Fakes) -> Iterator[Stack]:
    env = stack_env(
        redis_url,
        TOKENRELAY_QUEUE_NAME="tokenrelay:queue:providers-total-timeout",
        OPENAI_BASE_URL=f"{fakes.openai.base_url}/v1",
        OPENAI_API_KEY="sk-test-total",
        ANTHROPIC_BASE_URL=fakes.anthropic.base_url,
        ANTHROPIC_API_KEY="sk-ant-test-total",
        TOKENRELAY_RETRY_BACKOFF_BASE_S="0.01",
        TOKENRELAY_RETRY_BACKOFF_CAP_S="0.05",
        TOKENRELAY_TOTAL_TIMEOUT_S="2",
    )
    with running_stack(redis_url, env) as running:
        yield running


@pytest.fixture()
async def short_relay(short_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=short_stack.base_url, timeout=60) as http:
        yield http


@pytest.mark.parametrize("model", ["openai/gpt-test", "anthropic/claude-test"])
async def test_a_generation_longer_than_the_total_limit_fails_with_total_timeout(
    short_relay: httpx.AsyncClient, fakes: Fakes, model: str
) -> None:
    script = new_script_id("total")
    # Tokens keep coming (so neither first-token nor idle limit fires) for 60 s.
    slow = {"text": ["tick "] * 300, "delay_s": 0.2}

    outcome = await run(short_relay, model, script, slow)

    assert_consistent(outcome, slow)
    assert outcome.terminal.event == "error"
    error = outcome.terminal.json()
    assert error["type"] == "timeout"
    assert "total" in error["message"]
    assert outcome.status["status"] == "failed"
    assert outcome.text  # what streamed before the limit stays readable
    (request,) = fakes.for_model(model).requests_for(script)  # no retry past the limit
    fakes.for_model(model).wait_until(lambda: request.closed_at is not None, what="close")
    assert request.closed_by == "client"
