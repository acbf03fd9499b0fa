"""SDK clients pointed at the session's real API process, as an app would configure them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic
import openai
import pytest

from tests.support.stack import Stack


@pytest.fixture()
async def openai_client(stack: Stack) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=f"{stack.base_url}/v1", api_key="unused", max_retries=0, timeout=30
    ) as client:
        yield client


@pytest.fixture()
async def anthropic_client(stack: Stack) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=stack.base_url, api_key="unused", max_retries=0, timeout=30
    ) as client:
        yield client
