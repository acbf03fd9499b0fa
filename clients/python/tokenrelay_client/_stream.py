"""A generation's events that resume by themselves: the loop every client needs, once.

The loop: connect, parse, remember the last event id; on any failure reconnect
with `Last-Event-ID`, after the server's `retry:` and a jittered backoff that
doubles while failures repeat (so a fleet of viewers does not come back in
lockstep); stop at the terminal event or a `204 No Content`.

"Any failure" is the point. httpx raises a different exception for each way a
stream can break: `ReadError` for a reset connection, `RemoteProtocolError`
("incomplete chunked read") when an API replica is SIGKILLed mid-response,
`ConnectError` while it restarts, `ReadTimeout` on a half-open connection that
went silent (the read timeout spans several heartbeats), and a clean close with
no terminal event when a replica drains on SIGTERM. All of them, and 5xx
answers (503 carries `Retry-After`), lead to a reconnect. Answers that asking
again cannot change (400, 401, 403, 404) raise their typed error at once; 429
does too unless the client was made with `wait_on_rate_limit=True`.

Events are folded as they pass (`text`, `status`, `attempt`, `tool_calls`): a
`reset` voids the text of the attempt before it, a `resync` (the cursor pointed
before what the server still keeps) replaces everything with the snapshot it
carries. An event whose id is not after the last one seen is dropped, so text is
never applied twice.

The fold and the policy are plain objects shared by the sync and async streams;
only the I/O loop is written twice, as httpx itself does.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    RateLimitError,
    error_for_response,
)
from ._sse import SseMessage, SseParser
from ._types import (
    FINISHED,
    CancelledEvent,
    DeltaEvent,
    DoneEvent,
    ErrorEvent,
    ErrorInfo,
    Generation,
    GenerationStatus,
    ResetEvent,
    ResyncEvent,
    StartEvent,
    StreamEvent,
    ToolCall,
    ToolCallFragment,
    UnknownEvent,
    Usage,
)

if TYPE_CHECKING:
    from ._client import AsyncTokenRelay, TokenRelay

__all__ = ["AsyncGenerationStream", "GenerationStream", "ReconnectPolicy"]

_DEFAULT_RETRY_MS = 1000


@dataclass(frozen=True)
class ReconnectPolicy:
    """How a stream waits between connections.

    The wait after `n` failures in a row is `retry * 2**(n-1)`, capped at
    `max_backoff_s` (but never below the server's `retry:` or `Retry-After`),
    times a random factor in [1, 1 + jitter]. `max_failures` failures in a row
    with no new event give up with `APIConnectionError`; any event resets the count.
    """

    max_backoff_s: float = 10.0
    jitter: float = 0.25
    max_failures: int = 50
    read_timeout_s: float = 60.0
    wait_on_rate_limit: bool = False

    def delay_s(self, failures: int, retry_ms: int, retry_after_s: float | None = None) -> float:
        base = max(retry_ms, 1) / 1000
        wait = max(base, min(self.max_backoff_s, base * 2.0 ** max(0, failures - 1)))
        if retry_after_s is not None:
            wait = max(wait, retry_after_s)
        return wait * (1 + random.random() * self.jitter)


def _id_key(event_id: str) -> tuple[int, int] | None:
    """A native id ("<ms>-<seq>", a Redis stream id) as numbers; None for another kind."""
    ms, _, seq = event_id.partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        return None


class _Fold:
    """What the events so far add up to. Pure: no I/O, shared by both streams."""

    def __init__(self, generation_id: str) -> None:
        self.generation_id = generation_id
        self._parts: list[str] = []
        self._text: str | None = ""
        self.status: GenerationStatus = "queued"
        self.attempt = 0
        self.tool_calls: list[ToolCall] = []
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.error: ErrorInfo | None = None
        self.finished = False
        self.last_seen = ""
        self._last_key: tuple[int, int] | None = None
        self._resynced = False

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = "".join(self._parts)
            self._parts = [self._text]
        return self._text

    def _set_text(self, text: str) -> None:
        self._parts = [text]
        self._text = text

    def accept(self, message: SseMessage) -> StreamEvent | None:
        """The typed event for `message`, applied; None for one already seen."""
        if message.id:
            key = _id_key(message.id)
            last = self._last_key
            # A finished generation's `resync` carries the id of its terminal event,
            # which the server sends next: that one repeat is expected.
            if (
                key is not None
                and last is not None
                and (key < last or (key == last and not self._resynced))
            ):
                return None
            self.last_seen, self._last_key = message.id, key
        self._resynced = message.event == "resync"
        try:
            data: Any = json.loads(message.data)
        except ValueError:
            data = message.data
        if not isinstance(data, dict):
            return UnknownEvent(message.id, message.event, data)
        return self._apply(message.event, message.id, data)

    def _apply(self, kind: str, event_id: str, data: dict[str, Any]) -> StreamEvent:
        if kind == "delta":
            text = data.get("text")
            if isinstance(text, str):
                self._parts.append(text)
                self._text = None
                self.status = "running"
                return DeltaEvent(event_id, text=text)
            call = data.get("tool_call")
            if isinstance(call, dict):
                fragment = ToolCallFragment(
                    int(call.get("index") or 0),
                    call.get("id"),
                    call.get("name"),
                    str(call.get("arguments") or ""),
                )
                while len(self.tool_calls) <= fragment.index:
                    self.tool_calls.append(ToolCall(None, None))
                target = self.tool_calls[fragment.index]
                target.id = fragment.id or target.id
                target.name = fragment.name or target.name
                target.arguments += fragment.arguments
                self.status = "running"
                return DeltaEvent(event_id, tool_call=fragment)
            return UnknownEvent(event_id, kind, data)
        if kind == "start":
            self.status = "running"
            self.attempt = int(data.get("attempt") or self.attempt)
            return StartEvent(
                event_id,
                str(data.get("generation_id") or self.generation_id),
                str(data.get("model") or ""),
                self.attempt,
            )
        if kind == "reset":
            self._set_text("")
            self.tool_calls = []
            self.attempt = int(data.get("attempt") or self.attempt + 1)
            return ResetEvent(event_id, self.attempt, str(data.get("reason") or ""))
        if kind == "done":
            self.status, self.finished = "completed", True
            self.finish_reason = data.get("finish_reason")
            self.usage = Usage.from_json(data.get("usage"))
            return DoneEvent(event_id, str(self.finish_reason or ""), self.usage)
        if kind == "error":
            self.status, self.finished = "failed", True
            info = ErrorInfo.from_json(data) or ErrorInfo("api_error", "")
            self.error = info
            return ErrorEvent(event_id, info.type, info.message, bool(data.get("retryable")))
        if kind == "cancelled":
            self.status, self.finished = "cancelled", True
            return CancelledEvent(event_id)
        if kind == "resync":
            snapshot = Generation.from_json(data)
            self.settle(snapshot, finished=False)
            self._set_text(snapshot.content)
            self.tool_calls = [ToolCall(c.id, c.name, c.arguments) for c in snapshot.tool_calls]
            return ResyncEvent(event_id, snapshot)
        return UnknownEvent(event_id, kind, data)

    def settle(self, snapshot: Generation, *, finished: bool) -> None:
        """Takes status and outcome from a snapshot (a `resync`, or a read after a 204)."""
        self.status = snapshot.status
        self.attempt = snapshot.attempt or self.attempt
        self.finish_reason = snapshot.finish_reason
        self.usage = snapshot.usage
        self.error = snapshot.error
        if finished:
            self.finished = True


class _StreamBase:
    """State and accessors shared by the sync and async streams."""

    def __init__(
        self,
        generation_id: str,
        *,
        last_event_id: str | None,
        policy: ReconnectPolicy,
    ) -> None:
        self.generation_id = generation_id
        self._fold = _Fold(generation_id)
        self.last_event_id = last_event_id or ""
        self.policy = policy
        self.retry_ms = _DEFAULT_RETRY_MS
        self.reconnects = 0
        self.connections = 0
        self._failures = 0
        self._closed = False

    @property
    def text(self) -> str:
        """Text of the current attempt (a `reset` voids what came before)."""
        return self._fold.text

    @property
    def status(self) -> GenerationStatus:
        return self._fold.status

    @property
    def attempt(self) -> int:
        return self._fold.attempt

    @property
    def tool_calls(self) -> list[ToolCall]:
        return self._fold.tool_calls

    @property
    def finish_reason(self) -> str | None:
        return self._fold.finish_reason

    @property
    def usage(self) -> Usage | None:
        return self._fold.usage

    @property
    def error(self) -> ErrorInfo | None:
        return self._fold.error

    @property
    def finished(self) -> bool:
        return self._fold.finished

    @property
    def _path(self) -> str:
        return f"/v1/generations/{self.generation_id}/events"

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        return headers

    def _timeout(self) -> httpx.Timeout:
        return httpx.Timeout(10.0, read=self.policy.read_timeout_s)

    def _refusal_delay(self, error: APIStatusError) -> float:
        """The wait before asking again after an error answer, or raises it."""
        retryable = error.status_code >= 500 or (
            isinstance(error, RateLimitError) and self.policy.wait_on_rate_limit
        )
        if not retryable:
            raise error
        return self._failure_delay(error, error.retry_after_s)

    def _failure_delay(self, cause: Exception | None, retry_after_s: float | None = None) -> float:
        """Counts a failed or fruitless connection; the wait before the next one."""
        self._failures += 1
        if self._failures >= self.policy.max_failures:
            if isinstance(cause, APIStatusError):
                raise cause
            timed_out = isinstance(cause, httpx.TimeoutException)
            kind = APITimeoutError if timed_out else APIConnectionError
            raise kind(
                f"gave up on {self.generation_id} after {self._failures} failed connections: "
                f"{cause!r}",
                attempts=self._failures,
            ) from cause
        return self.policy.delay_s(self._failures, self.retry_ms, retry_after_s)

    def _messages(self, parser: SseParser, text: str) -> Iterator[StreamEvent]:
        for message in parser.feed(text):
            event = self._fold.accept(message)
            self.last_event_id = parser.last_event_id
            if parser.retry_ms is not None:
                self.retry_ms = parser.retry_ms
            if event is not None:
                self._failures = 0
                yield event
        if parser.retry_ms is not None:
            self.retry_ms = parser.retry_ms

    def _open_parser(self) -> tuple[SseParser, codecs.IncrementalDecoder]:
        self.connections += 1
        return SseParser(self.last_event_id), codecs.getincrementaldecoder("utf-8")("replace")


class GenerationStream(_StreamBase):
    """Iterate for typed events; `text`, `status`, `attempt` and `reconnects` as they go.

    Ends after the terminal event (`done`, `error` or `cancelled`) or a 204. Use
    it in a `with` block, or call `close()`, to drop the connection early;
    closing never cancels the generation.
    """

    def __init__(
        self,
        client: TokenRelay,
        generation_id: str,
        *,
        last_event_id: str | None = None,
        policy: ReconnectPolicy,
    ) -> None:
        super().__init__(generation_id, last_event_id=last_event_id, policy=policy)
        self._client = client
        self._events = self._run()

    def __iter__(self) -> Iterator[StreamEvent]:
        return self

    def __next__(self) -> StreamEvent:
        return next(self._events)

    def __enter__(self) -> GenerationStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True
        self._events.close()

    def until_done(self) -> GenerationStream:
        """Reads to the end; returns the stream for its `text` and `status`."""
        for _ in self:
            pass
        return self

    def _run(self) -> Generator[StreamEvent, None, None]:
        http = self._client._http
        while not self._fold.finished:
            delay: float
            try:
                with http.stream(
                    "GET", self._path, headers=self._headers(), timeout=self._timeout()
                ) as response:
                    if response.status_code == 204:
                        self._settle_after_end()
                        return
                    if response.status_code != 200:
                        response.read()
                        delay = self._refusal_delay(error_for_response(response))
                    else:
                        parser, decoder = self._open_parser()
                        received = False
                        for chunk in response.iter_bytes():
                            for event in self._messages(parser, decoder.decode(chunk)):
                                received = True
                                yield event
                                if self._fold.finished:
                                    return
                        if not received and self._ended_on_server():
                            return
                        delay = self._failure_delay(None)
            except (httpx.TransportError, httpx.DecodingError) as exc:
                delay = self._failure_delay(exc)
            time.sleep(delay)
            self.reconnects += 1

    def _ended_on_server(self) -> bool:
        """After a connection that closed with nothing: is the generation over already?"""
        snapshot = self._client.generations.get(self.generation_id)
        if snapshot.status in FINISHED and snapshot.last_event_id == (self.last_event_id or None):
            self._fold.settle(snapshot, finished=True)
            return True
        return False

    def _settle_after_end(self) -> None:
        if not self._fold.finished:
            snapshot = self._client.generations.get(self.generation_id)
            self._fold.settle(snapshot, finished=True)


class AsyncGenerationStream(_StreamBase):
    """The async twin of `GenerationStream`: `async for event in stream`."""

    def __init__(
        self,
        client: AsyncTokenRelay,
        generation_id: str,
        *,
        last_event_id: str | None = None,
        policy: ReconnectPolicy,
    ) -> None:
        super().__init__(generation_id, last_event_id=last_event_id, policy=policy)
        self._client = client
        self._events = self._run()

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self

    async def __anext__(self) -> StreamEvent:
        return await self._events.__anext__()

    async def __aenter__(self) -> AsyncGenerationStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed = True
        await self._events.aclose()

    async def until_done(self) -> AsyncGenerationStream:
        """Reads to the end; returns the stream for its `text` and `status`."""
        async for _ in self:
            pass
        return self

    async def _run(self) -> AsyncGenerator[StreamEvent, None]:
        http = self._client._http
        while not self._fold.finished:
            delay: float
            try:
                async with http.stream(
                    "GET", self._path, headers=self._headers(), timeout=self._timeout()
                ) as response:
                    if response.status_code == 204:
                        await self._settle_after_end()
                        return
                    if response.status_code != 200:
                        await response.aread()
                        delay = self._refusal_delay(error_for_response(response))
                    else:
                        parser, decoder = self._open_parser()
                        received = False
                        async for chunk in response.aiter_bytes():
                            for event in self._messages(parser, decoder.decode(chunk)):
                                received = True
                                yield event
                                if self._fold.finished:
                                    return
                        if not received and await self._ended_on_server():
                            return
                        delay = self._failure_delay(None)
            except (httpx.TransportError, httpx.DecodingError) as exc:
                delay = self._failure_delay(exc)
            await asyncio.sleep(delay)
            self.reconnects += 1

    async def _ended_on_server(self) -> bool:
        snapshot = await self._client.generations.get(self.generation_id)
        if snapshot.status in FINISHED and snapshot.last_event_id == (self.last_event_id or None):
            self._fold.settle(snapshot, finished=True)
            return True
        return False

    async def _settle_after_end(self) -> None:
        if not self._fold.finished:
            snapshot = await self._client.generations.get(self.generation_id)
            self._fold.settle(snapshot, finished=True)
