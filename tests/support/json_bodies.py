"""Hostile JSON bodies for tests, built as raw bytes where JSON libraries would refuse."""

from __future__ import annotations

from typing import Any

import redis

from services import keys


def nested_object(levels: int) -> dict[str, Any]:
    """An object `levels` deep: `{"a": {"a": ... {}}}` (1 is `{}`)."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def json_depth(value: Any) -> int:
    """Nesting of objects and arrays, counted as the API counts it (a scalar is 0)."""
    if isinstance(value, dict):
        return 1 + max((json_depth(child) for child in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((json_depth(child) for child in value), default=0)
    return 0


def deep_array_body(levels: int) -> bytes:
    """`{"x": [[[...]]]}`, too deep for Python's recursive JSON encoder to write."""
    return b'{"x":' + b"[" * levels + b"]" * levels + b"}"


def generation_count(redis_client: redis.Redis) -> int:
    """Generations recorded so far: a refused request must not change it."""
    count: int = redis_client.zcard(keys.RECENT)  # type: ignore[assignment]  # sync client
    return count
