"""Run one generation through the relay and collect what its viewers saw."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.fake_upstream import Step, script_prompt
from tests.support.sse import SseEvent, assemble_text, read_sse


@dataclass
class Outcome:
    id: str
    live: list[SseEvent]
    replay: list[SseEvent]
    status: dict[str, Any]

    @property
    def kinds(self) -> list[str]:
        return [event.event for event in self.live]

    @property
    def text(self) -> str:
        return assemble_text(self.live)

    @property
    def terminal(self) -> SseEvent:
        return self.live[-1]

    def attempt_texts(self) -> list[str]:
        """The text each visible attempt streamed, split at `reset` events."""
        texts = [""]
        for event in self.live:
            if event.event == "reset":
                texts.append("")
            elif event.event == "delta":
                texts[-1] += event.json().get("text") or ""
        return texts

    def tool_calls(self) -> list[dict[str, Any]]:
        """Tool calls as a viewer assembles them from the last attempt's deltas."""
        calls: dict[int, dict[str, Any]] = {}
        for event in self.live:
            if event.event == "reset":
                calls = {}
            elif event.event == "delta" and "tool_call" in event.json():
                fragment = event.json()["tool_call"]
                call = calls.setdefault(
                    fragment["index"], {"id": None, "name": None, "arguments": ""}
                )
                call["id"] = call["id"] or fragment.get("id")
                call["name"] = call["name"] or fragment.get("name")
                call["arguments"] += fragment["arguments"]
        return [calls[index] for index in sorted(calls)]


def new_script_id(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


def step_text(step: dict[str, Any]) -> str:
    return "".join(Step.from_json(step).text)


async def run(
    relay: httpx.AsyncClient,
    model: str,
    script_id: str,
    *steps: dict[str, Any],
    messages: list[dict[str, Any]] | None = None,
    **body: Any,
) -> Outcome:
    """Create a generation whose prompt scripts the fake, watch it live, then replay it."""
    prompt = {"role": "user", "content": script_prompt(script_id, *steps)}
    payload = {"model": model, "messages": [*(messages or []), prompt], **body}
    created = await relay.post("/v1/generations", json=payload)
    assert created.status_code == 202, created.text
    gen = created.json()
    live = await read_sse(relay, gen["events_url"], timeout_s=60)
    assert live.closed_by_server
    replay = await read_sse(relay, gen["events_url"], timeout_s=60)
    status = (await relay.get(f"/v1/generations/{gen['id']}")).json()
    return Outcome(gen["id"], live.events, replay.events, status)


async def start(
    relay: httpx.AsyncClient, model: str, script_id: str, *steps: dict[str, Any]
) -> dict[str, Any]:
    prompt = {"role": "user", "content": script_prompt(script_id, *steps)}
    created = await relay.post("/v1/generations", json={"model": model, "messages": [prompt]})
    assert created.status_code == 202, created.text
    gen: dict[str, Any] = created.json()
    return gen


def assert_consistent(outcome: Outcome, *steps: dict[str, Any]) -> None:
    """What every viewer must be able to rely on, whatever went wrong upstream."""
    kinds = outcome.kinds
    assert kinds[0] == "start"
    assert sum(k in ("done", "error", "cancelled") for k in kinds) == 1
    assert kinds[-1] in ("done", "error", "cancelled")
    assert [(e.id, e.event, e.data) for e in outcome.replay] == [
        (e.id, e.event, e.data) for e in outcome.live
    ], "a late viewer saw something else"
    # Every reset is followed by the new attempt's start, numbered in order.
    starts = [e.json()["attempt"] for e in outcome.live if e.event == "start"]
    resets = [e.json()["attempt"] for e in outcome.live if e.event == "reset"]
    assert starts == list(range(starts[0], starts[0] + len(starts)))
    assert resets == starts[1:]
    assert outcome.status["attempt"] == starts[-1]
    # No duplicated prefix: each attempt's text is a prefix of one scripted answer.
    answers = [step_text(step) for step in steps]
    for text in outcome.attempt_texts():
        assert any(answer.startswith(text) for answer in answers), (text, answers)
    assert outcome.status["content"] == outcome.text
