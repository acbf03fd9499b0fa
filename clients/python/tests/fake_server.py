"""A scripted HTTP server on a real socket: the upstream a client test needs to fail on cue.

Each request is answered by the next function of the script, which writes raw
bytes to the socket, so a test can send what no well-behaved server would: a
chunked body cut off mid-chunk, a 429 with `Retry-After`, a 204. Every request's
method, path and headers are recorded, so a test can count them.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

Answer = Callable[[socket.socket], None]


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class FakeServer:
    script: list[Answer]
    base_url: str = ""
    requests: list[Request] = field(default_factory=list)


def _read_head(conn: socket.socket) -> Request | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    method, path, _ = head[0].split(" ", 2)
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Request(method, path, headers)


@contextmanager
def fake_server(script: list[Answer]) -> Iterator[FakeServer]:
    """Serves `script` (the last answer repeats) until the block ends."""
    listener = socket.create_server(("127.0.0.1", 0))
    server = FakeServer(list(script), f"http://127.0.0.1:{listener.getsockname()[1]}")
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                request = _read_head(conn)
                if request is None:
                    continue
                server.requests.append(request)
                index = min(len(server.requests), len(server.script)) - 1
                with suppress(OSError):
                    server.script[index](conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def answer(status: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Answer:
    """A complete answer with a Content-Length, then the connection closes."""

    def write(conn: socket.socket) -> None:
        lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    return write


def json_error(status: str, error_type: str, headers: dict[str, str] | None = None) -> Answer:
    body = f'{{"error": {{"type": "{error_type}", "message": "said the fake"}}}}'.encode()
    return answer(status, body, {"Content-Type": "application/json", **(headers or {})})


def event_stream(body: str, *, cut: bool = False) -> Answer:
    """An SSE answer, chunked; with `cut`, the connection drops in the middle of a chunk."""

    def write(conn: socket.socket) -> None:
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        data = body.encode()
        conn.sendall(head.encode() + f"{len(data):x}\r\n".encode() + data + b"\r\n")
        if cut:
            conn.sendall(b"400\r\npartial")  # a chunk of 1024 bytes that never arrives
            conn.shutdown(socket.SHUT_RDWR)
            return
        conn.sendall(b"0\r\n\r\n")

    return write


def sse(event: str, data: str, event_id: str) -> str:
    return f"id: {event_id}\nevent: {event}\ndata: {data}\n\n"
