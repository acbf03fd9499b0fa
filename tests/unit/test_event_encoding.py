"""Text deltas take a shortcut through `encode_data`; it must give the general path's bytes."""

from __future__ import annotations

import json

import pytest

from services.events import DeltaEvent, ToolCallFragment, encode_data


def _general(event: DeltaEvent) -> str:
    payload = event.model_dump(exclude_none=True, exclude={"type"})
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize(
    "text",
    ["", "word ", 'a "quoted" \\ back\\slash', "naïve 🦜 \u2028 line sep", "tab\tnl\n\x00nul"],
)
def test_a_text_delta_is_encoded_as_the_general_path_encodes_it(text: str) -> None:
    event = DeltaEvent(text=text)
    assert encode_data(event) == _general(event)
    assert json.loads(encode_data(event)) == {"text": text}


def test_a_tool_call_delta_still_takes_the_general_path() -> None:
    event = DeltaEvent(tool_call=ToolCallFragment(index=0, id="call_1", name="f", arguments="{"))
    assert encode_data(event) == _general(event)
