"""How much CPU the OpenAI, Anthropic and Responses writers add per event, next to native.

Every viewer of a front-door format has its own writer, so this cost is paid
once per event per viewer (the native format writes stored bytes verbatim). A
resumed door connection also folds every event before its cursor (`absorb`);
that cost is paid once per resume; a Responses connection resumed by sequence
number folds every stored event from the first (`replay`). Run: `python -m bench.frontdoor_formats`
(`--quick` for CI).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from api.formats.anthropic import AnthropicEventFormat
from api.formats.native import NativeFormat
from api.formats.openai import OpenAIChunkFormat
from api.formats.responses import ResponseOptions, ResponsesFormat
from services.events import DeltaEvent, DoneEvent, StartEvent, StoredEvent, Usage, encode_data

GEN_ID = "gen_" + "ab" * 16


def synthetic_stream(deltas: int) -> list[StoredEvent]:
    events = [
        StoredEvent(
            "1-0",
            "start",
            encode_data(StartEvent(generation_id=GEN_ID, model="demo/story", attempt=1)),
        )
    ]
    for index in range(deltas):
        text = encode_data(DeltaEvent(text=f" the relay keeps its place {index}"))
        events.append(StoredEvent(f"2-{index}", "delta", text))
    done = DoneEvent(finish_reason="stop", usage=Usage(input_tokens=10, output_tokens=deltas))
    events.append(StoredEvent("3-0", "done", encode_data(done)))
    return events


def per_event_us(
    events: list[StoredEvent], run: Callable[[list[StoredEvent]], object], rounds: int
) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        run(events)
        best = min(best, time.perf_counter() - started)
    return best / len(events) * 1e6


def encode_all(make: Callable[[], object]) -> Callable[[list[StoredEvent]], object]:
    def run(events: list[StoredEvent]) -> object:
        writer = make()
        return [writer.encode(event) for event in events]  # type: ignore[attr-defined]  # every writer has encode

    return run


def shared_by(viewers: int, make: Callable[[], object]) -> Callable[[list[StoredEvent]], object]:
    """`viewers` writers fed the same event objects, as the shared feed does; cost per viewer."""

    def run(events: list[StoredEvent]) -> object:
        writers = [make() for _ in range(viewers)]
        out = [writer.encode(event) for event in events for writer in writers]  # type: ignore[attr-defined]  # every writer has encode
        return out

    return run


def absorb_all(events: list[StoredEvent]) -> object:
    writer = AnthropicEventFormat(GEN_ID, "demo/story", 0.0)
    for event in events:
        writer.absorb(event)
    return writer.opening()


def responses_writer() -> ResponsesFormat:
    return ResponsesFormat(GEN_ID, "demo/story", 0.0, ResponseOptions())


def replay_all(events: list[StoredEvent]) -> object:
    """A Responses client resuming after the last event: every event folded, nothing sent."""
    writer = ResponsesFormat(GEN_ID, "demo/story", 0.0, ResponseOptions(), after=10**9)
    return [writer.replay(event) for event in events]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI")
    args = parser.parse_args()
    deltas, rounds = (500, 2) if args.quick else (20_000, 5)
    events = synthetic_stream(deltas)
    cases: dict[str, Callable[[list[StoredEvent]], object]] = {
        "native encode": encode_all(NativeFormat),
        "openai encode": encode_all(lambda: OpenAIChunkFormat(GEN_ID, "demo/story", 0.0)),
        "anthropic encode": encode_all(lambda: AnthropicEventFormat(GEN_ID, "demo/story", 0.0)),
        "responses encode": encode_all(responses_writer),
        "resume fold (absorb)": absorb_all,
        "responses resume fold (replay)": replay_all,
    }
    print(f"{len(events)} events, best of {rounds} rounds")
    for name, run in cases.items():
        print(f"{name:>32}: {per_event_us(events, run, rounds):6.2f} us/event")
    viewers = 10
    for name, make in (
        ("openai", lambda: OpenAIChunkFormat(GEN_ID, "demo/story", 0.0)),
        ("anthropic", lambda: AnthropicEventFormat(GEN_ID, "demo/story", 0.0)),
        ("responses", responses_writer),
    ):
        cost = per_event_us(events, shared_by(viewers, make), rounds) / viewers
        print(f"{name + f' encode, {viewers} viewers':>32}: {cost:6.2f} us/event/viewer")


if __name__ == "__main__":
    main()
