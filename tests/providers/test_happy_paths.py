"""Both real providers end to end: text, tool calls, usage present and absent,
and requests translated faithfully into each API's own format."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.providers.conftest import Fakes
from tests.providers.flows import assert_consistent, new_script_id, run, step_text

MODELS = ["openai/gpt-test", "anthropic/claude-test"]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.mark.parametrize("model", MODELS)
async def test_text_with_usage(relay: httpx.AsyncClient, fakes: Fakes, model: str) -> None:
    script = new_script_id("text")
    step = {"text": "The relay streams every token exactly once."}

    outcome = await run(relay, model, script, step)

    assert_consistent(outcome, step)
    assert outcome.kinds.count("start") == 1 and "reset" not in outcome.kinds
    assert outcome.text == step_text(step)
    done = outcome.terminal
    assert done.event == "done"
    assert done.json()["finish_reason"] == "stop"
    usage = done.json()["usage"]
    assert usage["output_tokens"] == 7 and usage["input_tokens"] > 0
    assert outcome.status["status"] == "completed"
    assert outcome.status["usage"] == usage
    assert outcome.status["attempt"] == 1
    (request,) = fakes.for_model(model).requests_for(script)
    assert request.body["model"] == model.split("/", 1)[1]
    assert request.body["stream"] is True


@pytest.mark.parametrize("model", MODELS)
async def test_stream_without_usage_completes_with_null_usage(
    relay: httpx.AsyncClient, model: str
) -> None:
    step = {"text": "No usage here.", "usage": False}

    outcome = await run(relay, model, new_script_id("nousage"), step)

    assert_consistent(outcome, step)
    assert outcome.terminal.event == "done"
    assert outcome.terminal.json() == {"finish_reason": "stop", "usage": None}
    assert outcome.status["status"] == "completed"
    assert outcome.status["usage"] is None
    assert outcome.text == "No usage here."


@pytest.mark.parametrize("model", MODELS)
async def test_tool_calls_stream_as_tool_call_deltas(relay: httpx.AsyncClient, model: str) -> None:
    step = {
        "text": "Let me check.",
        "tool_calls": [
            {"id": "call_1", "name": "get_weather", "arguments": ['{"ci', 'ty": "Pa', 'ris"}']},
            {"id": "call_2", "name": "get_weather", "arguments": ['{"city": "Oslo"}']},
        ],
    }

    outcome = await run(relay, model, new_script_id("tools"), step, tools=TOOLS)

    assert_consistent(outcome, step)
    assert outcome.text == "Let me check."
    calls = outcome.tool_calls()
    assert calls == [
        {"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"id": "call_2", "name": "get_weather", "arguments": '{"city": "Oslo"}'},
    ]
    assert all(json.loads(call["arguments"]) for call in calls)
    assert outcome.terminal.json()["finish_reason"] == "tool_calls"
    assert outcome.status["tool_calls"] == calls
    assert outcome.status["finish_reason"] == "tool_calls"


async def test_openai_request_translation(relay: httpx.AsyncClient, fakes: Fakes) -> None:
    script = new_script_id("oa-req")
    conversation: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "call_9", "name": "get_weather", "arguments": '{"city":"Paris"}'}
            ],
        },
        {"role": "tool", "tool_call_id": "call_9", "content": "sunny"},
    ]
    await run(
        relay,
        "openai/gpt-test",
        script,
        {"text": "Sunny."},
        messages=conversation,
        max_tokens=50,
        temperature=0.5,
        top_p=0.9,
        stop=["END"],
        tools=TOOLS,
        tool_choice="get_weather",
    )

    (request,) = fakes.openai.requests_for(script)
    body = request.body
    assert body["messages"][:4] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_9",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_9", "content": "sunny"},
    ]
    assert body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 50  # a custom base URL gets the widely supported field
    assert (body["temperature"], body["top_p"], body["stop"]) == (0.5, 0.9, ["END"])
    assert body["tools"] == TOOLS
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert request.headers["authorization"] == "Bearer sk-test-openai-0123456789abcdef"


async def test_anthropic_request_translation(relay: httpx.AsyncClient, fakes: Fakes) -> None:
    script = new_script_id("an-req")
    conversation: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {"id": "toolu_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
                {"id": "toolu_2", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "rain"},
    ]
    outcome = await run(
        relay,
        "anthropic/claude-test",
        script,
        {"text": "Sunny and rain."},
        messages=conversation,
        stop=["END"],
        tools=TOOLS,
        tool_choice="required",
    )

    assert outcome.status["status"] == "completed"
    (request,) = fakes.anthropic.requests_for(script)
    body = request.body
    assert body["system"] == "Be brief."
    assert body["max_tokens"] == 4096  # the documented default
    assert body["stop_sequences"] == ["END"]
    assert body["tool_choice"] == {"type": "any"}
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather of a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    messages = body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Oslo"}},
    ]
    # Both tool answers, and the next user turn, merge into one user message.
    assert messages[2]["content"][:2] == [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "rain"},
    ]
    assert messages[2]["content"][2]["type"] == "text"
    # This SDK version sends the key as a bearer token; older ones used x-api-key.
    sent = request.headers.get("x-api-key", "") + request.headers.get("authorization", "")
    assert "sk-ant-test-0123456789abcdef" in sent
