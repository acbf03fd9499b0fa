"""A TCP proxy that can make the connections it carries go half-open.

Quiet faults are the ones loud fault tests miss: a NAT or load-balancer entry
expires, a failover happens without a RST, and a connection stays open while
nothing arrives on it any more. This proxy sits between a process and its Redis
and, on cue, turns connections into exactly that: both sockets stay open, every
byte sent either way is read and dropped, nothing is ever answered or closed.

- `cut()` silences every connection open now (new ones still work: the fault of
  an expired NAT entry);
- `cut(carrying=b"XREAD")` silences only the connections that have sent that
  command, now and from then on (the fault of one connection, such as a
  blocking reader, while its neighbours work);
- `cut(new_connections=True)` also silences every connection made afterwards
  (the host is gone for good);
- `heal()` lets new connections through again; silenced ones stay silent, as a
  half-open connection never comes back.

It runs on an event loop in a thread of its own, so sync and async tests and
the real processes under test can all use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field

from cli.redis_server import free_port


@dataclass(eq=False)
class _Link:
    """One client connection and its upstream; `silent` drops everything from then on."""

    sent: bytearray = field(default_factory=bytearray)
    silent: bool = False
    writers: list[asyncio.StreamWriter] = field(default_factory=list)


class BlackholeProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._links: set[_Link] = set()
        self._carrying: bytes | None = None
        self._cut_new = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._silenced = 0

    # -- control, from any thread --------------------------------------------------------

    def start(self) -> BlackholeProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=5)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def cut(self, *, carrying: bytes | None = None, new_connections: bool = False) -> None:
        self._loop.call_soon_threadsafe(self._cut, carrying, new_connections)

    def heal(self) -> None:
        def clear() -> None:
            self._carrying = None
            self._cut_new = False

        self._loop.call_soon_threadsafe(clear)

    @property
    def silenced(self) -> int:
        """How many connections have been made mute so far (closed ones included)."""
        return self._silenced

    # -- on the proxy's loop -------------------------------------------------------------

    def _cut(self, carrying: bytes | None, new_connections: bool) -> None:
        self._carrying = carrying
        self._cut_new = new_connections
        for link in self._links:
            if carrying is None or carrying in link.sent:
                self._silence(link)

    def _silence(self, link: _Link) -> None:
        if not link.silent:
            link.silent = True
            self._silenced += 1

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            for writer in link.writers:
                writer.close()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        link = _Link()
        if self._cut_new and self._carrying is None:
            self._silence(link)
        # Known before its upstream is connected: the client's connection is open
        # already, so a cut from now on must silence it (it once slipped through
        # while the proxy waited for Redis, and stayed working).
        self._links.add(link)
        try:
            upstream_r, upstream_w = await asyncio.open_connection(
                self.target_host, self.target_port
            )
        except OSError:
            self._links.discard(link)
            client_w.close()
            return
        link.writers = [client_w, upstream_w]
        try:
            await asyncio.gather(
                self._pipe(client_r, upstream_w, link, outbound=True),
                self._pipe(upstream_r, client_w, link, outbound=False),
            )
        finally:
            self._links.discard(link)
            for writer in link.writers:
                writer.close()

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: _Link,
        *,
        outbound: bool,
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if outbound:
                    link.sent += data[-4096:]
                    del link.sent[:-8192]
                    if self._carrying is not None and self._carrying in link.sent:
                        self._silence(link)
                if link.silent:
                    continue  # read and drop: the peer sees an open, mute connection
                writer.write(data)
                await writer.drain()
        # The client hung up (it gave up on a silent connection), or a working
        # connection closed: pass it on. A silent one hides Redis's close.
        if outbound or not link.silent:
            for other in link.writers:
                other.close()
