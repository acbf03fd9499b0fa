"""The shared reader: one XREAD per API process for every watched stream, fanned out in memory.

Why it exists: a blocking XREAD per SSE connection makes Redis wake, and reply to,
every viewer for every event, so Redis cost grows with viewers. Here one task per
process tails every stream that has a viewer with a single multi-key blocking
XREAD, and copies each reply into bounded in-memory queues, one per viewer. Redis
work then grows with streams, not viewers.

Choices, and why:

- The blocking read runs on a dedicated connection (`single_connection_client`),
  never one from the command pool: a blocked read would pin a pooled connection,
  and a read cancelled half way (shutdown) must not hand a connection with an
  unread reply to someone else. redis-py disconnects a connection whose read is
  interrupted, and this one is ours alone, so the next read simply reconnects.
- A half-open connection (nothing arrives, nothing fails) must not stall every
  viewer of the process in silence. The read blocks for `HUB_BLOCK_S` only, and
  its connection gives up on a reply after that plus the ordinary reply margin
  (services/redis_connections.py); the read then starts again from the tails'
  cursors on a fresh connection. `reader_silence_s` tells readiness and metrics
  how long the reader has gone without a reply, so a stuck reader is visible;
  a read still pending at twice its bound (a fault inside the client library,
  not the network) is restarted by the idle sweep, and the read loop itself is
  supervised (services/background.py): neither a hang nor an unforeseen
  exception can leave the process's viewers on heartbeats alone.
- Waking the read when a stream gets its first viewer: the XREAD also watches a
  small per-process "wake" stream, and adding a tail XADDs to it. Because the
  reader passes the wake stream's last seen id (not `$`), an XADD that lands
  before Redis even starts the read still wakes it: there is no lost-wakeup race,
  which `CLIENT UNBLOCK` (a no-op if it arrives before the XREAD) would have, and
  no latency floor, which a short block timeout would add. It costs one XADD per
  newly tailed stream, nothing per viewer, and wakes are coalesced while one is
  pending.
- Joining with an old cursor, and the seam: a viewer first reads from Redis on its
  own cursor (XRANGE, command pool) until a short page says it has caught up;
  then it attaches to the live feed and notes the tail's cursor at that instant,
  `live_from`. Every entry after `live_from` will reach its queue (attaching and
  dispatching both run on the event loop, so no reply can slip between them). It
  reads `(last, live_from]` from Redis to close the seam, then takes its queue,
  skipping ids it already has. No gap, no duplicate.
- Slow viewers: the reader never awaits a viewer; it offers each batch to a
  bounded queue. A full queue detaches that viewer (a flag and a wake-up), so
  nobody else waits. The viewer drains what it has, reads from Redis on its own
  cursor until caught up, and attaches again with the same seam procedure.
- Caught-up native viewers are written by the hub itself: while such a viewer
  waits with an empty queue, the hub frames each live batch once and writes the
  same bytes to every such viewer's connection in its dispatch loop, with no
  task wake-up or ASGI send per viewer (api/streaming/direct.py says when that
  is exactly the ordinary path's output, and falls back to it otherwise).
- Heartbeats: a waiting viewer arms no timer; one sweep per process, a few
  times per heartbeat interval, wakes the viewers that have been quiet, so a
  delivery costs no timer to arm and cancel.
- Backlog reads share a small semaphore: a thousand clients resuming at once
  cost Redis a steady trickle of XRANGEs and the pool a few connections.
- A stream stops being tailed once its terminal event is dispatched, or when its
  last viewer leaves. A stream whose last entry is already terminal is never
  tailed at all.
- The reader is a backend: this class's multi-key XREAD is the default and the
  fast path on one Redis. On a Redis Cluster a multi-key XREAD must stay in one
  slot, so `api/streaming/sharded.py` replaces only the reading part (the hooks
  `_on_tail_created`, `_on_tail_dropped`, `_read_forever`) with sharded pub/sub;
  viewers, queues and the seam procedure above are the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from api.metrics import ApiMetrics
from api.streaming.cursor import START, cursor_key
from api.streaming.direct import DirectSink, chunked, native_frame
from services import keys
from services.background import BackgroundLoop, Backoff
from services.events import StoredEvent, stored_event_from_entry
from services.store import GenerationStore

log = logging.getLogger(__name__)

HUB_BLOCK_S: Final = 5.0
"""How long one shared read blocks: the idle cost is one XREAD per this, per process."""
WAKE_TTL_S: Final = 3600
"""The wake stream outlives its process by at most this (a SIGKILLed API cannot delete it)."""


async def empty_feed() -> AsyncGenerator[StoredEvent | None, None]:
    """A feed with no events, for a client that already has a finished stream's end."""
    return
    yield  # unreachable: makes this an (empty) async generator


