"""The hub's reader on a Redis Cluster: sharded pub/sub per node, the stream read only on gaps.

Why another reader: on a Cluster one XREAD can only cover streams of one slot, so
the shared multi-key XREAD of api/streaming/hub.py cannot follow every watched
stream at once. This follows Centrifugo's Redis engine instead:

- The worker's write script appends to the stream and, in the same script,
  SPUBLISHes the new entries to the generation's channel (services/keys.live,
  same hash tag as the stream, so same slot and same node), together with the id
  of the entry before them (services/store.py).
- Each API process holds one plain connection per cluster master (redis-py 5 has
  no async sharded pub/sub: SSUBSCRIBE is sent as a command and the pushes are
  read from the connection), and SSUBSCRIBEs there once per watched stream,
  whatever its number of viewers. Redis work per event per process is one push,
  and the process holds O(masters) connections.
- The stream stays the source of truth; pub/sub only says what is new. The stream
  is read (XRANGE, through the store's cluster client) on attach (once the
  subscription is confirmed, which closes the window between reading the tail's
  cursor and subscribing), when a message's previous id is not the tail's cursor
  (a lost or reordered message: a gap), and after a reconnect or a slot move
  (MOVED in reply to SSUBSCRIBE, or an `sunsubscribe` push when a slot migrates).
  A lost message is a gap, never a loss.
- Every connection has a reply bound: a PING every third of it, so a silent
  (half-open) connection fails, reconnects, resubscribes and resyncs. After a
  failover the slot map is refreshed and each channel moves to its new master.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio.connection import Connection
from redis.crc import key_slot
from redis.exceptions import RedisError, ResponseError

from api.metrics import ApiMetrics
from api.streaming.cursor import cursor_key
from api.streaming.hub import StreamHub, _Tail
from services import keys
from services.background import Backoff
from services.events import stored_event_from_entry
from services.redis_connections import (
    ClusterUnavailable,
    StreamsCluster,
    is_redis_failure,
    keepalive_options,
)
from services.store import GenerationStore

log = logging.getLogger(__name__)

Address = tuple[str, int]


@dataclass(eq=False)
class _NodeLink:
    """One pub/sub connection to one master and the channels subscribed on it."""

    address: Address
    channels: set[str] = field(default_factory=set)
    connection: Connection | None = None
    task: asyncio.Task[None] | None = None
    answered: bool = False  # the current connection has replied (its failure is a blip)


def _running(link: _NodeLink) -> bool:
    return link.task is not None and not link.task.done()


class ShardedStreamHub(StreamHub):
    """A StreamHub whose reader is sharded pub/sub on a Redis Cluster (see module doc).

    Every watched stream's channel is, at any moment, either on the link of the
    master its slot map names, or parked until a master is known for it; the
    supervisor (`_read_forever`) re-homes parked channels and, as a last line,
    parks any channel whose link is not running, so no stream can go unheard.
    """

    def __init__(
        self,
        store: GenerationStore,
        cluster: StreamsCluster,
        metrics: ApiMetrics,
        *,
        reply_timeout_s: float = 5.0,
        **options: Any,
    ) -> None:
        super().__init__(store, None, metrics, reply_margin_s=reply_timeout_s, **options)
        self._cluster = cluster
        self._reply_timeout_s = reply_timeout_s
        # The pub/sub links log in and encrypt as the cluster client's own connections do.
        options = cluster.connection_kwargs
        self._connection_class: type[Connection] = options.get("connection_class", Connection)
        self._credentials = {
            name: value
            for name, value in options.items()
            if name in ("username", "password", "credential_provider") or name.startswith("ssl_")
        }
        self.stall_after_s = reply_timeout_s * 2
        self._links: dict[Address, _NodeLink] = {}
        self._channel_tail: dict[str, _Tail] = {}
        self._channel_link: dict[str, _NodeLink] = {}
        self._parked: set[str] = set()
        self._rehome = asyncio.Event()
        self._resyncs: set[asyncio.Task[None]] = set()

    # -- the hooks of StreamHub --------------------------------------------------------------

    @property
    def reader_silence_s(self) -> float:
        # With nothing subscribed there is nothing to hear; otherwise the PINGs keep
        # every live connection talking at least every third of the reply bound.
        if not any(link.channels for link in self._links.values()):
            return 0.0
        return time.monotonic() - self._last_reply

    async def _on_tail_created(self, tail: _Tail) -> None:
        channel = keys.live(tail.gen_id)
        self._channel_tail[channel] = tail
        self._assign(channel)

    def _on_tail_dropped(self, tail: _Tail) -> None:
        channel = keys.live(tail.gen_id)
        if self._channel_tail.get(channel) is not tail:
            return
        del self._channel_tail[channel]
        self._parked.discard(channel)
        link = self._unlink(channel)
        if link is not None:
            self._send(link, "SUNSUBSCRIBE", channel)

    async def _read_forever(self) -> None:
        """The supervisor: re-homes parked channels, audits the links, and owns them
        (they run as tasks of their own, all ended with this one)."""
        backoff = Backoff(first_s=0.1, cap_s=2.0)
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._rehome.wait(), self._reply_timeout_s)
                self._rehome.clear()
                try:
                    settled = await self._supervise_once()
                except Exception:  # its end would end every link: it must outlive anything
                    self._metrics.hub_errors.inc()
                    log.exception("hub: supervising the pub/sub links failed; retrying")
                    settled = False
                if settled:
                    backoff.reset()
                else:  # still no master known for some: the failover is not over
                    await backoff.sleep()
                    self._rehome.set()
        finally:
            for task in [*(link.task for link in self._links.values()), *self._resyncs]:
                if task is not None:
                    task.cancel()
            for link in self._links.values():
                if link.task is not None:
                    with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                        await link.task
            self._links.clear()

    async def _supervise_once(self) -> bool:
        """Audit the links, then subscribe the parked channels whose master is known now;
        False while some stay parked."""
        self._audit()
        if not self._parked:
            return True
        with contextlib.suppress(RedisError):
            await self._refresh_slots()
        for channel in list(self._parked):
            self._parked.discard(channel)
            self._assign(channel)
        return not self._parked

    async def _close_reader(self) -> None:
        pass  # _read_forever's finally closes every link

    # -- channels and links ------------------------------------------------------------------

    def _assign(self, channel: str, address: Address | None = None) -> None:
        """Subscribe `channel` on the link of the master serving its slot (`address`, or
        the slot map's); park it when no master is known. No await: nothing can change
        the link tables halfway."""
        if address is None:
            try:
                address = self._cluster.master_address(channel)
            except ClusterUnavailable:
                self._park(channel)
                return
        old = self._channel_link.get(channel)
        if old is not None:
            if old.address == address:
                return
            old.channels.discard(channel)
        link = self._links.get(address)
        if link is None:
            link = self._links[address] = _NodeLink(address)
        link.channels.add(channel)
        self._channel_link[channel] = link
        if link.task is None or link.task.done():
            link.task = asyncio.create_task(self._serve(link), name=f"hub-node-{address[1]}")
        else:
            self._send(link, "SSUBSCRIBE", channel)

    def _unlink(self, channel: str) -> _NodeLink | None:
        link = self._channel_link.pop(channel, None)
        if link is not None:
            link.channels.discard(channel)
        return link

    def _park(self, channel: str) -> None:
        """No master is known for `channel` now: the supervisor subscribes it once one is."""
        self._unlink(channel)
        self._parked.add(channel)
        self._rehome.set()

    def _audit(self) -> None:
        """Park every watched channel whose link is not running (a bug if it ever happens)."""
        for channel in list(self._channel_tail):
            if channel in self._parked:
                continue
            link = self._channel_link.get(channel)
            if link is None or channel not in link.channels or not _running(link):
                self._metrics.hub_errors.inc()
                log.error("hub: %s had no running subscription; subscribing it again", channel)
                self._park(channel)

    async def _refresh_slots(self) -> None:
        self._metrics.hub_commands.labels("CLUSTER SLOTS").inc()
        await self._cluster.refresh_slots()

    def _send(self, link: _NodeLink, *args: str) -> None:
        """Queue a command on `link`; a failure shows up in its read loop, which resubscribes."""
        connection = link.connection
        if connection is None:
            return  # not connected: the link subscribes everything when it connects
        self._metrics.hub_commands.labels(args[0]).inc()
        task = asyncio.create_task(self._write(connection, args))
        self._resyncs.add(task)
        task.add_done_callback(self._resyncs.discard)

    @staticmethod
    async def _write(connection: Connection, args: tuple[str, ...]) -> None:
        # redis-py reconnects a closed connection on send: a link that has moved on
        # must not get a stray subscribed connection back that nobody reads.
        if not connection.is_connected:
            return
        # Any failure here breaks the connection's reads too, and the read loop handles it.
        with contextlib.suppress(Exception):
            await connection.send_command(*args, check_health=False)

    async def _serve(self, link: _NodeLink) -> None:
        """Connect, subscribe the link's channels, read pushes; on failure move and retry.

        Catches every failure, not only Redis's: this loop is the only thing that
        hears these channels, and it must not end while it has any."""
        backoff = Backoff(first_s=0.1, cap_s=2.0)
        failures = 0
        while link.channels:
            host, port = link.address
            connection = self._connection_class(
                host=host,
                port=port,
                **self._credentials,
                decode_responses=True,
                socket_timeout=self._reply_timeout_s,
                socket_connect_timeout=self._reply_timeout_s,
                socket_keepalive=True,
                socket_keepalive_options=keepalive_options(),
                client_name="tokenrelay-hub-pubsub",
            )
            link.answered = False
            try:
                await connection.connect()  # type: ignore[no-untyped-call]  # untyped in redis-py
                link.connection = connection
                for channel in list(link.channels):
                    self._metrics.hub_commands.labels("SSUBSCRIBE").inc()
                    await connection.send_command("SSUBSCRIBE", channel, check_health=False)
                await self._read_pushes(link, connection)
            except Exception as exc:
                self._metrics.hub_errors.inc()
                failures = failures + 1 if not link.answered else 1
                if is_redis_failure(exc):
                    log.warning("hub: pub/sub link to %s:%s failed (%s)", host, port, exc)
                else:
                    log.exception("hub: pub/sub link to %s:%s failed unexpectedly", host, port)
            finally:
                link.connection = None
                with contextlib.suppress(Exception):
                    await connection.disconnect()
            if failures > 1:
                # Really away (not a blip): end these viewers so their clients resume
                # (through 503s while the slots have no master) instead of waiting.
                for channel in list(link.channels):
                    tail = self._channel_tail.get(channel)
                    for viewer in list(tail.viewers if tail else ()):
                        viewer.fail()
                await backoff.sleep()
            await self._reassign(link)
        if self._links.get(link.address) is link and not link.channels:
            del self._links[link.address]

    async def _reassign(self, link: _NodeLink) -> None:
        """After a failure: refresh the slot map and move each channel to its master now."""
        with contextlib.suppress(RedisError):
            await self._refresh_slots()
        for channel in list(link.channels):
            self._assign(channel)

    async def _read_pushes(self, link: _NodeLink, connection: Connection) -> None:
        async def ping_forever() -> None:
            while True:
                await asyncio.sleep(self._reply_timeout_s / 3)
                await connection.send_command("PING", check_health=False)

        pinger = asyncio.create_task(ping_forever(), name="hub-node-ping")
        try:
            while True:
                if pinger.done():
                    pinger.result()
                try:
                    reply = await connection.read_response()
                except ResponseError as exc:
                    await self._on_error_reply(link, str(exc))
                    continue
                self._last_reply = time.monotonic()
                link.answered = True
                if not isinstance(reply, list) or not reply:
                    continue
                kind = reply[0]
                if kind == "smessage":
                    self._on_message(reply[1], reply[2])
                elif kind == "ssubscribe":
                    self._on_subscribed(reply[1])
                elif kind == "sunsubscribe":
                    self._on_unsubscribed(link, reply[1])
        finally:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pinger

    async def _on_error_reply(self, link: _NodeLink, message: str) -> None:
        """MOVED in reply to SSUBSCRIBE: that slot lives elsewhere now; move its channels
        there (the reply names the new master) and refresh the slot map for the others."""
        self._metrics.hub_errors.inc()
        parts = message.split()
        if len(parts) >= 3 and parts[0] in ("MOVED", "ASK") and parts[1].isdigit():
            slot = int(parts[1])
            host, _, port = parts[2].rpartition(":")
            moved = [c for c in link.channels if key_slot(c.encode()) == slot]
            with contextlib.suppress(RedisError):
                await self._refresh_slots()
            for channel in moved:
                if parts[0] == "MOVED" and port.isdigit():
                    self._assign(channel, (host or link.address[0], int(port)))
                else:  # ASK: mid-migration; subscribe where the map says once it is over
                    self._park(channel)
            return
        log.warning("hub: pub/sub error reply: %s", message)

    def _on_unsubscribed(self, link: _NodeLink, channel: str) -> None:
        """Our own SUNSUBSCRIBE, or the server's when the channel's slot migrated."""
        if channel not in self._channel_tail or self._channel_link.get(channel) is not link:
            return  # a tail we dropped
        self._park(channel)  # the supervisor learns where the slot went and subscribes there

    # -- events ------------------------------------------------------------------------------

    def _on_subscribed(self, channel: str) -> None:
        # From now on every append reaches us; read what came before it (attach,
        # reconnect, slot move), so no entry falls between cursor and subscription.
        tail = self._channel_tail.get(channel)
        if tail is not None:
            self._resync(tail)

    def _on_message(self, channel: str, payload: str) -> None:
        tail = self._channel_tail.get(channel)
        if tail is None:
            return
        try:
            items = json.loads(payload)
            previous = str(items[0])
            entries = [
                (str(items[i]), {"type": items[i + 1], "data": items[i + 2]})
                for i in range(1, len(items) - 2, 3)
            ]
        except (ValueError, TypeError, IndexError):
            self._metrics.hub_errors.inc()
            self._resync(tail)
            return
        if not entries:
            return
        cursor = cursor_key(tail.cursor)
        if cursor_key(entries[-1][0]) <= cursor:
            return  # already delivered (a resync read it first)
        if cursor_key(previous) > cursor:
            self._resync(tail)  # something between the cursor and this message is missing
            return
        try:
            batch = [stored_event_from_entry(i, f) for i, f in entries if cursor_key(i) > cursor]
        except (KeyError, ValueError) as exc:
            self._metrics.hub_errors.inc()
            log.error("hub: skipped a malformed message on %s (%s)", channel, type(exc).__name__)
            return
        self._deliver(tail, batch)

    def _resync(self, tail: _Tail) -> None:
        """Read the stream after the tail's cursor (once at a time per tail)."""
        if tail.resyncing:
            tail.resync_again = True
            return
        tail.resyncing = True
        task = asyncio.create_task(self._read_gap(tail), name=f"hub-resync-{tail.gen_id}")
        self._resyncs.add(task)
        task.add_done_callback(self._resyncs.discard)

    async def _read_gap(self, tail: _Tail) -> None:
        backoff = Backoff(first_s=0.1, cap_s=2.0)
        try:
            while self._tails.get(tail.gen_id) is tail:
                tail.resync_again = False
                try:
                    while self._tails.get(tail.gen_id) is tail:
                        self._metrics.hub_commands.labels("XRANGE").inc()
                        events = await self._store.read_after(tail.gen_id, tail.cursor, self._page)
                        floor = cursor_key(tail.cursor)
                        self._deliver(tail, [e for e in events if cursor_key(e.id) > floor])
                        if len(events) < self._page:
                            break
                except (RedisError, OSError) as exc:
                    self._metrics.hub_errors.inc()
                    log.warning("hub: reading %s failed (%s); retrying", tail.gen_id, exc)
                    tail.resync_again = True
                    await backoff.sleep()
                if not tail.resync_again:
                    return
        finally:
            tail.resyncing = False
