"""Chat Completions chunks read as plain JSON (services/providers/openai.py).

Compatible servers send odd shapes: null or missing fields, tool calls without an
index or a function. Each is read as what it means, never as an exception.
"""

from __future__ import annotations

from services.events import ToolCallFragment
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
