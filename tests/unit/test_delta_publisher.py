"""How the worker turns a provider's tokens into writes (worker/publisher.py).

Viewers see what the publisher writes, in the batches it writes them: the first
token must go out at once, later ones coalesce into few events, nothing pending
may be lost at the end, and after a refusal or a retry nothing more may land.
The store below records the batches instead of running the Lua script on Redis:
it stands in for the Redis boundary only, and the publisher is the real one.
The coalescing window is an hour in most tests, so no timer fires during them
and the batches depend on the calls alone, not on the machine's speed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import fakeredis
import pytest

from services.events import ToolCallFragment
from services.store import EventBatch, GenerationStore, PublishOutcome
from tests.support.polling import wait_for
from worker.publisher import DeltaPublisher, PublishRefused

GEN_ID = "gen_0123456789abcdef0123456789abcdef"
TOKEN = "lease-token"
HOUR = 3600.0
DONE = ("done", '{"finish_reason":"stop","usage":null}')


class RecordingStore(GenerationStore):
    """A GenerationStore whose `publish` records each batch and answers `outcome`.

    Built on a fakeredis connection that is never used, so nothing here can reach
    a network; only `publish`, the one method the publisher calls, is replaced.
    """

    def __init__(self) -> None:
        super().__init__(fakeredis.FakeAsyncRedis(), retention_s=60, max_stream_events=1000)
        self.batches: list[EventBatch] = []
        self.outcome: PublishOutcome = "ok"
        self.failure: Exception | None = None

    async def publish(self, gen_id: str, token: str, batch: EventBatch) -> PublishOutcome:
        assert (gen_id, token) == (GEN_ID, TOKEN)
        if self.failure is not None:
            raise self.failure
        self.batches.append(batch)
        return self.outcome

    def events(self, index: int) -> list[tuple[str, Any]]:
        return [(kind, json.loads(data)) for kind, data in self.batches[index].events]


@pytest.fixture()
async def store() -> RecordingStore:
    return RecordingStore()


def publisher(store: RecordingStore, window_s: float = HOUR) -> DeltaPublisher:
    return DeltaPublisher(store, GEN_ID, TOKEN, window_s=window_s)


async def test_the_first_token_is_written_at_once(store: RecordingStore) -> None:
    """Time to first token is what a user feels most."""
    deltas = publisher(store)
    await deltas.add_text("Hel")
    assert store.events(0) == [("delta", {"text": "Hel"})]
    assert store.batches[0].text_append == "Hel"
    assert deltas.published_any
    await deltas.aclose()


async def test_later_text_coalesces_and_goes_out_with_the_terminal_event(
    store: RecordingStore,
) -> None:
    deltas = publisher(store)
    for piece in ("Hel", "lo", ", ", "world"):
        await deltas.add_text(piece)
    assert len(store.batches) == 1  # the rest waits for the window
    await deltas.finish("completed", DONE, finish_reason="stop")
    assert len(store.batches) == 2
    last = store.batches[1]
    assert store.events(1) == [("delta", {"text": "lo, world"}), ("done", json.loads(DONE[1]))]
    assert (last.text_append, last.terminal_status, last.finish_reason) == (
        "lo, world",
        "completed",
        "stop",
    )


async def test_empty_text_is_not_an_event(store: RecordingStore) -> None:
    deltas = publisher(store)
    await deltas.add_text("")
    assert store.batches == []
    await deltas.finish("completed", DONE)
    assert store.events(0) == [("done", json.loads(DONE[1]))]
    assert not deltas.published_any


async def test_tool_call_fragments_merge_per_call_and_text_stays_in_order(
    store: RecordingStore,
) -> None:
    deltas = publisher(store)
    await deltas.add_text("Looking")  # written at once
    await deltas.add_text(" it up.")
    await deltas.add_tool_call(ToolCallFragment(index=0, id="call_1", name="search"))
    await deltas.add_tool_call(ToolCallFragment(index=0, arguments='{"q":'))
    await deltas.add_tool_call(ToolCallFragment(index=0, arguments='"x"}'))
    await deltas.add_tool_call(ToolCallFragment(index=1, id="call_2", name="f", arguments="{}"))
    await deltas.finish("completed", DONE)
    assert store.events(1)[:-1] == [
        ("delta", {"text": " it up."}),
        (
            "delta",
            {"tool_call": {"index": 0, "id": "call_1", "name": "search", "arguments": '{"q":"x"}'}},
        ),
        ("delta", {"tool_call": {"index": 1, "id": "call_2", "name": "f", "arguments": "{}"}}),
    ]
    # The status record gets every call whole, for GET /v1/generations/{id}.
    assert json.loads(store.batches[1].tool_calls_json) == [
        {"id": "call_1", "name": "search", "arguments": '{"q":"x"}'},
        {"id": "call_2", "name": "f", "arguments": "{}"},
    ]


async def test_pending_text_goes_out_on_the_window_without_further_tokens(
    store: RecordingStore,
) -> None:
    """A model that pauses must not leave viewers without the text it already sent."""
    deltas = publisher(store, window_s=0.01)
    await deltas.add_text("a")
    await deltas.add_text("b")
    await wait_for(lambda: len(store.batches) == 2, timeout_s=10, what="the timed flush")
    assert store.events(1) == [("delta", {"text": "b"})]
    await deltas.aclose()


@pytest.mark.parametrize("outcome", ["fenced", "cancelled", "too_large"])
async def test_a_refused_write_stops_the_attempt(
    store: RecordingStore, outcome: PublishOutcome
) -> None:
    """A worker that lost its lease (or was cancelled) must stop at its next token."""
    store.outcome = outcome
    deltas = publisher(store)
    with pytest.raises(PublishRefused) as refused:
        await deltas.add_text("x")
    assert refused.value.outcome == outcome
    assert deltas.refused == outcome
    store.outcome = "ok"
    with pytest.raises(PublishRefused):
        await deltas.add_text("more")
    assert len(store.batches) == 1


async def test_a_failed_timed_flush_surfaces_at_the_next_token(store: RecordingStore) -> None:
    """Text whose write failed is not in the stream: the attempt must not carry on as if."""
    deltas = publisher(store, window_s=0.5)  # "b" lands in the window, on any machine
    await deltas.add_text("a")
    store.failure = ConnectionError("redis went away")
    await deltas.add_text("b")
    await wait_for(lambda: deltas.failure is not None, timeout_s=10, what="the flush to fail")
    with pytest.raises(ConnectionError):
        await deltas.add_text("c")
    with pytest.raises(ConnectionError):
        await deltas.finish("completed", DONE)


async def test_discard_drops_what_is_pending_of_a_failed_attempt(store: RecordingStore) -> None:
    """No delta of an attempt being retried may land after its `reset`."""
    deltas = publisher(store)
    await deltas.add_text("first")
    await deltas.add_text(" void")
    await deltas.add_tool_call(ToolCallFragment(index=0, id="c", name="f", arguments="{"))
    await deltas.discard()
    await deltas.finish("failed", ("error", '{"type":"x","message":"y","retryable":false}'))
    assert store.events(1) == [("error", {"type": "x", "message": "y", "retryable": False})]
    assert store.batches[1].tool_calls_json == ""


async def test_an_emoji_split_between_chunks_is_joined_and_a_lone_half_replaced(
    store: RecordingStore,
) -> None:
    """A provider may send each half of a UTF-16 surrogate pair in its own chunk;
    Redis stores UTF-8, which has no halves, so they must never reach the store."""
    deltas = publisher(store)
    await deltas.add_text("smile \ud83d")  # the first half waits for its partner
    await deltas.add_text("\ude00 and \udc00 then \ud83d")
    await deltas.finish("completed", DONE, finish_reason="stop")
    text = "".join(batch.text_append for batch in store.batches)
    assert text == "smile \U0001f600 and \ufffd then \ufffd"
    text.encode("utf-8")  # every batch is storable as it is


class GatedStore(RecordingStore):
    """A store whose writes wait until the test opens the gate: a slow Redis."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()  # a write reached the store
        self.in_flight = 0
        self.most_in_flight = 0

    async def publish(self, gen_id: str, token: str, batch: EventBatch) -> PublishOutcome:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.entered.set()
        try:
            await self.gate.wait()
            return await super().publish(gen_id, token, batch)
        finally:
            self.in_flight -= 1


