"""A stack wired to the fake upstreams: real worker and API processes, real Redis,
the real `openai` and `anthropic` SDKs talking HTTP to tests/support's fakes.

Retries back off for milliseconds and the time limits are a few seconds, so
fault tests stay fast; the stack has a queue of its own, so the session's demo
stack never takes its jobs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.support.fake_anthropic import fake_anthropic
from tests.support.fake_openai import fake_openai
from tests.support.fake_upstream import FakeUpstream
from tests.support.processes import stack_env
from tests.support.stack import Stack, running_stack

OPENAI_TEST_KEY = "sk-test-openai-0123456789abcdef"
ANTHROPIC_TEST_KEY = "sk-ant-test-0123456789abcdef"
ATTEMPTS = 3
IDLE_TIMEOUT_S = 3.0
FIRST_TOKEN_TIMEOUT_S = 5.0
RETRY_AFTER_MAX_S = 5.0


class Fakes:
    def __init__(self, openai: FakeUpstream, anthropic: FakeUpstream) -> None:
        self.openai = openai
        self.anthropic = anthropic

    def for_model(self, model: str) -> FakeUpstream:
        return self.openai if model.startswith("openai/") else self.anthropic


@pytest.fixture(scope="session")
def fakes() -> Iterator[Fakes]:
    openai, anthropic = fake_openai().start(), fake_anthropic().start()
    try:
        yield Fakes(openai, anthropic)
    finally:
        openai.stop()
        anthropic.stop()


@pytest.fixture(scope="session")
def provider_stack(redis_url: str, fakes: Fakes) -> Iterator[Stack]:
    env = stack_env(
        redis_url,
        TOKENRELAY_QUEUE_NAME="tokenrelay:queue:providers-tests",
        OPENAI_BASE_URL=f"{fakes.openai.base_url}/v1",
        OPENAI_API_KEY=OPENAI_TEST_KEY,
        ANTHROPIC_BASE_URL=fakes.anthropic.base_url,
        ANTHROPIC_API_KEY=ANTHROPIC_TEST_KEY,
        TOKENRELAY_PROVIDER_ATTEMPTS=str(ATTEMPTS),
        TOKENRELAY_RETRY_BACKOFF_BASE_S="0.01",
        TOKENRELAY_RETRY_BACKOFF_CAP_S="0.05",
        TOKENRELAY_RETRY_AFTER_MAX_S=str(RETRY_AFTER_MAX_S),
        TOKENRELAY_FIRST_TOKEN_TIMEOUT_S=str(FIRST_TOKEN_TIMEOUT_S),
        TOKENRELAY_IDLE_TIMEOUT_S=str(IDLE_TIMEOUT_S),
        TOKENRELAY_TOTAL_TIMEOUT_S="120",
    )
    with running_stack(redis_url, env) as running:
        yield running
    for process in (running.api, running.worker):
        log = process.log()
        assert OPENAI_TEST_KEY not in log and ANTHROPIC_TEST_KEY not in log, "key in a log"


@pytest.fixture()
async def relay(provider_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=provider_stack.base_url, timeout=60) as http:
        yield http