class _Signal:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


IDLE: Final = _Signal("IDLE")
DETACHED: Final = _Signal("DETACHED")
CLOSED: Final = _Signal("CLOSED")


class Viewer:
    """One SSE connection's place in the fan-out: a bounded queue of event batches."""

    __slots__ = (
        "_batches",
        "_waiter",
        "capacity",
        "closed",
        "detached",
        "direct",
        "direct_last",
        "failed",
        "gen_id",
        "idle_s",
        "position",
        "queued",
        "sink",
        "waiting_since",
    )

    def __init__(self, gen_id: str, capacity: int) -> None:
        self.gen_id = gen_id
        self.capacity = capacity
        self.queued = 0
        self.detached = False
        self.closed = False
        self.failed = False
        self.idle_s = float("inf")
        self.waiting_since = 0.0
        # A list, not a deque: an idle viewer's empty deque costs 600 bytes more, and
        # the queue is short and bounded, so pop(0) moves few pointers.
        self._batches: list[list[StoredEvent]] = []
        self._waiter: asyncio.Future[None] | None = None
        self.sink: DirectSink | None = None
        """Where the hub may write this viewer's live events itself (api/streaming/direct.py)."""
        self.direct = False
        """True while parked on an empty queue with a sink: the hub writes, not the queue."""
        self.direct_last: str | None = None
        """The id of the last event the hub wrote directly, until the viewer takes note."""
        self.position = (0, 0)
        """The cursor (as a key) of the last event this viewer's client was given: the
        hub writes directly only what comes after it (a live batch can overlap what
        the viewer already read from Redis; the queue path filters that out too)."""

    def offer(self, batch: list[StoredEvent]) -> bool:
        """Queue `batch` unless that would pass the bound. Never blocks."""
        if self.queued + len(batch) > self.capacity:
            return False
        self._batches.append(batch)
        self.queued += len(batch)
        self.wake()
        return True

    def detach(self) -> None:
        self.detached = True
        self.wake()

    def close(self) -> None:
        self.closed = True
        self.wake()

    def fail(self) -> None:
        """End this viewer because Redis is unreachable (its follow() raises)."""
        self.failed = True
        self.close()

    async def next_batch(self) -> list[StoredEvent] | _Signal:
        """The next queued batch; DETACHED once the queue is drained after a detach;
        CLOSED when the hub stops; IDLE when the hub's idle sweep finds it quiet for
        `idle_s` (one sweep per process instead of a timer per wait)."""
        if self.closed:
            return CLOSED
        if not self._batches:
            if self.detached:
                return DETACHED
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            self.waiting_since = loop.time()
            # Everything given to this viewer so far has been written: the hub may
            # write what comes next straight to its connection.
            self.direct = self.sink is not None
            try:
                await waiter
            finally:
                self._waiter = None
                self.direct = False
            if self.closed:
                return CLOSED
            if not self._batches:
                return DETACHED if self.detached else IDLE
        batch = self._batches.pop(0)
        self.queued -= len(batch)
        return batch

    def reset(self) -> None:
        """Forget queue state before attaching again."""
        self._batches.clear()
        self.queued = 0
        self.detached = False
        self.direct = False

    def wake(self) -> None:
        # From here until its task has run, the viewer is no longer waiting with
        # everything written: whatever comes next goes through its queue, in order.
        self.direct = False
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


@dataclass(eq=False)
class _Tail:
    """A stream the reader follows: its cursor and the viewers attached to it."""

    gen_id: str
    key: str
    cursor: str
    viewers: set[Viewer] = field(default_factory=set)
    resyncing: bool = False
    """A backend is reading the stream from `cursor` to fill a gap (sharded reader)."""
    resync_again: bool = False


