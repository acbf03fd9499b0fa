"""A small real HTTP/1.1 server on which the fake OpenAI and Anthropic upstreams run.

Written on bare asyncio streams rather than a web framework because the faults
it must produce live below a framework's reach: a stream that stops sending but
keeps the socket open, a connection aborted in the middle of a chunked body,
bytes that are not valid SSE, and the exact moment the client closes its end.

What each request gets comes from a script: the prompt may carry
`fake-script: {"id": "...", "steps": [STEP, ...]}` (JSON, anywhere in a message).
The n-th request carrying a script id gets `steps[n]` (the last step repeats),
so "fail, then succeed" is one script. A STEP is a dict:

| key | meaning |
|---|---|
| `status` | answer this HTTP status with a provider-style error body (default 200: stream) |
| `retry_after` | value of the `retry-after` header of an error answer |
| `error_type`, `message` | the error body's `type` and `message` |
| `text` | a list of text pieces, or a string split into words |
| `tool_calls` | `[{"id", "name", "arguments": [fragments]}]` |
| `usage` | send token usage (default true) |
| `finish` | the provider's finish/stop reason (default: per provider) |
| `delay_s` | pause before each piece (slow tokens) |
| `fault` | `stall`, `drop`, `malformed` or `overloaded` (see below) |
| `fault_after` | how many pieces go out before the fault (default 0) |

Faults: `stall` sends nothing more but keeps the socket open; `drop` aborts the
TCP connection mid-body; `malformed` sends an event whose JSON is cut short;
`overloaded` sends the provider's mid-stream error event.

Every request is recorded (body, script id, step index) with when its
connection closed and who closed it, so tests can assert on both.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SCRIPT_MARKER = "fake-script:"
STALL_MAX_S = 600.0
_WORDS = re.compile(r"\s*\S+|\s+")


@dataclass(frozen=True)
class Send:
    data: bytes


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Stall:
    """Send nothing more but keep the connection open until the client closes it."""


@dataclass(frozen=True)
class Drop:
    """Abort the TCP connection in the middle of the body."""


Action = Send | Sleep | Stall | Drop


@dataclass
class StreamAnswer:
    actions: list[Action]


@dataclass
class ErrorAnswer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


Answer = StreamAnswer | ErrorAnswer


@dataclass
class Step:
    status: int = 200
    retry_after: str | None = None
    error_type: str | None = None
    message: str | None = None
    text: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    usage: bool = True
    finish: str | None = None
    delay_s: float = 0.0
    fault: str | None = None
    fault_after: int = 0

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Step:
        raw = dict(raw)
        text = raw.pop("text", [])
        step = cls(**raw)
        step.text = _WORDS.findall(text) if isinstance(text, str) else list(text)
        if step.retry_after is not None:
            step.retry_after = str(step.retry_after)
        return step


DEFAULT_STEP = {"text": "Hello from the fake upstream. Script me with a fake-script prompt."}


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: Any
    script_id: str | None
    step_index: int
    received_at: float  # time.monotonic()
    closed_at: float | None = None
    closed_by: str | None = None  # "client", "server" (answer complete) or "drop"

    def public(self) -> dict[str, Any]:
        headers = {
            k: ("[redacted]" if k in ("authorization", "x-api-key") else v)
            for k, v in self.headers.items()
        }
        return {**self.__dict__, "headers": headers}


class Planner:
    """What one provider's fake answers: its path, and a step rendered on its wire format."""

    path: str

    def answer(self, step: Step, body: dict[str, Any]) -> Answer:
        raise NotImplementedError

    def json_answer(self, path: str, body: dict[str, Any]) -> tuple[int, Any] | None:
        """The answer of a plain JSON route besides `path` (status, body), if it has one."""
        return None


def prompt_texts(body: dict[str, Any]) -> list[str]:
    """Every text of a Chat Completions or Messages request body, system included."""
    texts: list[str] = []
    system = body.get("system")
    if isinstance(system, str):
        texts.append(system)
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and isinstance(block.get("text"), str):
                    texts.append(block["text"])
                elif isinstance(block, dict) and isinstance(block.get("content"), str):
                    texts.append(block["content"])
    return texts


def find_script(body: dict[str, Any]) -> dict[str, Any] | None:
    for text in reversed(prompt_texts(body)):
        at = text.find(SCRIPT_MARKER)
        if at >= 0:
            try:
                raw, _ = json.JSONDecoder().raw_decode(text[at + len(SCRIPT_MARKER) :].lstrip())
            except ValueError:
                continue  # a mention of the marker, not a script
            if isinstance(raw, dict):
                return raw
    return None


def script_prompt(script_id: str, *steps: dict[str, Any]) -> str:
    """A prompt that makes the fakes follow `steps` (for tests and shells alike)."""
    return f"{SCRIPT_MARKER} " + json.dumps({"id": script_id, "steps": list(steps)})


def with_fault(pieces: list[list[Action]], step: Step, fault_actions: list[Action]) -> list[Action]:
    """The pieces in order, paced by `delay_s`, with the step's fault after `fault_after`.

    A faulted answer ends with its fault: the caller adds no normal ending.
    """
    out: list[Action] = []
    for index, piece in enumerate(pieces):
        if step.fault and index == step.fault_after:
            return [*out, *fault_actions]
        if step.delay_s:
            out.append(Sleep(step.delay_s))
        out.extend(piece)
    if step.fault:
        return [*out, *fault_actions]
    return out


