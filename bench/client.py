"""The load generator's viewers: thousands of SSE connections in one process.

A bare asyncio Protocol per connection (no HTTP library), so the client costs
as little CPU as possible and both systems are read by the same code. Each event
the benchmark publishes carries its publish time `t` in its JSON; a viewer notes
`receive time - t` for every one. Runs in its own process, driven over a pipe:
`connect` opens the connections, `mark` starts a measurement window, `collect`
returns the latencies and counts since the mark, `close` ends everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, cast

_STAMP = re.compile(rb'"t":([0-9.]+)')
DEBUG_SERIES = bool(os.environ.get("BENCH_SERIES"))


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    events: int = 0
    errors: int = 0
    recording: bool = False
    series: list[tuple[float, float]] = field(default_factory=list)


class SseViewer(asyncio.Protocol):
    def __init__(self, request: bytes, tally: Tally, ready: asyncio.Future[None]) -> None:
        self.request = request
        self.tally = tally
        self.ready = ready
        self.buffer = b""
        self.head_done = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.buffer += data
        if not self.head_done:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            status = self.buffer[9:12]
            self.head_done = True
            self.buffer = self.buffer[head_end + 4 :]
            if status != b"200":
                self.tally.errors += 1
            if not self.ready.done():
                self.ready.set_result(None)
        cut = self.buffer.rfind(b"\n\n")
        if cut < 0:
            return
        complete, self.buffer = self.buffer[: cut + 2], self.buffer[cut + 2 :]
        stamps = _STAMP.findall(complete)
        if stamps and self.tally.recording:
            self.tally.events += len(stamps)
            self.tally.latencies.extend(now - float(stamp) for stamp in stamps)
            if DEBUG_SERIES:
                self.tally.series.extend((float(stamp), now) for stamp in stamps)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_result(None)
            self.tally.errors += 1


async def _serve(pipe: Connection) -> None:
    loop = asyncio.get_running_loop()
    tally = Tally()
    viewers: list[SseViewer] = []
    while True:
        command, arg = await loop.run_in_executor(None, pipe.recv)
        if command == "connect":
            port, paths, concurrency = arg
            semaphore = asyncio.Semaphore(concurrency)

            async def open_one(
                path: str, port: int = port, semaphore: asyncio.Semaphore = semaphore
            ) -> None:
                async with semaphore:
                    ready: asyncio.Future[None] = loop.create_future()
                    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
                    viewer = SseViewer(request, tally, ready)
                    try:
                        await loop.create_connection(lambda: viewer, "127.0.0.1", port)
                        await asyncio.wait_for(ready, 60)
                    except (OSError, TimeoutError):
                        tally.errors += 1
                    viewers.append(viewer)

            await asyncio.gather(*(open_one(path) for path in paths))
            pipe.send(tally.errors)
        elif command == "mark":
            tally.latencies, tally.events, tally.recording = [], 0, True
            pipe.send(None)
        elif command == "collect":
            tally.recording = False
            if DEBUG_SERIES:
                by_event: dict[float, list[float]] = {}
                for stamp, at in tally.series:
                    by_event.setdefault(stamp, []).append(at - stamp)
                for stamp in sorted(by_event)[:60]:
                    lat = sorted(by_event[stamp])
                    print(
                        f"{os.getpid()} ev {stamp:.3f}: n={len(lat)} min={lat[0] * 1000:.1f} "
                        f"med={lat[len(lat) // 2] * 1000:.1f} max={lat[-1] * 1000:.1f}",
                        flush=True,
                    )
            pipe.send((tally.latencies, tally.events, tally.errors))
        elif command == "close":
            for viewer in viewers:
                if viewer.transport is not None:
                    viewer.transport.close()
            viewers.clear()
            await asyncio.sleep(0.2)
            pipe.send(None)
        elif command == "exit":
            return


def client_main(pipe: Connection) -> None:
    """Entry point of a client process."""
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(_serve(pipe))


def command(pipe: Connection, name: str, arg: Any = None, timeout_s: float = 300) -> Any:
    pipe.send((name, arg))
    if not pipe.poll(timeout_s):
        raise TimeoutError(f"client process did not answer {name!r} within {timeout_s} s")
    return pipe.recv()
