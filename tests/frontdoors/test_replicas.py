"""A door stream cut by a replica's shutdown says so, and resumes on another replica."""

from __future__ import annotations

import asyncio
import signal

import anthropic
import openai
import pytest

from services.providers.demo import story_tokens
from tests.frontdoors.viewers import anthropic_view, message_text, openai_view
from tests.support.processes import ApiProcess
from tests.support.stack import Stack


async def test_openai_stream_cut_by_shutdown_resumes_elsewhere(
    stack: Stack, openai_client: openai.AsyncOpenAI
) -> None:
    prompt, tokens = "outlive the replica", 600
    replica = ApiProcess(stack.env).wait_ready()
    try:
        async with openai.AsyncOpenAI(
            base_url=f"{replica.base_url}/v1", api_key="unused", max_retries=0
        ) as doomed:
            stream = await doomed.chat.completions.create(
                model="demo/story",
                messages=[{"role": "user", "content": prompt}],
                max_tokens=tokens,
                stream=True,
            )
            received = ""
            with pytest.raises(openai.APIError) as cut:
                async for chunk in stream:
                    received += chunk.choices[0].delta.content or ""
                    if received and replica.process.poll() is None:
                        replica.signal(signal.SIGTERM)
    finally:
        await asyncio.to_thread(replica.stop)

    body = cut.value.body
    assert isinstance(body, dict) and body["type"] == "unavailable"
    rest = await openai_view(openai_client, body["generation_id"], body["last_event_id"])
    assert received + (rest.choices[0].message.content or "") == "".join(
        story_tokens(prompt, tokens)
    )


async def test_anthropic_stream_cut_by_shutdown_resumes_elsewhere(
    stack: Stack, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    prompt, tokens = "outlive the replica too", 600
    replica = ApiProcess(stack.env).wait_ready()
    try:
        async with anthropic.AsyncAnthropic(
            base_url=replica.base_url, api_key="unused", max_retries=0
        ) as doomed:
            received = ""
            with pytest.raises(anthropic.APIStatusError) as cut:
                async with doomed.messages.stream(
                    model="demo/story",
                    max_tokens=tokens,
                    messages=[{"role": "user", "content": prompt}],
                ) as stream:
                    async for text in stream.text_stream:
                        received += text
                        if replica.process.poll() is None:
                            replica.signal(signal.SIGTERM)
    finally:
        await asyncio.to_thread(replica.stop)

    body = cut.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    error = body["error"]
    rest = await anthropic_view(anthropic_client, error["generation_id"], error["last_event_id"])
    assert received + message_text(rest) == "".join(story_tokens(prompt, tokens))


async def test_waiting_non_streaming_request_is_told_the_replica_shuts_down(stack: Stack) -> None:
    prompt, tokens = "outlive the replica, no stream", 2000
    replica = ApiProcess(stack.env).wait_ready()
    try:
        async with openai.AsyncOpenAI(
            base_url=f"{replica.base_url}/v1", api_key="unused", max_retries=0
        ) as doomed:
            waiting = asyncio.create_task(
                doomed.chat.completions.create(
                    model="demo/story",
                    messages=[{"role": "user", "content": prompt}],
                    max_tokens=tokens,
                )
            )
            await asyncio.sleep(1.0)  # the request is in, waiting for the generation
            assert not waiting.done()
            replica.signal(signal.SIGTERM)
            with pytest.raises(openai.APIStatusError) as refused:
                await waiting
    finally:
        await asyncio.to_thread(replica.stop)

    assert refused.value.status_code == 503
    assert "shutting down" in refused.value.message
    assert refused.value.response.headers["x-generation-id"].startswith("gen_")
