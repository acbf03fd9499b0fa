"""An incremental `text/event-stream` parser, exact to the WHATWG rules.

Why not httpx-sse, which the server's tests use: a resuming client depends on the
details it gets wrong or hides. It dispatches a block that has no `data:` line
(`retry: 500` alone, or an `id:` alone, arrives as an event with empty data, so
every caller must tell those apart from a real `data:` with an empty value, which
it cannot); it takes `retry: -5`, `retry: +5` and `retry:  5` as numbers where the
spec accepts ASCII digits only; it keeps a byte-order mark at the start as part of
the first field name. And it offers no way to start from a known last event id.
The rules themselves are short, so they are written out here, once, with tests
against the spec's own cases (tests/test_sse.py), and the parser is also faster
(bench/README.md, "Client libraries").

The parser takes decoded text in chunks of any size (a CR LF may be split across
two chunks) and returns the events each chunk completes. `last_event_id` and
`retry_ms` are what an EventSource would reconnect with.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["SseMessage", "SseParser"]


class SseMessage(NamedTuple):
    """One dispatched event: its type (`message` when unnamed), data and last event id."""

    event: str
    data: str
    id: str


class SseParser:
    """Feeds on text, yields dispatched events; remembers `last_event_id` and `retry_ms`."""

    __slots__ = (
        "_data",
        "_event",
        "_id",
        "_pending",
        "_started",
        "_trailing_cr",
        "last_event_id",
        "retry_ms",
    )

    def __init__(self, last_event_id: str = "") -> None:
        self._pending = ""
        self._trailing_cr = False
        self._started = False
        self._data: list[str] = []
        self._event = ""
        self._id = last_event_id
        self.last_event_id = last_event_id
        self.retry_ms: int | None = None

    def feed(self, text: str) -> list[SseMessage]:
        """The events completed by this chunk, in order."""
        if not text:
            return []
        if not self._started:
            self._started = True
            if text[0] == "\ufeff":
                text = text[1:]
        if self._trailing_cr:
            # The previous chunk ended in CR, which already ended its line: a LF
            # starting this chunk is the second half of a CR LF, not an empty line.
            self._trailing_cr = False
            if text[:1] == "\n":
                text = text[1:]
        if "\r" in text:
            self._trailing_cr = text[-1] == "\r"
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        if self._pending:
            lines[0] = self._pending + lines[0]
        self._pending = lines.pop()
        # The hot path of every client: fields handled inline, the buffers in
        # locals, written back once per chunk.
        out: list[SseMessage] = []
        data, event, event_id = self._data, self._event, self._id
        for line in lines:
            if not line:  # dispatch
                self.last_event_id = event_id
                if data:
                    out.append(SseMessage(event or "message", "\n".join(data), event_id))
                    data = []
                event = ""
                continue
            if line[0] == ":":  # a comment
                continue
            name, colon, value = line.partition(":")
            if colon and value[:1] == " ":
                value = value[1:]
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
            elif name == "id":
                if "\0" not in value:
                    event_id = value
            elif name == "retry" and value.isascii() and value.isdigit():
                self.retry_ms = int(value)
        self._data, self._event, self._id = data, event, event_id
        return out
