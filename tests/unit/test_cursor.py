"""SSE cursors (api/streaming/cursor.py): what `Last-Event-ID` and `last_event_id` accept.

A malformed cursor is a 400, never a silent restart from the beginning (a client
would show the answer twice) nor a skip; cursors compare as stream entry ids,
numerically, not as strings.
"""

from __future__ import annotations

import pytest

from api.streaming.cursor import START, cursor_key, parse_cursor
from services.errors import InvalidRequest


@pytest.mark.parametrize("raw", [None, "", "  ", "0", "0-0"])
def test_no_cursor_means_from_the_first_event(raw: str | None) -> None:
    assert parse_cursor(raw) == START


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("1732435200000-0", "1732435200000-0"),
        (" 1732435200000-7 ", "1732435200000-7"),
        ("001-002", "1-2"),
        (f"{2**64 - 1}-{2**64 - 1}", f"{2**64 - 1}-{2**64 - 1}"),
    ],
)
def test_entry_ids_are_accepted_and_normalized(raw: str, normalized: str) -> None:
    assert parse_cursor(raw) == normalized


@pytest.mark.parametrize(
    "raw",
    [
        "abc",
        "1732435200000",  # Redis accepts a bare ms; a client never received one
        "1-2-3",
        "-1-0",
        "1-",
        "1.5-0",
        f"{2**64}-0",
        "1-" + "9" * 21,
        "\u0661\u0662-0",  # Arabic-Indic digits: int() reads them, an event id has none
        "\uff11-0",  # a fullwidth 1
    ],
)
def test_malformed_cursors_are_a_400(raw: str) -> None:
    with pytest.raises(InvalidRequest, match="malformed cursor"):
        parse_cursor(raw)


def test_a_huge_cursor_is_not_echoed_whole() -> None:
    """The message quotes the cursor, so it is cut: an error answer stays small."""
    with pytest.raises(InvalidRequest) as refused:
        parse_cursor("x" * 10_000)
    assert len(str(refused.value)) < 200


def test_cursors_order_numerically() -> None:
    assert cursor_key("9-0") < cursor_key("10-0")
    assert cursor_key("10-2") < cursor_key("10-10")
    assert cursor_key(START) < cursor_key("0-1")
    assert cursor_key("5") == (5, 0)
