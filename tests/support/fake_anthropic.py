"""A fake Anthropic Messages upstream: `POST /v1/messages`, streaming.

`POST /v1/messages/count_tokens` answers the words of every text as `input_tokens`.
Speaks the wire format the `anthropic` SDK parses (anthropic/_streaming.py):
named SSE events `message_start` (with input usage), per content block
`content_block_start` / `content_block_delta` (`text_delta`, or
`input_json_delta` for `tool_use`) / `content_block_stop`, a `ping`,
`message_delta` (stop_reason, output usage) and `message_stop`. Errors are
`{"type": "error", "error": {"type", "message"}}` with the HTTP status (529 for
`overloaded_error`); a mid-stream error is an `event: error` with that body.

Run from a shell: `python -m tests.support.fake_anthropic --port 9200`, then
`ANTHROPIC_BASE_URL=http://127.0.0.1:9200 ANTHROPIC_API_KEY=x tokenrelay worker`.
See tests/support/fake_upstream.py for the script a prompt can carry.
"""

from __future__ import annotations

from typing import Any

from tests.support.fake_upstream import (
    Action,
    Answer,
    ErrorAnswer,
    FakeUpstream,
    Planner,
    Send,
    Step,
    StreamAnswer,
    count_words,
    fault_actions,
    prompt_texts,
    serve_from_shell,
    sse,
    with_fault,
)

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


class AnthropicPlanner(Planner):
    path = "/v1/messages"

    def json_answer(self, path: str, body: dict[str, Any]) -> tuple[int, Any] | None:
        """`POST /v1/messages/count_tokens`: the words of every text, like the usage."""
        if path != "/v1/messages/count_tokens":
            return None
        if not str(body.get("model", "")):
            return 400, error_body("invalid_request_error", "model: Field required")
        return 200, {"input_tokens": count_words(prompt_texts(body))}

    def answer(self, step: Step, body: dict[str, Any]) -> Answer:
        if step.status != 200:
            error_type = step.error_type or _ERROR_TYPES.get(step.status, "api_error")
            headers = {"request-id": "req_fake"}
            if step.retry_after:
                headers["retry-after"] = step.retry_after
            text = step.message or f"fake error {step.status}"
            return ErrorAnswer(step.status, error_body(error_type, text), headers)

        def event(name: str, data: dict[str, Any]) -> Send:
            return Send(sse({"type": name, **data}, event=name))

        input_tokens = count_words(prompt_texts(body))
        usage_start = {"input_tokens": input_tokens, "output_tokens": 1} if step.usage else None
        message: dict[str, Any] = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": str(body.get("model", "fake")),
            "stop_reason": None,
            "stop_sequence": None,
        }
        if usage_start is not None:
            message["usage"] = usage_start
        opening: list[Action] = [event("message_start", {"message": message})]

        pieces: list[list[Action]] = []
        block = 0
        if step.text:
            for position, text in enumerate(step.text):
                piece: list[Action] = []
                if position == 0:
                    start = {"index": block, "content_block": {"type": "text", "text": ""}}
                    piece += [
                        event("content_block_start", start),
                        Send(sse({"type": "ping"}, "ping")),
                    ]
                delta = {"index": block, "delta": {"type": "text_delta", "text": text}}
                piece.append(event("content_block_delta", delta))
                if position == len(step.text) - 1:
                    piece.append(event("content_block_stop", {"index": block}))
                pieces.append(piece)
            block += 1
        for position, call in enumerate(step.tool_calls):
            tool_use = {
                "type": "tool_use",
                "id": call.get("id", f"toolu_{position}"),
                "name": call["name"],
                "input": {},
            }
            fragments = list(call.get("arguments") or [])
            piece = [event("content_block_start", {"index": block, "content_block": tool_use})]
            for number, fragment in enumerate(fragments):
                delta = {
                    "index": block,
                    "delta": {"type": "input_json_delta", "partial_json": fragment},
                }
                piece.append(event("content_block_delta", delta))
                if number < len(fragments) - 1:
                    pieces.append(piece)
                    piece = []
            piece.append(event("content_block_stop", {"index": block}))
            pieces.append(piece)
            block += 1

        stop_reason = step.finish or ("tool_use" if step.tool_calls else "end_turn")
        message_delta: dict[str, Any] = {
            "delta": {"stop_reason": stop_reason, "stop_sequence": None}
        }
        if step.usage:
            message_delta["usage"] = {"output_tokens": len(pieces)}
        ending: list[Action] = [
            event("message_delta", message_delta),
            event("message_stop", {}),
        ]
        faults = fault_actions(
            step,
            malformed=b'event: content_block_delta\ndata: {"type": "content_block_delta", \n\n',
            overloaded=sse(error_body("overloaded_error", "Overloaded"), "error"),
        )
        return StreamAnswer(
            opening + with_fault(pieces, step, faults) + ([] if step.fault else ending)
        )


def fake_anthropic(port: int = 0) -> FakeUpstream:
    return FakeUpstream(AnthropicPlanner(), port)


if __name__ == "__main__":
    serve_from_shell(AnthropicPlanner(), "anthropic", 9200)
