"""Coalesces a provider's tokens into few, timely Redis writes.

The first delta of an attempt is written at once (time to first token matters
most); after that, deltas wait at most `window_s` and everything pending goes out
in one script call. Consecutive text merges into one `delta` event, and
consecutive argument fragments of one tool call merge too, so a fast model costs
one round trip per window, not one per token.

Text is made encodable on the way in: a provider may split a character outside
the Basic Multilingual Plane (an emoji) between two chunks, each carrying half
of a UTF-16 surrogate pair, which Redis (UTF-8) cannot store. A trailing high
surrogate waits for the next chunk and the pair is joined; a surrogate with no
partner becomes U+FFFD, as a UTF-8 decoder would show it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Iterator
from typing import Protocol

from services.events import DeltaEvent, ToolCallFragment, encode_data, encode_text_delta
from services.generation import ToolCall
from services.store import EventBatch, PublishOutcome
from worker.flush_clock import FlushClock, WindowEnd

_SURROGATE = re.compile("[\ud800-\udfff]")


def encodable(text: str) -> str:
    """`text` with surrogate pairs joined and unpaired surrogates replaced by U+FFFD."""
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


class PublishTarget(Protocol):
    """Where batches go: the store itself, or the worker's group commit (worker/group_commit.py).

    `submit` hands a batch over at once and answers a future of its outcome, so a
    timed flush is a plain callback: no task, no lock, no coroutine per window.
    """

    def submit(
        self, gen_id: str, token: str, batch: EventBatch, *, urgent: bool = False
    ) -> asyncio.Future[PublishOutcome]: ...


class PublishRefused(Exception):
    """The store refused a write: the lease was lost, a cancel arrived, or the guard tripped."""

    def __init__(self, outcome: PublishOutcome) -> None:
        super().__init__(outcome)
        self.outcome = outcome


class WriteAbandoned(Exception):
    """A write of this attempt was cancelled before its outcome was known (the worker is
    stopping): the publisher writes nothing after it, so no later batch can leave a gap."""


class DeltaPublisher:
    """Buffers one attempt's deltas and flushes them on the coalescing window.

    At most one write of an attempt is in flight at a time, so batches land in the
    order they were taken. A window that ends while a write is in flight flushes as
    soon as that write is done.
    """

    def __init__(
        self,
        store: PublishTarget,
        gen_id: str,
        token: str,
        *,
        window_s: float,
        clock: FlushClock | None = None,
        batch_numbers: Iterator[int] | None = None,
    ) -> None:
        self._store = store
        self._clock = clock if clock is not None else FlushClock()  # the worker shares one
        self._gen_id = gen_id
        self._token = token
        # Numbers each batch, so a resent one is recognised (store.publish). A retried
        # attempt's publisher continues its predecessor's numbering: the store keeps
        # the last batch id per lease token, and a fresh count would make the new
        # attempt's first batch look like a resend of the old one's, and vanish.
        self._batch_numbers = batch_numbers if batch_numbers is not None else itertools.count(1)
        self._window_s = window_s
        self._timer: WindowEnd | None = None
        self._writing: asyncio.Future[PublishOutcome] | None = None  # the write in flight
        self._flush_when_written = False  # the window ended while a write was in flight
        self._last_flush = float("-inf")
        self._pending_text: list[str] = []  # text of the trailing text event
        self._pending: list[DeltaEvent] = []  # closed events before it
        self._tool_calls: dict[int, ToolCall] = {}
        self._tool_calls_changed = False
        self.refused: PublishOutcome | None = None
        self.failure: Exception | None = None
        self.published_any = False
        self._high_surrogate = ""

    async def add_text(self, text: str) -> None:
        text = self._whole_characters(text)
        if text:
            self._pending_text.append(text)
            if self._timer is None or self.refused is not None or self.failure is not None:
                # Otherwise a flush is already due: nearly every token, on a busy
                # worker, so it skips `_maybe_flush`'s coroutine.
                await self._maybe_flush()

    def _whole_characters(self, text: str) -> str:
        text, self._high_surrogate = self._high_surrogate + text, ""
        if text and "\ud800" <= text[-1] <= "\udbff":
            text, self._high_surrogate = text[:-1], text[-1]
        return encodable(text)

    async def add_tool_call(self, fragment: ToolCallFragment) -> None:
        fragment = fragment.model_copy(
            update={
                "arguments": encodable(fragment.arguments),
                "name": encodable(fragment.name) if fragment.name else fragment.name,
                "id": encodable(fragment.id) if fragment.id else fragment.id,
            }
        )
        self._close_text()
        call = self._tool_calls.setdefault(fragment.index, ToolCall())
        call.id = call.id or fragment.id
        call.name = call.name or fragment.name
        call.arguments += fragment.arguments
        self._tool_calls_changed = True
        last = self._pending[-1] if self._pending else None
        if (
            last is not None
            and last.tool_call is not None
            and last.tool_call.index == fragment.index
            and fragment.id is None
            and fragment.name is None
        ):
            last.tool_call.arguments += fragment.arguments
        else:
            self._pending.append(DeltaEvent(tool_call=fragment.model_copy()))
        await self._maybe_flush()

    async def finish(self, terminal_status: str, terminal: tuple[str, str], **fields: str) -> None:
        """Flush what is pending together with the terminal event, in one write."""
        self._cancel_timer()
        if self.failure is not None:
            raise self.failure
        if self._high_surrogate:  # its partner never came
            self._pending_text.append("\ufffd")
            self._high_surrogate = ""
        await self._settle()
        if self.failure is not None:  # the write just awaited failed: its text is not stored
            raise self.failure
        batch = self._take_batch(extra=[terminal], terminal_status=terminal_status, **fields)
        await self._write_now(batch)

    async def aclose(self) -> None:
        self._cancel_timer()

    async def discard(self) -> None:
        """Drop what is pending and stop writing, for an attempt that is being retried.

        Waits for a write in flight first, so `published_any` is then exact; after
        it, this publisher writes nothing more, so no delta of the failed attempt
        can land after a `reset`.
        """
        self._cancel_timer()
        self._flush_when_written = False
        await self._settle()
        self._pending_text.clear()
        self._pending.clear()
        self._tool_calls_changed = False

    async def _maybe_flush(self) -> None:
        if self.refused is not None:
            raise PublishRefused(self.refused)
        if self.failure is not None:
            raise self.failure  # a timed flush failed (Redis down): its text is not in the stream
        if self._timer is not None or self._flush_when_written:
            return  # a flush is already due
        due = self._last_flush + self._window_s - time.monotonic()
        if due > 0:
            self._timer = self._clock.call_later(due, self._on_window_end)
            return
        await self._settle()
        if self.refused is None and self.failure is None:
            await self._write_now(self._take_batch())

    def _on_window_end(self) -> None:
        self._timer = None
        self._flush_due()

    def _flush_due(self) -> None:
        """The window has ended: write what is pending now, or once the write in flight is done."""
        if self.refused is not None or self.failure is not None:
            return  # the attempt is over: the producer learns it on its next chunk
        if self._writing is not None:
            self._flush_when_written = True
        else:
            self._start_write(self._take_batch())

    async def _settle(self) -> None:
        """Wait until no write of this attempt is in flight (without cancelling one)."""
        while self._writing is not None:
            await asyncio.wait((self._writing,))

    async def _write_now(self, batch: EventBatch) -> None:
        """Write `batch` and wait for it; a refusal or a failure raises here."""
        writing = self._start_write(batch)
        if writing is None:
            return
        outcome = await writing
        if outcome != "ok":
            raise PublishRefused(outcome)

    def _start_write(self, batch: EventBatch) -> asyncio.Future[PublishOutcome] | None:
        # The window counts from when a write starts, so a generation writes at most
        # once per window, and a token that arrives while a write is in flight waits
        # for its window's timer instead of holding the provider's stream up.
        first = self._last_flush == float("-inf")
        self._last_flush = time.monotonic()
        if not batch.events:
            return None
        writing = self._store.submit(self._gen_id, self._token, batch, urgent=first)
        self._writing = writing
        published = bool(batch.text_append or batch.tool_calls_json)
        writing.add_done_callback(lambda done: self._written(done, published))
        return writing

    def _written(self, writing: asyncio.Future[PublishOutcome], published: bool) -> None:
        """Record a write's outcome (a refusal or a failure stops the attempt's writes)."""
        self._writing = None
        if writing.cancelled():
            self.failure = self.failure or WriteAbandoned("a write was cancelled")
        elif (error := writing.exception()) is not None:
            self.failure = self.failure or (
                error if isinstance(error, Exception) else WriteAbandoned(repr(error))
            )
        elif (outcome := writing.result()) != "ok":
            self.refused = self.refused or outcome
        elif published:
            self.published_any = True
        if self._flush_when_written:
            self._flush_when_written = False
            self._flush_due()

    def _close_text(self) -> None:
        if self._pending_text:
            self._pending.append(DeltaEvent(text="".join(self._pending_text)))
            self._pending_text.clear()

    def _take_batch(
        self, extra: list[tuple[str, str]] | None = None, terminal_status: str = "", **fields: str
    ) -> EventBatch:
        if not self._pending and not self._tool_calls_changed and extra is None:
            return self._take_text()
        self._close_text()
        events = [("delta", encode_data(event)) for event in self._pending]
        text_append = "".join(e.text for e in self._pending if e.text is not None)
        self._pending.clear()
        tool_calls_json = ""
        if self._tool_calls_changed:
            ordered = [self._tool_calls[i].model_dump() for i in sorted(self._tool_calls)]
            tool_calls_json = json.dumps(ordered, separators=(",", ":"))
            self._tool_calls_changed = False
        return EventBatch(
            batch_id=self._next_batch_id(),
            events=[*events, *(extra or [])],
            text_append=text_append,
            tool_calls_json=tool_calls_json,
            terminal_status=terminal_status,
            **fields,
        )

    def _next_batch_id(self) -> str:
        return f"{self._token}:{next(self._batch_numbers)}"

    def _take_text(self) -> EventBatch:
        """`_take_batch` when only text is pending (nearly every timed flush): the same
        batch, without a `DeltaEvent` model to build and dump."""
        text = "".join(self._pending_text)
        self._pending_text.clear()
        return EventBatch(
            batch_id=self._next_batch_id(),
            events=[("delta", encode_text_delta(text))] if text else [],
            text_append=text,
        )

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