class StreamHub:
    """Follows generation streams for every SSE viewer of one API process."""

    def __init__(
        self,
        store: GenerationStore,
        reader: Redis | None,
        metrics: ApiMetrics,
        *,
        queue_events: int = 1024,
        page: int = 500,
        block_s: float = HUB_BLOCK_S,
        reply_margin_s: float = 5.0,
        replica_id: str | None = None,
        max_concurrent_reads: int = 8,
    ) -> None:
        """`store` reads backlogs and wakes the reader (command pool); `reader` must be a
        dedicated single-connection client used only here, whose reply timeout is
        `block_s + reply_margin_s` (services.redis_connections.blocking_reader)."""
        self._store = store
        self._reader = reader
        self._metrics = metrics
        self._queue_events = queue_events
        self._page = page
        self._block_ms = int(block_s * 1000)
        self.stall_after_s = block_s + reply_margin_s
        self._last_reply = 0.0
        self._read_started: float | None = None
        """When the outstanding shared read was sent (None between reads)."""
        self.replica_id = replica_id or secrets.token_hex(8)
        self._wake_key = keys.hub_wake(self.replica_id)
        self._wake_cursor = START
        self._wake_pending = False
        self._tails: dict[str, _Tail] = {}
        self._by_key: dict[str, str] = {}
        self._viewers: Counter[str] = Counter()
        self._all: set[Viewer] = set()
        self._reader_task = BackgroundLoop("hub-reader", self._read_forever)
        self._sweeper = BackgroundLoop("hub-idle-sweep", self._sweep_idle)
        self._closed = False
        self._read_slots = asyncio.Semaphore(max_concurrent_reads)
        self._idle_check_s = 1.0
        self.on_viewers_changed: list[Callable[[str, int], None]] = []
        metrics.watch_viewers(lambda: dict(self._viewers))
        metrics.watch_reader(lambda: self.reader_silence_s)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._last_reply = time.monotonic()
        self._reader_task.start()
        self._sweeper.start()

    async def stop(self) -> None:
        """Close every viewer (their streams end with a retry hint) and stop reading."""
        self.close_viewers()
        await self._reader_task.stop()
        await self._sweeper.stop()
        await self._close_reader()

    async def _close_reader(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._store.drop_wake_stream(self._wake_key)
        if self._reader is not None:
            await self._reader.aclose()

    def close_viewers(self) -> None:
        """Wake every viewer with CLOSED, and refuse new ones (used when draining)."""
        self._closed = True
        for viewer in list(self._all):
            viewer.close()

    # -- what routes and presence use --------------------------------------------------------

    @property
    def reader_silence_s(self) -> float:
        """Seconds since the shared read last got a reply (an empty one after its
        block time counts): past `stall_after_s`, the reader is stuck."""
        return time.monotonic() - self._last_reply

    @property
    def reader_stalled(self) -> bool:
        return self.reader_silence_s > self.stall_after_s

    @contextlib.asynccontextmanager
    async def subscribe(self, gen_id: str) -> AsyncIterator[Viewer]:
        """A viewer of `gen_id` for the duration of the block; always unsubscribed."""
        viewer = Viewer(gen_id, self._queue_events)
        if self._closed:
            viewer.close()
        self._all.add(viewer)
        self._viewers[gen_id] += 1
        self._notify(gen_id)
        try:
            yield viewer
        finally:
            self._detach(viewer)
            self._all.discard(viewer)
            self._viewers[gen_id] -= 1
            if self._viewers[gen_id] <= 0:
                del self._viewers[gen_id]
            self._notify(gen_id)

    async def follow(
        self, gen_id: str, cursor: str, *, idle_s: float, sink: DirectSink | None = None
    ) -> AsyncGenerator[StoredEvent | None, None]:
        """Events after `cursor`, oldest first; `None` after `idle_s` of quiet (send a
        heartbeat); ends after the terminal event, or early when the hub closes.
        With a `sink`, live events may instead be written by the hub straight to the
        response (api/streaming/direct.py); they are then not yielded here."""
        async with self.subscribe(gen_id) as viewer:
            viewer.idle_s = idle_s
            viewer.sink = sink
            self._idle_check_s = min(self._idle_check_s, idle_s / 4)
            last = cursor
            while not viewer.closed:
                # 1. Catch up from Redis on our own cursor, outside the live feed.
                while True:
                    events = await self._read_range(gen_id, last, "+")
                    for event in events:
                        yield event
                        last = event.id
                        if event.is_terminal:
                            return
                    if len(events) < self._page or viewer.closed:
                        break
                if viewer.closed:
                    return
                # 2. Attach, then close the seam up to the tail's cursor at that instant.
                live_from = await self._attach(viewer)
                while cursor_key(last) < cursor_key(live_from):
                    events = await self._read_range(gen_id, last, live_from)
                    for event in events:
                        yield event
                        last = event.id
                        if event.is_terminal:
                            return
                    if len(events) < self._page:
                        break
                # 3. Live, until the stream ends, the queue overflows or the hub closes.
                last_key = cursor_key(last)
                while True:
                    viewer.position = last_key
                    batch = await viewer.next_batch()
                    if viewer.direct_last is not None:  # the hub wrote these itself
                        last, viewer.direct_last = viewer.direct_last, None
                        last_key = cursor_key(last)
                    if batch is IDLE:
                        yield None
                        continue
                    if not isinstance(batch, list):
                        break  # DETACHED: back to step 1; CLOSED: the loop condition ends it
                    if cursor_key(batch[0].id) <= last_key:  # rare: overlaps what we have
                        batch = [e for e in batch if cursor_key(e.id) > last_key]
                        if not batch:
                            continue
                    for event in batch:
                        yield event
                        if event.is_terminal:
                            return
                    last = batch[-1].id
                    last_key = cursor_key(last)
                if batch is DETACHED:
                    self._metrics.slow_switches.inc()
            if viewer.failed:
                raise RedisConnectionError("the shared stream read lost Redis")

    # -- internals -------------------------------------------------------------------------

    def _notify(self, gen_id: str) -> None:
        for callback in self.on_viewers_changed:
            callback(gen_id, self._viewers.get(gen_id, 0))

    async def _read_range(self, gen_id: str, after: str, until: str) -> list[StoredEvent]:
        # Bounded, so a crowd reconnecting at once (after a drain elsewhere) neither
        # floods Redis nor grows the command pool by one connection per viewer.
        async with self._read_slots:
            self._metrics.backlog_reads.inc()
            self._metrics.hub_commands.labels("XRANGE").inc()
            return await self._store.read_after(gen_id, after, self._page, until=until)

    async def _attach(self, viewer: Viewer) -> str:
        """Put `viewer` on the live feed; returns the cursor after which its queue is complete."""
        viewer.reset()
        tail = self._tails.get(viewer.gen_id)
        created = False
        if tail is None:
            async with self._read_slots:
                self._metrics.hub_commands.labels("XREVRANGE").inc()
                head = await self._store.last_event(viewer.gen_id)
            tail = self._tails.get(viewer.gen_id)  # another viewer may have won the race
            if tail is None:
                last = head.id if head else START
                if head is not None and head.is_terminal:
                    return last  # finished: the seam read delivers the end
                tail = _Tail(viewer.gen_id, keys.events(viewer.gen_id), last)
                self._tails[viewer.gen_id] = tail
                self._by_key[tail.key] = viewer.gen_id
                created = True
        # Attach and read the cursor in one step of the event loop: every later
        # dispatch of this tail reaches the viewer.
        tail.viewers.add(viewer)
        live_from = tail.cursor
        if created:
            await self._on_tail_created(tail)
        return live_from

    async def _on_tail_created(self, tail: _Tail) -> None:
        """The backend starts following `tail` from its cursor (here: wake the XREAD)."""
        await self._wake_reader()

    def _on_tail_dropped(self, tail: _Tail) -> None:
        """The backend stops following `tail` (the XREAD simply leaves it out next time)."""

    def _detach(self, viewer: Viewer) -> None:
        tail = self._tails.get(viewer.gen_id)
        if tail is None:
            return
        tail.viewers.discard(viewer)
        if not tail.viewers:
            self._drop_tail(tail)

    def _drop_tail(self, tail: _Tail) -> None:
        if self._tails.get(tail.gen_id) is tail:
            del self._tails[tail.gen_id]
            self._by_key.pop(tail.key, None)
            self._on_tail_dropped(tail)

    async def _wake_reader(self) -> None:
        if self._wake_pending:
            return  # the reader has not re-read the tail set since the last wake
        self._wake_pending = True
        self._metrics.hub_commands.labels("XADD").inc()
        try:
            await self._store.wake_stream_reader(self._wake_key, WAKE_TTL_S)
        except (RedisError, OSError):
            log.warning("hub: could not wake the reader; it picks up new streams on its next read")

    async def _sweep_idle(self) -> None:
        """Wake viewers that have waited `idle_s` (minus one sweep) so they send a ping;
        restart a shared read that outlived twice its own reply bound."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._idle_check_s)
            now = loop.time()
            for viewer in self._all:
                if now - viewer.waiting_since >= viewer.idle_s - self._idle_check_s:
                    viewer.wake()
            await self._restart_a_stuck_read()

    async def _restart_a_stuck_read(self) -> None:
        """The read's connection gives up after `stall_after_s`; a read still pending at
        twice that is stuck inside the client library, and every viewer with it."""
        started = self._read_started
        if started is not None and time.monotonic() - started > 2 * self.stall_after_s:
            log.error(
                "hub: the shared read has been pending for %.0f s; starting it again",
                time.monotonic() - started,
            )
            self._read_started = None
            self._metrics.hub_errors.inc()
            await self._reader_task.restart()

    async def _read_forever(self) -> None:
        """The shared read loop. One failed read is retried at once (a killed
        connection reconnects with no gap); a second in a row means Redis is really
        away, and the live viewers are ended so their clients get a retry hint and
        resume, through a 503 while Redis is down, instead of waiting in silence."""
        backoff = Backoff(first_s=0.1, cap_s=2.0)
        failures = 0
        while True:
            streams: dict[Any, Any] = {self._wake_key: self._wake_cursor}
            self._wake_pending = False
            for tail in self._tails.values():
                streams[tail.key] = tail.cursor
            assert self._reader is not None, "the XREAD backend needs its reader"
            try:
                self._metrics.hub_commands.labels("XREAD").inc()
                self._read_started = time.monotonic()
                reply = await self._reader.xread(streams, count=self._page, block=self._block_ms)
                self._read_started = None
                self._last_reply = time.monotonic()
            except (RedisError, OSError) as exc:
                self._read_started = None
                self._metrics.hub_errors.inc()
                failures += 1
                log.warning("hub: shared read failed (%s); retrying", type(exc).__name__)
                if failures == 1:
                    continue
                for tail in self._tails.values():
                    for viewer in list(tail.viewers):
                        viewer.fail()
                await backoff.sleep()
                continue
            if failures:
                log.info("hub: shared read recovered on %s", self._reader_address())
            backoff.reset()
            failures = 0
            for key, entries in reply or ():
                try:
                    self._dispatch(key, entries)
                except (KeyError, ValueError, UnicodeDecodeError) as exc:
                    # An entry not written by tokenrelay is skipped, rather than
                    # stopping every stream of the process.
                    self._metrics.hub_errors.inc()
                    log.error("hub: skipped a malformed entry in %s (%s)", key, type(exc).__name__)
                    self._skip_past(key, entries)

    def _reader_address(self) -> str:
        """host:port the reader's connection is on (after a failover: which server it found)."""
        connection = self._reader.connection if self._reader is not None else None
        if connection is None:
            return "no connection"
        return f"{getattr(connection, 'host', '?')}:{getattr(connection, 'port', '?')}"

    def _skip_past(self, key: str, entries: list[Any]) -> None:
        gen_id = self._by_key.get(key)
        tail = self._tails.get(gen_id) if gen_id is not None else None
        if tail is not None and entries:
            tail.cursor = str(entries[-1][0])

    def _dispatch(self, key: str, entries: list[Any]) -> None:
        if key == self._wake_key:
            self._wake_cursor = entries[-1][0]
            return
        gen_id = self._by_key.get(key)
        tail = self._tails.get(gen_id) if gen_id is not None else None
        if tail is None:
            return  # nobody watches any more
        floor = cursor_key(tail.cursor)
        batch = [
            stored_event_from_entry(entry_id, fields)
            for entry_id, fields in entries
            if cursor_key(entry_id) > floor  # a tail re-created mid-read starts later
        ]
        self._deliver(tail, batch)

    def _deliver(self, tail: _Tail, batch: list[StoredEvent]) -> None:
        """Offer `batch` (entries after the tail's cursor, in order) to every viewer."""
        if not batch:
            return
        tail.cursor = batch[-1].id
        framed: bytes | None = None  # the batch as one HTTP chunk, built for the first taker
        first, end = cursor_key(batch[0].id), cursor_key(batch[-1].id)
        last_id, terminal = batch[-1].id, batch[-1].is_terminal
        written = 0  # connections the hub wrote the batch to itself
        for viewer in list(tail.viewers):
            if viewer.direct and not terminal and first > viewer.position:
                assert viewer.sink is not None
                if framed is None:
                    framed = chunked(b"".join(native_frame(event) for event in batch))
                if viewer.sink.write(framed):
                    viewer.direct_last = last_id
                    viewer.position = end
                    written += 1
                    continue
                viewer.direct = False  # its client is not reading: the queue, as before
            if not viewer.offer(batch):
                tail.viewers.discard(viewer)
                viewer.detach()
        if written:
            self._metrics.delivery.add_direct(batch, written)
        if terminal or not tail.viewers:
            self._drop_tail(tail)
