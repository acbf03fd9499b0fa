"""The client's reconnect policy against a scripted server that fails on cue.

These are the failures a user's own loop gets wrong: a response cut off mid-chunk
(`RemoteProtocolError`), a refused connection while the server restarts, a 503
with `Retry-After`, a clean close with no terminal event. Each one must lead to a
reconnect with `Last-Event-ID`; 401, 403, 404 and 429 must not (counted).
"""

from __future__ import annotations

import json
import socket

import pytest
from fake_server import answer, event_stream, fake_server, json_error, sse
from tokenrelay_client import (
    AsyncTokenRelay,
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ReconnectPolicy,
    TokenRelay,
)

FAST = ReconnectPolicy(max_backoff_s=0.2, max_failures=5)
START = sse("start", '{"generation_id": "gen_x", "model": "demo/echo", "attempt": 1}', "1-0")
DONE = sse("done", '{"finish_reason": "stop", "usage": null}', "4-0")


def delta(text: str, event_id: str) -> str:
    return sse("delta", json.dumps({"text": text}), event_id)


def snapshot(status: str, last_event_id: str | None) -> bytes:
    body = {"id": "gen_x", "status": status, "model": "demo/echo", "content": "", "attempt": 1}
    return json.dumps({**body, "last_event_id": last_event_id}).encode()


def client(base_url: str, api_key: str | None = None) -> TokenRelay:
    return TokenRelay(base_url=base_url, api_key=api_key, stream_policy=FAST)


def test_a_cut_chunk_a_refused_connect_a_503_and_an_early_close_all_resume() -> None:
    def refuse(conn: socket.socket) -> None:
        conn.close()  # the request reached nobody who answers

    script = [
        event_stream("retry: 50\n\n" + START + delta("Hel", "2-0"), cut=True),
        refuse,
        json_error("503 Service Unavailable", "unavailable", {"Retry-After": "0"}),
        event_stream(delta("Hel", "2-0") + delta("lo", "3-0")),  # replays one: dropped
        event_stream(DONE),
    ]
    with fake_server(script) as server, client(server.base_url) as tr:
        stream = tr.generations.stream("gen_x")
        kinds = [event.type for event in stream]
    assert kinds == ["start", "delta", "delta", "done"]
    assert stream.text == "Hello"
    assert stream.status == "completed"
    assert stream.reconnects == 4
    cursors = [r.headers.get("last-event-id") for r in server.requests]
    assert cursors == [None, "2-0", "2-0", "2-0", "3-0"]


def test_a_reset_voids_the_text_and_attempt_counts() -> None:
    body = (
        START
        + delta("void", "2-0")
        + sse("reset", '{"attempt": 2, "reason": "worker_lost"}', "3-0")
        + sse("start", '{"generation_id": "gen_x", "model": "m", "attempt": 2}', "3-1")
        + delta("kept", "3-2")
        + DONE
    )
    with fake_server([event_stream(body)]) as server, client(server.base_url) as tr:
        stream = tr.generations.stream("gen_x")
        texts = []
        for event in stream:
            texts.append(stream.text)
            if event.type == "reset":
                assert event.attempt == 2 and event.reason == "worker_lost"
    assert texts == ["", "void", "", "", "kept", "kept"]
    assert stream.attempt == 2 and stream.text == "kept"


def test_204_ends_the_stream_and_the_status_is_read() -> None:
    script = [
        answer("204 No Content"),
        answer("200 OK", snapshot("completed", "4-0"), {"Content-Type": "application/json"}),
    ]
    with fake_server(script) as server, client(server.base_url) as tr:
        stream = tr.generations.stream("gen_x", last_event_id="4-0")
        assert list(stream) == []
    assert stream.status == "completed" and stream.finished
    assert [r.method + " " + r.path for r in server.requests] == [
        "GET /v1/generations/gen_x/events",
        "GET /v1/generations/gen_x",
    ]


@pytest.mark.parametrize(
    ("status", "error_type", "error"),
    [
        ("401 Unauthorized", "authentication_error", AuthenticationError),
        ("403 Forbidden", "permission_error", PermissionDeniedError),
        ("404 Not Found", "not_found_error", NotFoundError),
        ("429 Too Many Requests", "rate_limit_error", RateLimitError),
    ],
)
def test_refusals_raise_typed_errors_after_one_request(
    status: str, error_type: str, error: type[Exception]
) -> None:
    script = [json_error(status, error_type, {"Retry-After": "7"})]
    with fake_server(script) as server, client(server.base_url, api_key="k") as tr:
        with pytest.raises(error) as raised:
            list(tr.generations.stream("gen_x"))
        assert len(server.requests) == 1
        with pytest.raises(error):
            tr.generations.get("gen_x")
        assert len(server.requests) == 2
    assert getattr(raised.value, "type", None) == error_type
    assert server.requests[0].headers["authorization"] == "Bearer k"
    if error is RateLimitError:
        assert isinstance(raised.value, RateLimitError)
        assert raised.value.retry_after_s == 7


def test_429_is_waited_out_only_when_asked() -> None:
    script = [
        json_error("429 Too Many Requests", "rate_limit_error", {"Retry-After": "0"}),
        json_error("429 Too Many Requests", "rate_limit_error", {"Retry-After": "0"}),
        answer("200 OK", snapshot("running", "2-0"), {"Content-Type": "application/json"}),
    ]
    with fake_server(script) as server:
        with TokenRelay(base_url=server.base_url, wait_on_rate_limit=True) as tr:
            assert tr.generations.get("gen_x").status == "running"
        assert len(server.requests) == 3
    with fake_server(script[:1]) as server:
        tr = TokenRelay(base_url=server.base_url, wait_on_rate_limit=True, max_retries=3)
        with tr, pytest.raises(RateLimitError):
            tr.generations.get("gen_x")
        assert len(server.requests) == 4  # the first ask and three retries, no more


def test_gives_up_after_max_failures_with_a_connection_error() -> None:
    from tokenrelay_client import APIConnectionError

    with fake_server([json_error("502 Bad Gateway", "api_error")]) as server:
        pass  # closed: every connection is now refused
    with client(server.base_url) as tr, pytest.raises(APIConnectionError) as raised:
        list(tr.generations.stream("gen_x"))
    assert raised.value.attempts == FAST.max_failures


async def test_async_stream_resumes_after_a_cut_chunk() -> None:
    script = [
        event_stream("retry: 20\n\n" + START + delta("a", "2-0"), cut=True),
        event_stream(delta("b", "3-0") + DONE),
    ]
    with fake_server(script) as server:
        async with AsyncTokenRelay(base_url=server.base_url, stream_policy=FAST) as tr:
            stream = tr.generations.stream("gen_x")
            kinds = [event.type async for event in stream]
    assert kinds == ["start", "delta", "delta", "done"]
    assert stream.text == "ab" and stream.reconnects == 1
    assert server.requests[1].headers["last-event-id"] == "2-0"


def test_api_key_and_token_are_exclusive_and_never_in_the_url() -> None:
    with pytest.raises(ValueError):
        TokenRelay(api_key="a", token="b")
    script = [
        answer("204 No Content"),
        answer("200 OK", snapshot("completed", "4-0"), {"Content-Type": "application/json"}),
    ]
    with fake_server(script) as server, TokenRelay(base_url=server.base_url, token="viewer") as tr:
        assert list(tr.generations.stream("gen_x")) == []
    assert len(server.requests) == 2
    for request in server.requests:
        assert "viewer" not in request.path
        assert request.headers["authorization"] == "Bearer viewer"
