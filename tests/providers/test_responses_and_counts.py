"""The Responses door and `count_tokens` against the fake upstreams, with the real SDKs.

An `anthropic/...` model answers through `POST /v1/responses` (the request crosses
the Responses and Messages translations), including a function-call round trip;
`POST /v1/messages/count_tokens` is forwarded to the fake Anthropic upstream.
"""

from __future__ import annotations

import json

import anthropic
import openai
import pytest
from openai.types.responses import FunctionToolParam

from tests.providers.conftest import Fakes
from tests.providers.flows import new_script_id
from tests.support.fake_upstream import script_prompt
from tests.support.stack import Stack

ANSWER = "A response from a model of another provider."
LOOKUP: FunctionToolParam = {
    "type": "function",
    "name": "lookup",
    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    "strict": False,
}


async def test_an_anthropic_model_through_the_responses_door(
    provider_stack: Stack, fakes: Fakes
) -> None:
    script = new_script_id("responses-anthropic")
    async with (
        openai.AsyncOpenAI(
            base_url=f"{provider_stack.base_url}/v1", api_key="unused", max_retries=0
        ) as client,
        client.responses.stream(
            model="anthropic/claude-resp",
            instructions="Be brief.",
            input=script_prompt(script, {"text": ANSWER}),
            max_output_tokens=64,
        ) as stream,
    ):
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()

    assert "".join(deltas) == final.output_text == ANSWER
    assert final.usage is not None and final.usage.input_tokens > 0
    (upstream,) = fakes.anthropic.requests_for(script)
    assert upstream.body["model"] == "claude-resp"
    assert upstream.body["system"] == "Be brief."
    assert upstream.body["max_tokens"] == 64


async def test_function_call_round_trip_with_an_anthropic_model(
    provider_stack: Stack, fakes: Fakes
) -> None:
    script = new_script_id("responses-anthropic-tool")
    call = {"id": "toolu_rt", "name": "lookup", "arguments": ['{"q": ', '"redis"}']}
    prompt = script_prompt(script, {"tool_calls": [call]}, {"text": "Found it."})
    async with openai.AsyncOpenAI(
        base_url=f"{provider_stack.base_url}/v1", api_key="unused", max_retries=0
    ) as client:
        first = await client.responses.create(
            model="anthropic/claude-resp", input=prompt, tools=[LOOKUP]
        )
        (item,) = first.output
        assert item.type == "function_call"
        assert (item.call_id, item.name, json.loads(item.arguments)) == (
            "toolu_rt",
            "lookup",
            {"q": "redis"},
        )
        second = await client.responses.create(
            model="anthropic/claude-resp",
            previous_response_id=first.id,
            input=[{"type": "function_call_output", "call_id": item.call_id, "output": "r-1"}],
            tools=[LOOKUP],
        )
    assert second.output_text == "Found it."
    upstream = fakes.anthropic.requests_for(script)[1].body
    assert upstream["messages"][1]["content"][0]["type"] == "tool_use"
    assert upstream["messages"][2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": "toolu_rt",
        "content": "r-1",
    }


async def test_count_tokens_is_forwarded_for_anthropic_models(
    provider_stack: Stack, fakes: Fakes
) -> None:
    async with anthropic.AsyncAnthropic(
        base_url=provider_stack.base_url, api_key="unused", max_retries=0
    ) as client:
        counted = await client.messages.count_tokens(
            model="anthropic/claude-count",
            system="one two",
            messages=[{"role": "user", "content": "three four five"}],
        )
        assert counted.input_tokens == 5
        forwarded = [r for r in fakes.anthropic.requests if r.path.endswith("/count_tokens")]
        assert forwarded[-1].body["model"] == "claude-count"

        with pytest.raises(anthropic.BadRequestError, match="count_tokens"):
            await client.messages.count_tokens(
                model="openai/gpt-count", messages=[{"role": "user", "content": "hi"}]
            )
