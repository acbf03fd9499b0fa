"""Provider stream events read as plain JSON (services/providers/openai.py, anthropic.py).

Compatible servers send odd shapes: null or missing fields, tool calls without an
index or a function. Each is read as what it means; an event that is not a JSON
object is a malformed stream (a provider error), never a crash of the worker.
"""

from __future__ import annotations

import pytest

from services.errors import ProviderError
from services.events import ToolCallFragment
from services.providers.anthropic import _StreamState
from services.providers.base import TextChunk, ToolCallChunk
from services.providers.openai import _deltas, _dicts


def test_missing_null_and_malformed_lists_hold_nothing() -> None:
    assert _dicts(None) == []
    assert _dicts("choices") == []
    assert _dicts([{"index": 0}, None, 3, "x"]) == [{"index": 0}]


def test_a_delta_gives_its_text_then_its_tool_call_fragments() -> None:
    delta = {
        "content": "Hi",
        "tool_calls": [
            {"index": 1, "id": "call_1", "function": {"name": "get", "arguments": '{"a"'}},
            {"function": None},  # no index: its position; no function: an empty fragment
        ],
    }
    assert _deltas(delta) == [
        TextChunk("Hi"),
        ToolCallChunk(ToolCallFragment(index=1, id="call_1", name="get", arguments='{"a"')),
        ToolCallChunk(ToolCallFragment(index=1, id=None, name=None, arguments="")),
    ]


def test_empty_null_and_non_text_content_is_no_text() -> None:
    for content in ("", None, 7, ["a"]):
        assert _deltas({"content": content, "tool_calls": None}) == []


def test_anthropic_events_with_odd_shapes() -> None:
    state = _StreamState()
    assert state.chunks({"type": "message_start", "message": None}) == []
    assert state.chunks({"type": "content_block_delta", "delta": None}) == []
    assert state.chunks({"type": "content_block_delta", "delta": {"type": "text_delta"}}) == []
    tool = {"type": "tool_use", "id": "toolu_1", "name": "get", "input": {}}
    assert state.chunks({"type": "content_block_start", "index": 1, "content_block": tool}) == [
        ToolCallChunk(ToolCallFragment(index=0, id="toolu_1", name="get", arguments=""))
    ]
    # A tool block without an index is no tool block (nothing to attach its input to).
    assert state.chunks({"type": "content_block_start", "content_block": tool}) == []
    assert state.chunks({"type": "content_block_stop", "index": 1}) == [
        ToolCallChunk(ToolCallFragment(index=0, arguments="{}"))
    ]
    usage = {"output_tokens": 7, "input_tokens": None}
    assert state.chunks({"type": "message_delta", "delta": None, "usage": usage}) == []
    assert state.stop_reason is None and state.output_tokens == 7
    assert state.chunks({"type": "message_delta", "delta": {"stop_reason": "end_turn"}}) == []
    assert state.stop_reason == "end_turn"


def test_an_anthropic_event_that_is_not_an_object_is_a_malformed_stream() -> None:
    with pytest.raises(ProviderError) as raised:
        _StreamState().chunks(["message_start"])
    assert raised.value.retryable
