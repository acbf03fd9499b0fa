"""Each upstream fault, end to end: what viewers assembled, the events, the final status.

A retry before anything was published must be invisible (one `start`, no
`reset`); a retry after output was published must void it with `reset` and
never repeat text; errors a retry cannot fix end the generation at once.
"""

from __future__ import annotations

import httpx
import pytest

from tests.providers.conftest import ATTEMPTS, Fakes
from tests.providers.flows import assert_consistent, new_script_id, run, step_text

MODELS = ["openai/gpt-test", "anthropic/claude-test"]
FINAL = {"text": "Recovered answer, streamed once."}
FIRST = {"text": "one two three four five six"}


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(
    "fault",
    [
        {"status": 500},
        {"status": 503},
        {"status": 529},
        {"status": 429},
        {"status": 408},
        {"fault": "drop"},
        {"fault": "malformed"},
        {"fault": "overloaded"},
    ],
    ids=["500", "503", "529", "429", "408", "drop", "malformed", "overloaded"],
)
async def test_retry_before_any_output_is_invisible(
    relay: httpx.AsyncClient, fakes: Fakes, model: str, fault: dict[str, object]
) -> None:
    script = new_script_id("invisible")

    outcome = await run(relay, model, script, {**FIRST, **fault}, FINAL)

    assert_consistent(outcome, FIRST, FINAL)
    assert outcome.kinds.count("start") == 1
    assert "reset" not in outcome.kinds
    assert outcome.text == step_text(FINAL)
    assert outcome.terminal.event == "done"
    assert outcome.status["status"] == "completed"
    assert outcome.status["attempt"] == 1
    assert len(fakes.for_model(model).requests_for(script)) == 2


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(
    ("fault", "reasons"),
    [
        ("overloaded", {"openai": "provider_error", "anthropic": "overloaded_error"}),
        ("drop", {"openai": "connection_error", "anthropic": "connection_error"}),
        ("malformed", {"openai": "provider_error", "anthropic": "provider_error"}),
        ("stall", {"openai": "timeout", "anthropic": "timeout"}),
    ],
)
async def test_retry_after_output_resets_and_never_repeats_text(
    relay: httpx.AsyncClient, fakes: Fakes, model: str, fault: str, reasons: dict[str, str]
) -> None:
    script = new_script_id(f"reset-{fault}")
    first = {**FIRST, "fault": fault, "fault_after": 3}

    outcome = await run(relay, model, script, first, FINAL)

    assert_consistent(outcome, first, FINAL)
    assert outcome.kinds.count("reset") == 1
    reset = next(e.json() for e in outcome.live if e.event == "reset")
    assert reset == {"attempt": 2, "reason": reasons[model.split("/")[0]]}
    failed_attempt, final_attempt = outcome.attempt_texts()
    assert failed_attempt and step_text(FIRST).startswith(failed_attempt)
    assert final_attempt == step_text(FINAL)
    assert outcome.text == step_text(FINAL)  # the voided prefix is gone, nothing doubled
    assert outcome.terminal.event == "done"
    assert outcome.status["status"] == "completed"
    assert outcome.status["attempt"] == 2
    assert outcome.status["content"] == step_text(FINAL)
    assert len(fakes.for_model(model).requests_for(script)) == 2


@pytest.mark.parametrize("model", MODELS)
async def test_tool_call_retry_after_output_voids_partial_calls(
    relay: httpx.AsyncClient, model: str
) -> None:
    call = {"id": "call_1", "name": "get_weather", "arguments": ['{"ci', 'ty": ', '"Paris"}']}
    first = {"tool_calls": [call], "fault": "drop", "fault_after": 2}
    final = {"tool_calls": [call]}

    outcome = await run(relay, model, new_script_id("tool-reset"), first, final)

    assert_consistent(outcome, first, final)
    assert outcome.kinds.count("reset") == 1
    expected = [{"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}]
    assert outcome.tool_calls() == expected
    assert outcome.status["tool_calls"] == expected


@pytest.mark.parametrize("model", MODELS)
async def test_retry_after_header_is_honoured(
    relay: httpx.AsyncClient, fakes: Fakes, model: str
) -> None:
    script = new_script_id("retry-after")

    outcome = await run(relay, model, script, {"status": 429, "retry_after": "1"}, FINAL)

    assert outcome.status["status"] == "completed"
    assert "reset" not in outcome.kinds
    refused, served = fakes.for_model(model).requests_for(script)
    assert refused.closed_at is not None
    # Backoff alone is milliseconds in this stack; only Retry-After explains a 1 s wait.
    assert served.received_at - refused.closed_at >= 0.9


@pytest.mark.parametrize("model", MODELS)
async def test_retry_after_beyond_our_limit_fails_at_once(
    relay: httpx.AsyncClient, fakes: Fakes, model: str
) -> None:
    script = new_script_id("retry-after-long")

    outcome = await run(relay, model, script, {"status": 429, "retry_after": "3600"}, FINAL)

    assert_consistent(outcome, FINAL)
    error = outcome.terminal.json()
    assert outcome.terminal.event == "error"
    assert error["type"] == "rate_limit_error"
    assert error["retryable"] is True
    assert outcome.status["status"] == "failed"
    assert outcome.status["error"]["type"] == "rate_limit_error"
    assert len(fakes.for_model(model).requests_for(script)) == 1


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (422, "invalid_request_error"),
    ],
)
async def test_client_errors_fail_at_once(
    relay: httpx.AsyncClient, fakes: Fakes, model: str, status: int, error_type: str
) -> None:
    script = new_script_id(f"client-{status}")
    refusal = {"status": status, "message": f"refused with key sk-live-{'x' * 20}"}

    outcome = await run(relay, model, script, refusal, FINAL)

    assert_consistent(outcome, FINAL)
    assert outcome.kinds == ["start", "error"]
    error = outcome.terminal.json()
    assert error["type"] == error_type
    assert error["retryable"] is False
    assert "sk-live" not in error["message"] and "sk-test" not in error["message"]
    assert outcome.status["status"] == "failed"
    assert outcome.status["error"] == {"type": error_type, "message": error["message"]}
    assert len(fakes.for_model(model).requests_for(script)) == 1


@pytest.mark.parametrize("model", MODELS)
async def test_attempts_are_bounded(relay: httpx.AsyncClient, fakes: Fakes, model: str) -> None:
    script = new_script_id("bounded")

    outcome = await run(relay, model, script, {"status": 500})

    assert outcome.kinds == ["start", "error"]
    error = outcome.terminal.json()
    assert (error["type"], error["retryable"]) == ("provider_error", True)
    assert len(fakes.for_model(model).requests_for(script)) == ATTEMPTS


async def test_overloaded_mid_stream_on_every_attempt(
    relay: httpx.AsyncClient, fakes: Fakes
) -> None:
    script = new_script_id("overloaded-always")
    step = {**FIRST, "fault": "overloaded", "fault_after": 2}

    outcome = await run(relay, "anthropic/claude-test", script, step)

    assert_consistent(outcome, step)
    assert outcome.kinds.count("reset") == ATTEMPTS - 1
    assert outcome.terminal.event == "error"
    assert outcome.terminal.json()["type"] == "overloaded_error"
    assert outcome.terminal.json()["retryable"] is True
    assert outcome.status["attempt"] == ATTEMPTS
    assert outcome.status["status"] == "failed"
    assert len(fakes.anthropic.requests_for(script)) == ATTEMPTS
