"""Which browser origins count as the API's own (api/origin.py)."""

from __future__ import annotations

import pytest

from api.origin import check_origin, is_same_origin
from services.errors import Forbidden


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1:8000"),
        ("https://relay.example", "relay.example"),
        ("https://relay.example", "relay.example:443"),
        ("http://relay.example", "RELAY.example:80"),
        ("http://[::1]:8000", "[::1]:8000"),
    ],
)
def test_same_origin(origin: str, host: str) -> None:
    assert is_same_origin(origin, host)


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://localhost:8000", "127.0.0.1:8000"),
        ("http://127.0.0.1:9000", "127.0.0.1:8000"),
        ("https://relay.example", "relay.example:80"),
        ("https://relay.example.evil", "relay.example"),
        ("null", "relay.example"),
        ("file://", "relay.example"),
        ("http://relay.example:notaport", "relay.example"),
        ("http://[::1", "[::1]:8000"),
        ("http://relay.example", None),
        ("http://relay.example", "[::1"),
    ],
)
def test_other_origins(origin: str, host: str | None) -> None:
    assert not is_same_origin(origin, host)


def test_only_state_changing_requests_with_a_foreign_origin_are_refused() -> None:
    nobody: frozenset[str] = frozenset()
    check_origin("GET", "http://evil.example", "relay.example", nobody)
    check_origin("POST", None, "relay.example", nobody)
    check_origin("POST", "https://relay.example", "relay.example", nobody)
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        with pytest.raises(Forbidden, match=r"origin 'http://evil\.example'"):
            check_origin(method, "http://evil.example", "relay.example", nobody)


def test_allowed_origins_and_the_wildcard() -> None:
    allowed = frozenset({"https://app.example"})
    check_origin("POST", "https://APP.example/", "relay.example", allowed)
    with pytest.raises(Forbidden):
        check_origin("POST", "https://other.example", "relay.example", allowed)
    check_origin("POST", "https://other.example", "relay.example", frozenset({"*"}))
