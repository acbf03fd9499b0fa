"""Parsing and comparing SSE cursors (Redis stream entry ids, `MS-SEQ`)."""

from __future__ import annotations

import re

from services.errors import InvalidRequest

_ENTRY_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")  # ASCII digits only
START = "0-0"


def parse_cursor(raw: str | None) -> str:
    """A normalized cursor; `None`, empty, `0` and `0-0` mean "from the first event"."""
    if raw is None:
        return START
    value = raw.strip()
    if value in ("", "0", START):
        return START
    match = _ENTRY_ID.fullmatch(value)
    if match is None or any(int(part) >= 2**64 for part in match.groups()):
        shown = value if len(value) <= 64 else value[:64] + "…"
        raise InvalidRequest(
            f"malformed cursor '{shown}': expected an event id like '1732435200000-0'"
        )
    return f"{int(match.group(1))}-{int(match.group(2))}"


def cursor_key(cursor: str) -> tuple[int, int]:
    ms, _, seq = cursor.partition("-")
    return int(ms), int(seq or 0)
