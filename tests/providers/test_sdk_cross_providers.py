"""Cross-provider pairs, end to end with real upstream formats on both sides.

The official `anthropic` SDK asks tokenrelay's Messages door for an `openai/...`
model served by the fake OpenAI upstream, and the official `openai` SDK asks the
Chat Completions door for an `anthropic/...` model served by the fake Anthropic
upstream: each request crosses both translations, and the text, the tool call
and the usage must arrive intact.
"""

from __future__ import annotations

import json

import anthropic
import openai
from openai.types.shared_params import FunctionDefinition

from tests.providers.conftest import Fakes
from tests.providers.flows import new_script_id
from tests.support.fake_upstream import script_prompt
from tests.support.stack import Stack

ANSWER = "Cross-provider answer, streamed exactly once."
WEATHER_TOOL: FunctionDefinition = {
    "name": "get_weather",
    "description": "Weather of a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


async def test_anthropic_sdk_streams_an_openai_model(provider_stack: Stack, fakes: Fakes) -> None:
    script = new_script_id("x-anthropic-sdk")
    client = anthropic.AsyncAnthropic(base_url=provider_stack.base_url, api_key="unused")
    async with client.messages.stream(
        model="openai/gpt-cross",
        max_tokens=64,
        system="Be brief.",
        messages=[{"role": "user", "content": script_prompt(script, {"text": ANSWER})}],
    ) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    await client.close()

    assert text == ANSWER
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0
    (upstream,) = fakes.openai.requests_for(script)
    assert upstream.body["model"] == "gpt-cross"
    assert upstream.body["messages"][0] == {"role": "system", "content": "Be brief."}


async def test_openai_sdk_streams_an_anthropic_model(provider_stack: Stack, fakes: Fakes) -> None:
    script = new_script_id("x-openai-sdk")
    client = openai.AsyncOpenAI(base_url=f"{provider_stack.base_url}/v1", api_key="unused")
    stream = await client.chat.completions.create(
        model="anthropic/claude-cross",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": script_prompt(script, {"text": ANSWER})},
        ],
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, finish, usage = [], None, None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    await client.close()

    assert "".join(pieces) == ANSWER
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens > 0
    (upstream,) = fakes.anthropic.requests_for(script)
    assert upstream.body["model"] == "claude-cross"
    assert upstream.body["system"] == "Be brief."


async def test_tool_call_crosses_from_anthropic_upstream_to_openai_sdk(
    provider_stack: Stack, fakes: Fakes
) -> None:
    script = new_script_id("x-tool")
    step = {
        "tool_calls": [
            {"id": "toolu_cross1", "name": "get_weather", "arguments": ['{"city": ', '"Oslo"}']}
        ]
    }
    client = openai.AsyncOpenAI(base_url=f"{provider_stack.base_url}/v1", api_key="unused")
    completion = await client.chat.completions.create(
        model="anthropic/claude-cross",
        messages=[{"role": "user", "content": script_prompt(script, step)}],
        tools=[{"type": "function", "function": WEATHER_TOOL}],
    )
    await client.close()

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.type == "function"
    assert call.id == "toolu_cross1"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Oslo"}
    (upstream,) = fakes.anthropic.requests_for(script)
    assert upstream.body["tools"][0]["name"] == "get_weather"
    assert upstream.body["tools"][0]["input_schema"] == WEATHER_TOOL["parameters"]