def fault_actions(step: Step, malformed: bytes, overloaded: bytes) -> list[Action]:
    actions: dict[str, list[Action]] = {
        "stall": [Stall()],
        "drop": [Drop()],
        "malformed": [Send(malformed)],
        "overloaded": [Send(overloaded)],
    }
    return actions[step.fault] if step.fault else []


class FakeUpstream:
    """Runs a Planner's HTTP server on 127.0.0.1, in a thread of its own or the caller's loop."""

    def __init__(self, planner: Planner, port: int = 0) -> None:
        self.planner = planner
        self.port = port
        self.requests: list[RecordedRequest] = []
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # lifecycle

    def start(self) -> FakeUpstream:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.run_until_complete(self.listen())
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-upstream", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake upstream did not start")
        return self

    async def listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    # what tests read

    def requests_for(self, script_id: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.script_id == script_id]

    def wait_until(
        self, predicate: Callable[[], bool], timeout_s: float = 30, what: str = "condition"
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"fake upstream: no {what} within {timeout_s} s")
            time.sleep(0.02)

    # HTTP

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, target, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = raw.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                keep_alive = await self._respond(
                    method, target.split("?", 1)[0], headers, body, reader, writer
                )
                if not keep_alive:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            writer.close()

    async def _respond(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        raw_body: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        if method == "GET" and path == "/_fake/requests":
            with self._lock:
                listing = [r.public() for r in self.requests]
            await self._write_json(writer, 200, listing)
            return True
        if method == "POST" and path != self.planner.path:
            answered = self.planner.json_answer(path, json.loads(raw_body or b"{}"))
            if answered is not None:
                with self._lock:
                    self.requests.append(
                        RecordedRequest(
                            path, headers, json.loads(raw_body or b"{}"), None, 0, time.monotonic()
                        )
                    )
                await self._write_json(writer, *answered)
                return False
        if method != "POST" or path != self.planner.path:
            await self._write_json(writer, 404, {"error": {"message": f"no route {path}"}})
            return True
        body = json.loads(raw_body or b"{}")
        script = find_script(body)
        script_id = str(script.get("id")) if script else None
        steps = (script.get("steps") or [script]) if script else [DEFAULT_STEP]
        with self._lock:
            index = self._counts.get(script_id or "", 0)
            self._counts[script_id or ""] = index + 1
            record = RecordedRequest(path, headers, body, script_id, index, time.monotonic())
            self.requests.append(record)
        step = Step.from_json(steps[min(index, len(steps) - 1)])
        answer = self.planner.answer(step, body)
        if isinstance(answer, ErrorAnswer):
            await self._write_json(writer, answer.status, answer.body, answer.headers)
            self._closed(record, "server")
            return False
        await self._stream(answer, record, reader, writer)
        return False

    async def _write_json(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        payload: Any,
        extra: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(payload).encode()
        head = [
            f"HTTP/1.1 {status} {'OK' if status < 400 else 'Error'}",
            "content-type: application/json",
            f"content-length: {len(data)}",
            "connection: close",
            *(f"{k}: {v}" for k, v in (extra or {}).items()),
        ]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        await writer.drain()

    async def _stream(
        self,
        answer: StreamAnswer,
        record: RecordedRequest,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        )
        # The client sends nothing more on this connection, so a read that ends
        # means it closed its end: that is how a cancel is seen upstream.
        client_gone = asyncio.create_task(reader.read(1))
        try:
            for action in answer.actions:
                if client_gone.done():
                    break
                if isinstance(action, Send):
                    writer.write(b"%x\r\n%s\r\n" % (len(action.data), action.data))
                    await writer.drain()
                elif isinstance(action, Sleep | Stall):
                    wait = action.seconds if isinstance(action, Sleep) else STALL_MAX_S
                    await asyncio.wait([client_gone], timeout=wait)
                else:
                    writer.transport.abort()
                    self._closed(record, "drop")
                    return
            if not client_gone.done():
                writer.write(b"0\r\n\r\n")
                await writer.drain()
                self._closed(record, "server")
                return
        except ConnectionError:
            pass
        finally:
            client_gone.cancel()
        self._closed(record, "client")

    def _closed(self, record: RecordedRequest, by: str) -> None:
        with self._lock:
            if record.closed_at is None:
                record.closed_at = time.monotonic()
                record.closed_by = by


def sse(data: Any, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {payload}\n\n".encode()


def count_words(texts: list[str]) -> int:
    return sum(len(text.split()) for text in texts)


def serve_from_shell(planner: Planner, name: str, default_port: int) -> None:
    """`python -m tests.support.fake_openai --port N`: serve until Ctrl-C."""
    import argparse

    parser = argparse.ArgumentParser(description=f"a fake {name} upstream for tokenrelay")
    parser.add_argument("--port", type=int, default=default_port)
    args = parser.parse_args()
    fake = FakeUpstream(planner, port=args.port)

    async def main() -> None:
        await fake.listen()
        print(f"fake {name} listening on {fake.base_url}", flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
