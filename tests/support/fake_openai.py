"""A fake OpenAI Chat Completions upstream: `POST /v1/chat/completions`, streaming.

Speaks the wire format the `openai` SDK parses (openai/_streaming.py): `data:`
lines of `chat.completion.chunk` JSON, a first chunk with the assistant role,
`tool_calls` deltas whose first fragment carries `id` and `function.name`, a
chunk with `finish_reason`, then, when the request asked for
`stream_options.include_usage`, a chunk with empty `choices` and the `usage`,
and `data: [DONE]`. Errors are `{"error": {"message", "type", "param", "code"}}`
with the HTTP status; a mid-stream error is a `data:` line with an `error` key.

Run from a shell: `python -m tests.support.fake_openai --port 9100`, then
`OPENAI_BASE_URL=http://127.0.0.1:9100/v1 OPENAI_API_KEY=x tokenrelay worker`.
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
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


class OpenAIPlanner(Planner):
    path = "/v1/chat/completions"

    def answer(self, step: Step, body: dict[str, Any]) -> Answer:
        if step.status != 200:
            error_type, code = _ERROR_TYPES.get(step.status, ("server_error", None))
            headers = {"retry-after": step.retry_after} if step.retry_after else {}
            error = {
                "message": step.message or f"fake error {step.status}",
                "type": step.error_type or error_type,
                "param": None,
                "code": code,
            }
            return ErrorAnswer(step.status, {"error": error}, headers)
        model = str(body.get("model", "fake"))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(choices: list[dict[str, Any]], usage: Any = None) -> bytes:
            data: dict[str, Any] = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 1_700_000_000,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": choices,
            }
            if include_usage:
                data["usage"] = usage
            return sse(data)

        def delta(content: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {"index": 0, "delta": content, "logprobs": None, "finish_reason": finish}

        pieces: list[list[Action]] = [
            [Send(chunk([delta({"content": text})]))] for text in step.text
        ]
        for index, call in enumerate(step.tool_calls):
            fragments = list(call.get("arguments") or [""])
            first = {
                "index": index,
                "id": call.get("id", f"call_{index}"),
                "type": "function",
                "function": {"name": call["name"], "arguments": fragments[0]},
            }
            pieces.append([Send(chunk([delta({"tool_calls": [first]})]))])
            for fragment in fragments[1:]:
                more = {"index": index, "function": {"arguments": fragment}}
                pieces.append([Send(chunk([delta({"tool_calls": [more]})]))])
        finish = step.finish or ("tool_calls" if step.tool_calls else "stop")
        prompt_tokens = count_words(prompt_texts(body))
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(pieces),
            "total_tokens": prompt_tokens + len(pieces),
        }
        role = [Send(chunk([delta({"role": "assistant", "content": ""})]))]
        ending: list[Action] = [Send(chunk([delta({}, finish)]))]
        if include_usage and step.usage:
            ending.append(Send(chunk([], usage)))
        ending.append(Send(b"data: [DONE]\n\n"))
        faults = fault_actions(
            step,
            malformed=b'data: {"id": "chatcmpl-fake", "choices": [{"delta": \n\n',
            overloaded=sse(
                {"error": {"message": "The server is overloaded", "type": "server_error"}}
            ),
        )
        return StreamAnswer(
            role + with_fault(pieces, step, faults) + ([] if step.fault else ending)
        )


def fake_openai(port: int = 0) -> FakeUpstream:
    return FakeUpstream(OpenAIPlanner(), port)


if __name__ == "__main__":
    serve_from_shell(OpenAIPlanner(), "openai", 9100)
