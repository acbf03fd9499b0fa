"""The OpenAI Chat Completions wire format: `chat.completion.chunk` SSE and `chat.completion`.

Chunks carry a stable `id` (`chatcmpl-` and the generation's hex) and `created`
(the generation's creation time), so every viewer and every resumed connection of
one generation sees the same ones. The role comes in the first chunk, a tool call's
`id`, `type` and `name` in its first chunk and only `arguments` after that, the
`finish_reason` in the last choice chunk, then the usage chunk (empty `choices`)
when `stream_options.include_usage` asked for it, then `data: [DONE]`.

The `openai` SDK's SSE decoder turns every blank line into an event once it has
seen an `id:`, and fails to parse an event without data, so a heartbeat comment
or a `retry:` alone in its block breaks it. `transport` therefore sends such
blocks as lines without the blank line: the spec ignores a comment and applies
`retry:` line by line, so every other client reads them as before, and the
bytes still keep proxies from timing the connection out.

OpenAI has no event to take text back or to report a failure after the answer
started other than an `{"error": {...}}` data line, which the `openai` SDK raises
as `openai.APIError`; resets, failures, cancels and shutdowns are all written so.
"""

from __future__ import annotations

from typing import Any

from api.formats.door import (
    DoorFormat,
    Frame,
    compact_json,
    door_id,
    fallback_tool_call_id,
)
from api.formats.transcript import Appended, Ended, Opened, Step, Transcript
from services.events import CancelledEvent, DoneEvent, Usage

_FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "function_call": "function_call",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_reason(native: str) -> str:
    """OpenAI's name for a stored finish reason (providers may use Anthropic's names)."""
    return _FINISH_REASONS.get(native, "stop")


def completion_id(gen_id: str) -> str:
    return door_id("chatcmpl-", gen_id)


def fallback_call_id(gen_id: str, ordinal: int) -> str:
    """A stable id for a tool call whose provider gave none."""
    return fallback_tool_call_id("call_", gen_id, ordinal)


def usage_body(usage: Usage | None) -> dict[str, int]:
    prompt = usage.input_tokens if usage else 0
    completion = usage.output_tokens if usage else 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def error_body(error_type: str, message: str, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error object, as answered with a status and as sent inside a stream."""
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


def openai_transport(chunk: bytes) -> bytes:
    """SSE bytes as the `openai` SDK can parse them: comment and `retry:` blocks
    without their blank line (see the module docstring)."""
    blocks = chunk.split(b"\n\n")
    out = []
    for block in blocks[:-1]:
        lines = block.split(b"\n")
        if all(line.startswith((b":", b"retry:")) for line in lines):
            out.append(block + b"\n")
        else:
            out.append(block + b"\n\n")
    out.append(blocks[-1])
    return b"".join(out)


class OpenAIChunkFormat(DoorFormat):
    name = "openai"

    def __init__(
        self, gen_id: str, model: str, created_at: float, *, include_usage: bool = False
    ) -> None:
        super().__init__(gen_id, model, created_at)
        self.include_usage = include_usage
        self._head: str | None = None

    def transport(self, chunk: bytes) -> bytes:
        return openai_transport(chunk)

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> Frame:
        # The envelope is the same for every chunk of a generation: render it once,
        # and only serialize the delta per event (this runs per event per viewer).
        if self._head is None:
            self._head = (
                f'{{"id":{compact_json(completion_id(self.gen_id))},"object":"chat.completion.chunk",'
                f'"created":{self.created},"model":{compact_json(self.model)},'
                '"system_fingerprint":null,"choices":[{"index":0,"delta":'
            )
        finish_json = "null" if finish is None else compact_json(finish)
        usage = ',"usage":null' if self.include_usage else ""
        return None, (
            f'{self._head}{compact_json(delta)},"logprobs":null,"finish_reason":{finish_json}}}]{usage}}}'
        )

    def _tool_ordinal(self, block: int) -> int:
        blocks = self.transcript.blocks[:block]
        return sum(1 for earlier in blocks if earlier.kind == "tool_use")

    def _tool_header(self, block: int) -> Frame:
        ordinal = self._tool_ordinal(block)
        call = self.transcript.blocks[block]
        header = {
            "index": ordinal,
            "id": call.call_id or fallback_call_id(self.gen_id, ordinal),
            "type": "function",
            "function": {"name": call.name or "", "arguments": ""},
        }
        return self._chunk({"tool_calls": [header]})

    def opening_frames(self) -> list[Frame]:
        frames = [self._chunk({"role": "assistant", "content": ""})]
        for index, block in enumerate(self.transcript.blocks):
            if block.kind == "tool_use":
                frames.append(self._tool_header(index))
        return frames

    def render(self, step: Step) -> list[Frame]:
        if isinstance(step, Opened):
            if self.transcript.blocks[step.block].kind == "tool_use":
                return [self._tool_header(step.block)]
            return []
        if isinstance(step, Appended):
            block = self.transcript.blocks[step.block]
            if block.kind == "text":
                return [self._chunk({"content": step.content})]
            fragment = {
                "index": self._tool_ordinal(step.block),
                "function": {"arguments": step.content},
            }
            return [self._chunk({"tool_calls": [fragment]})]
        if isinstance(step, Ended):
            return self._ending(step)
        return []

    def _ending(self, step: Ended) -> list[Frame]:
        event = step.event
        if isinstance(event, DoneEvent):
            frames = [self._chunk({}, finish_reason(event.finish_reason))]
            if self.include_usage:
                usage_chunk = {
                    "id": completion_id(self.gen_id),
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "system_fingerprint": None,
                    "choices": [],
                    "usage": usage_body(event.usage),
                }
                frames.append((None, compact_json(usage_chunk)))
            frames.append((None, "[DONE]"))
            return frames
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
        body = error_body(error_type, message, code=error_type)
        body["error"].update(self.extra_fields(resume_from, reset))
        return [(None, compact_json(body))]


def chat_completion(
    transcript: Transcript, gen_id: str, model: str, created_at: float
) -> dict[str, Any]:
    """The non-streaming answer: one `chat.completion` built from the finished transcript."""
    ending = transcript.ending
    assert isinstance(ending, DoneEvent), "only a completed generation has a chat.completion"
    tool_calls = [
        {
            "id": block.call_id or fallback_call_id(gen_id, ordinal),
            "type": "function",
            "function": {"name": block.name or "", "arguments": block.content},
        }
        for ordinal, block in enumerate(transcript.tool_blocks)
    ]
    message: dict[str, Any] = {
        "role": "assistant",
        "content": transcript.text if transcript.text or not tool_calls else None,
        "refusal": None,
        "annotations": [],
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": completion_id(gen_id),
        "object": "chat.completion",
        "created": int(created_at),
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(ending.finish_reason),
            }
        ],
        "usage": usage_body(ending.usage),
    }
