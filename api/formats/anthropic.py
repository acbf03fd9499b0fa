"""The Anthropic Messages wire format: the streaming event sequence and the `message`.

A stream is `message_start`, `ping`, then per content block `content_block_start`,
its `content_block_delta`s (`text_delta`, or `input_json_delta` for `tool_use`) and
`content_block_stop`, then `message_delta` (stop reason and usage) and
`message_stop`. The message `id` is `msg_` and the generation's hex, stable for
every viewer. Input tokens are only known when the generation ends, so
`message_start` reports 0 and `message_delta` carries the real count (the SDK
takes `message_delta`'s usage as the final one).

Block indexes are the attempt's own, on every connection: a resumed connection
re-announces the blocks before its cursor (start, and stop when closed, with
empty content), so `content[index]` stays right for a client that parses the
resumed connection alone and for one that merges it into what it had. Text
continues where the cursor left it; the input of a `tool_use` block still open
at the cursor is sent again from its start, because `input_json_delta` pieces
are parsed as one JSON document per connection (a `content_block_start`
therefore starts that block's input afresh).
Failures, cancels, resets and shutdowns are the `error` event, which the
`anthropic` SDK raises as `anthropic.APIStatusError`; its `error.code` is
tokenrelay's own type (`stream_reset` for a reset, with `attempt` and `reason`).
"""

from __future__ import annotations

import json
from typing import Any

from api.formats.door import (
    DoorFormat,
    Frame,
    compact_json,
    door_id,
    fallback_tool_call_id,
)
from api.formats.transcript import Appended, Block, Closed, Ended, Opened, Step, Transcript
from services.events import CancelledEvent, DoneEvent, Usage

_STOP_REASONS = {
    "end_turn": "end_turn",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool_use": "tool_use",
    "pause_turn": "pause_turn",
    "refusal": "refusal",
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}

# Anthropic's error types; ours that it has no name for are `api_error`.
_ERROR_TYPES = {
    "invalid_request_error": "invalid_request_error",
    "rate_limit_error": "rate_limit_error",
    "overloaded_error": "overloaded_error",
    "not_found_error": "not_found_error",
    "request_too_large": "request_too_large",
}


def stop_reason(native: str) -> str:
    """Anthropic's name for a stored finish reason (providers may use OpenAI's names)."""
    return _STOP_REASONS.get(native, "end_turn")


def anthropic_error_type(native: str) -> str:
    return _ERROR_TYPES.get(native, "api_error")


def message_id(gen_id: str) -> str:
    return door_id("msg_", gen_id)


def fallback_tool_use_id(gen_id: str, block: int) -> str:
    """A stable id for a tool call whose provider gave none."""
    return fallback_tool_call_id("toolu_", gen_id, block)


def error_body(error_type: str, message: str) -> dict[str, Any]:
    """Anthropic's error shape, as answered with a status and as the stream's `error` event."""
    return {"type": "error", "error": {"type": error_type, "message": message}}


def tool_input(arguments: str) -> dict[str, Any]:
    """A tool call's arguments as the object Anthropic's `input` must be."""
    try:
        parsed = json.loads(arguments) if arguments.strip() else {}
    except json.JSONDecodeError:
        return {"arguments": arguments}
    return parsed if isinstance(parsed, dict) else {"arguments": parsed}


class AnthropicEventFormat(DoorFormat):
    name = "anthropic"

    def _event(self, payload: dict[str, Any]) -> Frame:
        return payload["type"], compact_json(payload)

    def _empty_block(self, index: int, block: Block) -> dict[str, Any]:
        if block.kind == "text":
            return {"type": "text", "text": ""}
        return {
            "type": "tool_use",
            "id": block.call_id or fallback_tool_use_id(self.gen_id, index),
            "name": block.name or "",
            "input": {},
        }

    def _block_start(self, index: int) -> Frame:
        block = self._empty_block(index, self.transcript.blocks[index])
        return self._event({"type": "content_block_start", "index": index, "content_block": block})

    def _block_stop(self, index: int) -> Frame:
        return self._event({"type": "content_block_stop", "index": index})

    def opening_frames(self) -> list[Frame]:
        message: dict[str, Any] = {
            "id": message_id(self.gen_id),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        frames = [
            self._event({"type": "message_start", "message": message}),
            self._event({"type": "ping"}),
        ]
        for index, block in enumerate(self.transcript.blocks):
            frames.append(self._block_start(index))
            if index != self.transcript.open_block:
                frames.append(self._block_stop(index))
            elif block.kind == "tool_use" and block.content:
                # Partial JSON cannot be parsed from its middle, and SDKs parse each
                # connection alone: the open tool call's input restarts from its start.
                delta = {"type": "input_json_delta", "partial_json": block.content}
                frames.append(
                    self._event({"type": "content_block_delta", "index": index, "delta": delta})
                )
        return frames

    def render(self, step: Step) -> list[Frame]:
        if isinstance(step, Opened):
            return [self._block_start(step.block)]
        if isinstance(step, Appended):
            if self.transcript.blocks[step.block].kind == "text":
                delta = {"type": "text_delta", "text": step.content}
            else:
                delta = {"type": "input_json_delta", "partial_json": step.content}
            return [
                self._event({"type": "content_block_delta", "index": step.block, "delta": delta})
            ]
        if isinstance(step, Closed):
            return [self._block_stop(step.block)]
        if isinstance(step, Ended):
            return self._ending(step)
        return []

    def _ending(self, step: Ended) -> list[Frame]:
        event = step.event
        if isinstance(event, DoneEvent):
            usage = event.usage or Usage()
            message_delta = {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason(event.finish_reason), "stop_sequence": None},
                "usage": {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens},
            }
            return [self._event(message_delta), self._event({"type": "message_stop"})]
        if isinstance(event, CancelledEvent):
            return self.error_frames("cancelled", "the generation was cancelled")
        return self.error_frames(event.error_type, event.message)

    def error_frames(
        self,
        error_type: str,
        message: str,
        *,
        resume_from: str | None = None,
        reset: dict[str, Any] | None = None,
    ) -> list[Frame]:
        body = error_body(anthropic_error_type(error_type), message)
        # Anthropic's type names only a few failures (a reset is an `api_error`):
        # `code` is ours, so a program can tell a reset from an upstream failure.
        body["error"]["code"] = error_type
        body["error"].update(self.extra_fields(resume_from, reset))
        return [("error", compact_json(body))]


def message(transcript: Transcript, gen_id: str, model: str) -> dict[str, Any]:
    """The non-streaming answer: one `message` built from the finished transcript."""
    ending = transcript.ending
    assert isinstance(ending, DoneEvent), "only a completed generation has a message"
    content: list[dict[str, Any]] = []
    for index, block in enumerate(transcript.blocks):
        if block.kind == "text":
            content.append({"type": "text", "text": block.content})
        else:
            content.append(
                {
                    "type": "tool_use",
                    "id": block.call_id or fallback_tool_use_id(gen_id, index),
                    "name": block.name or "",
                    "input": tool_input(block.content),
                }
            )
    usage = ending.usage or Usage()
    return {
        "id": message_id(gen_id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(ending.finish_reason),
        "stop_sequence": None,
        "usage": {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens},
    }