async def test_a_window_that_ends_during_a_write_flushes_right_after_it_in_order() -> None:
    """One write of an attempt at a time keeps its batches in order; a token that
    arrives during a write does not wait for it, and text whose window ended
    meanwhile goes out as soon as the write in flight is answered."""
    store = GatedStore()
    store.gate.set()
    deltas = publisher(store, window_s=0.5)  # "b" and "c" land in their windows, on any machine
    await deltas.add_text("a")  # the first token: written at once
    store.gate.clear()
    store.entered.clear()
    await deltas.add_text("b")  # within the window: written when it ends
    await store.entered.wait()  # ... and held at the gate
    await asyncio.wait_for(deltas.add_text("c"), timeout=5)  # does not wait for "b"
    await asyncio.sleep(0.7)  # the window of "c" ends while "b" is still in flight
    assert [batch.text_append for batch in store.batches] == ["a"]
    store.gate.set()
    await wait_for(lambda: len(store.batches) == 3, timeout_s=10, what="the chained write")
    assert [batch.text_append for batch in store.batches] == ["a", "b", "c"]
    assert store.most_in_flight == 1
    await deltas.finish("completed", DONE)
    assert store.batches[-1].text_append == ""


async def test_a_timed_write_that_fails_while_finishing_fails_the_finish() -> None:
    """The terminal event must not be written after text whose write failed."""
    store = GatedStore()
    store.gate.set()
    deltas = publisher(store, window_s=0.5)  # "b" lands in the window, on any machine
    await deltas.add_text("a")
    store.gate.clear()
    store.entered.clear()
    await deltas.add_text("b")
    await store.entered.wait()
    finishing = asyncio.ensure_future(deltas.finish("completed", DONE))
    await asyncio.sleep(0.02)
    assert not finishing.done()  # it waits for "b"
    store.failure = ConnectionError("redis went away")
    store.gate.set()
    with pytest.raises(ConnectionError):
        await finishing
    assert [batch.text_append for batch in store.batches] == ["a"]


async def test_only_the_first_write_of_an_attempt_is_urgent(store: RecordingStore) -> None:
    """The first delta ends the group commit's linger (time to first token); the
    coalesced ones after it may wait for it."""
    flags: list[bool] = []
    submit = store.submit

    def recording_submit(
        gen_id: str, token: str, batch: EventBatch, *, urgent: bool = False
    ) -> asyncio.Future[PublishOutcome]:
        flags.append(urgent)
        return submit(gen_id, token, batch, urgent=urgent)

    store.submit = recording_submit  # type: ignore[method-assign]
    deltas = publisher(store)
    await deltas.add_text("a")
    await deltas.add_text("b")
    await deltas.finish("completed", DONE)
    assert flags == [True, False]
