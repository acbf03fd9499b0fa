"""The parser against the WHATWG event-stream rules, fed in chunks of every size."""

from __future__ import annotations

import pytest
from tokenrelay_client import SseMessage, SseParser


def parse(text: str, chunk: int, last_event_id: str = "") -> tuple[list[SseMessage], SseParser]:
    parser = SseParser(last_event_id)
    out: list[SseMessage] = []
    for i in range(0, len(text), chunk):
        out += parser.feed(text[i : i + chunk])
    return out, parser


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1000])
def test_fields_comments_and_every_line_end(chunk: int) -> None:
    stream = (
        "\ufeffretry: 1500\n\n: ping\n\n"
        'id: 1-0\nevent: delta\ndata: {"text":"a"}\n\n'
        "id: 1-1\r\nevent: delta\r\ndata: line one\r\ndata:line two\r\n\r\n"
        "id: 1-2\revent: done\rdata\r\r"
        "id: 1-3\ndata: incomplete at the end"
    )
    events, parser = parse(stream, chunk)
    assert events == [
        SseMessage("delta", '{"text":"a"}', "1-0"),
        SseMessage("delta", "line one\nline two", "1-1"),
        SseMessage("done", "", "1-2"),
    ]
    assert parser.retry_ms == 1500
    assert parser.last_event_id == "1-2"  # the unfinished block is never dispatched


@pytest.mark.parametrize("chunk", [1, 4, 1000])
def test_id_rules_no_data_no_dispatch_and_retry_digits_only(chunk: int) -> None:
    stream = (
        "id: 5-0\n\n"  # an id alone updates the cursor but dispatches nothing
        "data: x\nid: bad\0id\n\n"  # an id with NUL is ignored
        "retry: -5\n\nretry: +5\n\nretry: 5s\n\nretry: 2\u00b3\n\n"  # not ASCII digits
        "data\n\n"  # a `data` field with no colon: one empty line of data
        "id\ndata: y\n\n"  # an empty id resets the cursor
        "event:\ndata:z\n\n"  # an empty event name means `message`
    )
    events, parser = parse(stream, chunk, last_event_id="1-0")
    assert events == [
        SseMessage("message", "x", "5-0"),
        SseMessage("message", "", "5-0"),
        SseMessage("message", "y", ""),
        SseMessage("message", "z", ""),
    ]
    assert parser.retry_ms is None
    assert parser.last_event_id == ""


def test_a_cr_at_the_end_of_one_chunk_and_lf_at_the_start_of_the_next_is_one_line_end() -> None:
    parser = SseParser()
    assert parser.feed("data: a\r") == []
    assert parser.feed("\n\r") == [SseMessage("message", "a", "")]
    assert parser.feed("\ndata: b\n\n") == [SseMessage("message", "b", "")]


def test_starts_from_a_given_last_event_id() -> None:
    events, parser = parse("event: delta\ndata: {}\n\n", 5, last_event_id="9-9")
    assert events == [SseMessage("delta", "{}", "9-9")]
    assert parser.last_event_id == "9-9"
