"""The floor under "API CPU per delivered event": one bare write per viewer.

Why: the delivery target (5 µs of API CPU per delivered event) is a cost per
viewer per event, and a viewer is one TCP connection. Whatever a relay does in
Python, it must hand each viewer's bytes to the kernel once per batch. This
measures that alone, with nothing else in the process: N loopback TCP
connections, a reader process on the other ends (as `bench.delivery`'s clients
are), and a loop that writes the same ~100-byte chunk to every connection, ten
times a second, as `bench.delivery` publishes. Two ways: `socket.send` in a
plain loop (the kernel's share and little else), and `transport.write` on the
uvloop transports the API's server runs on. The CPU per write (user and system,
from the process's own rusage) is what any relay with one socket per viewer pays
on this machine before its own work.

    python -m bench.send_floor                    # 1,000 and 3,000 connections
    python -m bench.send_floor --connections 10000
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import cast

import uvloop

_PAYLOAD = b"id: 1796416470681-0\nevent: delta\ndata: " + b"x" * 57 + b"\n\n"
CHUNK = b"%x\r\n%b\r\n" % (len(_PAYLOAD), _PAYLOAD)
"""About the size of one framed delta as the hub writes it (HTTP chunk included)."""


def read_forever(port: int, connections: int) -> None:
    """The reader process: connects `connections` sockets and drains them until EOF."""
    selector = selectors.DefaultSelector()
    for _ in range(connections):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, sock)
    sys.stdout.write("connected\n")
    sys.stdout.flush()
    open_count = connections
    while open_count:
        for key, _ in selector.select():
            sock = key.data
            if not sock.recv(65536):
                selector.unregister(sock)
                sock.close()
                open_count -= 1


def _reader(port: int, connections: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.send_floor", "--read", str(port), str(connections)],
        stdout=subprocess.PIPE,
        text=True,
    )


def _connected(reader: subprocess.Popen[str]) -> None:
    assert reader.stdout is not None and reader.stdout.readline().strip() == "connected"


class _Rounds:
    """Rounds of writes, `rate` per second for `seconds`, and the CPU they cost: `start`,
    then `round` until it answers None, then `stop`."""

    def __init__(self, rate: float, seconds: float) -> None:
        self.rate, self.seconds = rate, seconds
        self.writes = 0
        self.user_s = self.system_s = 0.0
        self._before = resource.getrusage(resource.RUSAGE_SELF)
        self._began = self._tick = 0.0

    def start(self) -> None:
        self._before = resource.getrusage(resource.RUSAGE_SELF)
        self._began = self._tick = time.monotonic()

    def round(self, write_all: Callable[[], int]) -> float | None:
        """One round of writes; the seconds until the next is due, or None when done."""
        self.writes += write_all()
        self._tick += 1 / self.rate
        if self._tick - self._began >= self.seconds:
            return None
        return max(0.0, self._tick - time.monotonic())

    def stop(self) -> None:
        after = resource.getrusage(resource.RUSAGE_SELF)
        self.user_s = after.ru_utime - self._before.ru_utime
        self.system_s = after.ru_stime - self._before.ru_stime


def with_socket_send(connections: int, rounds: _Rounds) -> None:
    listener = socket.create_server(("127.0.0.1", 0), backlog=connections)
    reader = _reader(listener.getsockname()[1], connections)
    socks = []
    try:
        for _ in range(connections):
            sock, _ = listener.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            socks.append(sock)
        _connected(reader)

        def write_all() -> int:
            for sock in socks:
                sock.send(CHUNK)
            return len(socks)

        rounds.start()
        while (wait := rounds.round(write_all)) is not None:
            time.sleep(wait)
        rounds.stop()
    finally:
        for sock in socks:
            sock.close()
        listener.close()
        reader.wait(30)


def with_uvloop_transports(connections: int, rounds: _Rounds) -> None:
    async def serve() -> None:
        transports: list[asyncio.WriteTransport] = []
        all_connected = asyncio.Event()

        class Accept(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                # uvloop's transports are not asyncio's classes, only alike.
                transports.append(cast(asyncio.WriteTransport, transport))
                if len(transports) == connections:
                    all_connected.set()

        loop = asyncio.get_running_loop()
        server = await loop.create_server(Accept, "127.0.0.1", 0, backlog=connections)
        reader = _reader(server.sockets[0].getsockname()[1], connections)
        try:
            await loop.run_in_executor(None, _connected, reader)
            await all_connected.wait()

            def write_all() -> int:
                for transport in transports:
                    transport.write(CHUNK)
                return len(transports)

            # Each round runs as a loop callback, as the hub's pass does.
            done = loop.create_future()

            def round_() -> None:
                wait = rounds.round(write_all)
                if wait is None:
                    done.set_result(None)
                else:
                    loop.call_later(wait, round_)

            rounds.start()
            loop.call_soon(round_)
            await done
            rounds.stop()
        finally:
            for transport in transports:
                transport.close()
            server.close()
            await asyncio.sleep(0.1)  # the closes happen on the loop
            await loop.run_in_executor(None, reader.wait, 30)

    uvloop.run(serve())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, action="append")
    parser.add_argument("--rate", type=float, default=10.0, help="writes per connection per second")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--read", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.read:
        read_forever(*args.read)
        return
    print("| connections | way | writes | user µs per write | system µs per write | total µs |")
    print("|---|---|---|---|---|---|")
    ways = {"socket.send": with_socket_send, "uvloop transport.write": with_uvloop_transports}
    for connections in args.connections or [1000, 3000]:
        for way, run in ways.items():
            rounds = _Rounds(args.rate, args.seconds)
            run(connections, rounds)
            user = rounds.user_s / rounds.writes * 1e6
            system = rounds.system_s / rounds.writes * 1e6
            print(
                f"| {connections} | {way} | {rounds.writes} | {user:.2f} | "
                f"{system:.2f} | {user + system:.2f} |"
            )


if __name__ == "__main__":
    main()
