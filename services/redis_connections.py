"""The one way tokenrelay opens a Redis connection, so that none can wait forever.

Why this module exists: a connection can go half-open (a NAT or load-balancer
entry expires, a failover happens without a RST): the socket stays open and
nothing ever arrives. A client without a bound then waits forever, and whatever
waits on it (a worker's publish, the API's shared reader) stalls with it while
everything else looks healthy. Every connection built here therefore has:

- a connect timeout, and TCP keepalive (the kernel notices a vanished peer even
  on an idle connection);
- a bound on how long a reply may take once one is due: `redis_timeout_s` for
  ordinary commands, block time plus that margin for the hub's blocking reader.
  A timed-out command raises `redis.exceptions.TimeoutError` and its connection
  is dropped, so the next command reconnects;
- a bounded command pool: an outage in which many requests pile up must not
  leave the process holding that many connections for the rest of its life.

Pub/sub connections have no reply due while idle; `live_messages` pings them
so that their silence is noticed the same way.

Two roles (README, "Scaling past one Redis"): the control Redis (arq's queue, the
global indexes, keys, limits, cancel pub/sub) at `redis_url`, or found through
Sentinel, and the streams Redis (every generation's keys) at `streams_redis_url`,
which may be a Redis Cluster. Unset, both roles share one client and one pool.
Sentinel-managed pools ask a Sentinel for the master on each new connection, so a
failover costs the connections open at the time and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import unquote

from arq.connections import ArqRedis
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.connection import parse_url
from redis.asyncio.sentinel import Sentinel
from redis.crc import key_slot
from redis.exceptions import (
    ClusterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.config import Settings
from services.sentinel_master import SentinelMasterPool


def keepalive_options() -> dict[int, int]:
    """Probe an idle connection after 10 s, every 5 s, and give up after 3 misses.

    Only the options this platform has (they are Linux names; macOS lacks some).
    """
    wanted = {"TCP_KEEPIDLE": 10, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 3}
    return {getattr(socket, name): value for name, value in wanted.items() if hasattr(socket, name)}


def _connection_kwargs(settings: Settings, name: str, reply_timeout_s: float) -> dict[str, Any]:
    return {
        "socket_timeout": reply_timeout_s,
        "socket_connect_timeout": settings.redis_timeout_s,
        "socket_keepalive": True,
        "socket_keepalive_options": keepalive_options(),
        "client_name": name,
    }


def _sentinel_addresses(settings: Settings) -> list[tuple[str, int]]:
    addresses = []
    for item in (settings.redis_sentinels or "").split(","):
        host, _, port = item.strip().rpartition(":")
        if host:
            addresses.append((host, int(port)))
    return addresses


def _bounded_pool(
    settings: Settings, name: str, *, decode: bool, max_connections: int | None
) -> BlockingConnectionPool:
    # A full pool makes a command wait for a free connection, at most the reply
    # timeout, then fail like any other Redis error (503 in the API).
    kwargs = _connection_kwargs(settings, name, settings.redis_timeout_s)
    if settings.redis_sentinels and settings.redis_sentinel_master:
        # db, username and password still come from redis_url; its host is ignored.
        url_options = {k: v for k, v in parse_url(settings.redis_url).items() if k != "host"}
        url_options.pop("port", None)
        sentinel = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
            _sentinel_addresses(settings),
            sentinel_kwargs={
                "socket_timeout": settings.redis_timeout_s,
                "socket_connect_timeout": settings.redis_timeout_s,
                "password": settings.redis_sentinel_password,
            },
        )
        pool: BlockingConnectionPool = SentinelMasterPool(
            settings.redis_sentinel_master,
            sentinel,
            max_connections=max_connections or settings.redis_max_connections,
            timeout=settings.redis_timeout_s,
            decode_responses=decode,
            check_connection=True,
            **url_options,
            **kwargs,
        )
        return pool
    return BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=max_connections or settings.redis_max_connections,
        timeout=settings.redis_timeout_s,
        decode_responses=decode,
        **kwargs,
    )


def command_client(settings: Settings, name: str, *, max_connections: int | None = None) -> Redis:
    """A pooled client for ordinary commands, whose replies are due within `redis_timeout_s`."""
    pool = _bounded_pool(settings, name, decode=True, max_connections=max_connections)
    return Redis.from_pool(pool)


def queue_client(settings: Settings, name: str) -> ArqRedis:
    """arq's client (bytes, not str), with the same bounds as every other command client.

    arq's own `create_pool` sets no reply timeout, so a half-open connection would
    stop a worker from ever picking up a job again.
    """
    pool = _bounded_pool(settings, name, decode=False, max_connections=None)
    client = ArqRedis(pool, default_queue_name=settings.queue_name)
    client.auto_close_connection_pool = True
    return client


def blocking_reader(settings: Settings, name: str, *, block_s: float) -> Redis:
    """A dedicated connection for one blocking read loop (`XREAD BLOCK`) on the streams Redis.

    The reply is due within the block time, plus the ordinary margin: past that
    the read fails, the connection is dropped, and the loop reads again from its
    cursor on a fresh one. (Not for a cluster: see api/streaming/sharded.py.)
    """
    kwargs = _connection_kwargs(settings, name, block_s + settings.redis_timeout_s)
    if settings.redis_sentinels and not settings.streams_redis_url:
        pool = _bounded_pool(settings, name, decode=True, max_connections=4)
        pool.connection_kwargs.update(kwargs)
        return Redis(connection_pool=pool, single_connection_client=True)
    reader: Redis = Redis.from_url(
        settings.streams_redis_url or settings.redis_url,
        decode_responses=True,
        single_connection_client=True,
        **kwargs,
    )
    return reader


class ClusterUnavailable(RedisConnectionError):
    """The cluster cannot serve a slot right now (a master died and no replica took over yet).

    redis-py raises `RedisClusterException`, which is not a `RedisError`; as one, it
    takes the same paths as any outage: a 503 in the API, an abandoned attempt that a
    reaper restarts in a worker.
    """


_PASSING_REPLIES = ("READONLY", "MASTERDOWN", "LOADING", "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS")
"""Error replies a Redis gives while a failover or a restart is under way."""

_PASSING_REPLY_TYPES = (ClusterDownError, TryAgainError, ReadOnlyError)
"""The same replies as redis-py's parsers raise them: as their own classes, with the
code cut off the message ("The cluster is down"). MASTERDOWN is a ClusterDownError;
LOADING a BusyLoadingError, which is a ConnectionError."""


def is_passing_outage(exc: BaseException) -> bool:
    """Whether `exc`, raised by a Redis call, means "Redis cannot serve this right now":
    a lost connection (including the forms redis-py lets escape as other types),
    or a reply that only a failover or a restart in progress gives."""
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return True
    if isinstance(exc, _PASSING_REPLY_TYPES):
        return True
    if isinstance(exc, ResponseError):
        return _reply_code(exc) in _PASSING_REPLIES
    return isinstance(exc, AttributeError | RuntimeError) and _dropped_mid_command(exc)


def is_redis_full(exc: BaseException) -> bool:
    """Whether `exc` is Redis refusing a write at its `maxmemory` (noeviction).

    Redis 7 passes the OOM reply of a command inside a script on as is, which
    redis-py raises as `OutOfMemoryError`; Redis 6.2 wraps it in the script's own
    error ("@user_script: 8: -OOM command not allowed …"), a plain `ResponseError`.
    """
    if isinstance(exc, OutOfMemoryError):
        return True
    return isinstance(exc, ResponseError) and _reply_code(exc) == "OOM"


_IN_A_SCRIPT = re.compile(r"@user_script: ?\d+: -([A-Z]+) ")


def _reply_code(exc: ResponseError) -> str:
    """The error code of a reply ("READONLY", "OOM"…), also where Redis 6.2 wrapped
    it in a script's error ("@user_script: 8: -OOM command not allowed …")."""
    message = str(exc)
    wrapped = _IN_A_SCRIPT.search(message)
    return wrapped.group(1) if wrapped else message.split(" ", 1)[0]


def is_redis_failure(exc: BaseException) -> bool:
    """Whether `exc`, raised by a Redis call, is Redis failing (any `RedisError` or
    socket error, or a lost connection in one of the forms redis-py lets escape as
    other types): what a background loop waits out instead of crashing on."""
    return isinstance(exc, RedisError | OSError) or is_passing_outage(exc)


def _dropped_mid_command(exc: Exception) -> bool:
    """redis-py 5's cluster client disconnects every connection to a node that failed,
    including ones another task is writing on at that moment. That write then fails
    inside redis-py with an AttributeError (its writer is gone), or in the event
    loop's transport with a RuntimeError (uvloop: "the handler is closed"); a
    topology refresh could fail with a RuntimeError inside redis-py too (the cause
    seen is prevented by StreamsCluster, below). Each is a lost connection (a retry
    after it works), when raised during a redis-py call."""
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    if isinstance(exc, AttributeError):
        return bool(frames) and "redis" in frames[-1]
    # A RuntimeError raised by redis-py's cluster code itself: its topology refresh
    # iterates a dict that a concurrent refresh changes ("dictionary changed size").
    raised_in_redis = bool(frames) and "/redis/" in frames[-1]
    return raised_in_redis or ("closed" in str(exc) and any("/redis/" in f for f in frames))


@contextlib.contextmanager
def _cluster_failures_as_unavailable() -> Iterator[None]:
    """Inside: redis-py's cluster failures that are not `RedisError`s (its own
    `RedisClusterException`, a connection dropped mid-command) become `ClusterUnavailable`."""
    try:
        yield
    except RedisClusterException as exc:
        raise ClusterUnavailable(str(exc)) from exc
    except (AttributeError, RuntimeError) as exc:
        if not _dropped_mid_command(exc):
            raise
        raise ClusterUnavailable("connection dropped mid-command") from exc


class _ClusterPipeline(ClusterPipeline):
    async def execute(self, *args: Any, **kwargs: Any) -> list[Any]:
        with _cluster_failures_as_unavailable():
            return await super().execute(*args, **kwargs)


class _SnapshotNodes(dict[str, ClusterNode]):
    """A node table whose `values()` is a copy, safe to iterate across awaits.

    redis-py's topology refresh awaits `CLUSTER SLOTS` inside a loop over its
    startup nodes, while any failing command removes its node from that table:
    iterating the live view then raises "dictionary changed size during iteration"
    and the refresh fails, again and again, for as long as commands keep failing.
    """

    def values(self) -> list[ClusterNode]:  # type: ignore[override]  # a list, not a view
        return list(super().values())


class StreamsCluster(RedisCluster):
    """redis-py's cluster client whose every failure is a `RedisError`, and that can
    always find the cluster again after a failover.

    redis-py forgets a node as a place to discover the topology from each time a
    command to it fails, and only relearns the node list on a successful refresh.
    When a master dies, the disconnects it triggers make commands to live nodes fail
    too, which can empty that list: the client then reports the cluster unreachable
    forever, although every other node answers. So before each refresh, every node
    this client has ever seen (and the configured seeds) is a place to ask again.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        manager = self.nodes_manager
        manager.startup_nodes = _SnapshotNodes(manager.startup_nodes)
        self._known: dict[str, tuple[str, int]] = {
            name: (node.host, int(node.port)) for name, node in manager.startup_nodes.items()
        }

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        with _cluster_failures_as_unavailable():
            return await super().execute_command(*args, **kwargs)

    async def initialize(self) -> StreamsCluster:
        if self._initialize:
            self._remember_every_node()
        try:
            await super().initialize()
        except RedisClusterException as exc:
            raise ClusterUnavailable(str(exc)) from exc
        self._learn_nodes()
        return self

    async def refresh_slots(self) -> None:
        """Learn the slot map again now (after a failover or a slot move), from every node
        ever seen. For callers that hold connections of their own (the hub's pub/sub
        links); any failure is a `ClusterUnavailable`."""
        self._remember_every_node()
        with _cluster_failures_as_unavailable():
            await self.nodes_manager.initialize()
        self._learn_nodes()

    def master_address(self, key: str) -> tuple[str, int]:
        """The address of the master serving `key`'s slot in the slot map as last learned;
        `ClusterUnavailable` when that map has no master for it (mid-failover)."""
        slot = key_slot(key.encode())
        try:
            node = self.nodes_manager.get_node_from_slot(slot)
        except (RedisClusterException, KeyError) as exc:  # a missing slot is a KeyError
            raise ClusterUnavailable(f"no master known for slot {slot}") from exc
        return node.host, int(node.port)

    def _learn_nodes(self) -> None:
        self._known.update(
            (name, (node.host, int(node.port)))
            for name, node in self.nodes_manager.nodes_cache.items()
        )

    def _remember_every_node(self) -> None:
        manager = self.nodes_manager
        for name, (host, port) in self._known.items():
            if name not in manager.startup_nodes:
                manager.startup_nodes[name] = ClusterNode(host, port, **manager.connection_kwargs)

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ClusterPipeline:
        if transaction or shard_hint:
            return super().pipeline(transaction, shard_hint)  # raises, as it should
        return _ClusterPipeline(self)  # type: ignore[abstract]  # redis-py's own pipeline() does the same


StreamsClient = Redis | RedisCluster
"""The streams role: one Redis, or a Redis Cluster (both speak the commands the store uses)."""


def cluster_nodes(url: str) -> list[ClusterNode]:
    """The seed nodes of `redis+cluster://[USER:PASSWORD@]HOST:PORT[,HOST:PORT…]/0`."""
    rest = url.split("://", 1)[1]
    hosts = rest.split("/", 1)[0].rpartition("@")[2]
    nodes = []
    for item in hosts.split(","):
        item = item.strip()
        if item.startswith("["):  # [IPv6]:PORT
            host, _, port = item[1:].partition("]")
            port = port.lstrip(":")
        elif item.count(":") == 1:  # HOST:PORT
            host, _, port = item.partition(":")
        else:  # a host without a port
            host, port = item, ""
        nodes.append(ClusterNode(host or "127.0.0.1", int(port or 6379)))
    return nodes


def cluster_credentials(url: str) -> dict[str, Any]:
    """The username, password (percent-decoded, as in any Redis URL) and TLS flag of
    a cluster URL, as keyword arguments of the cluster client."""
    userinfo = url.split("://", 1)[1].split("/", 1)[0].rpartition("@")[0]
    username, _, password = userinfo.partition(":")
    return {
        "username": unquote(username) or None,
        "password": unquote(password) or None,
        "ssl": url.startswith("rediss+cluster://"),
    }


def streams_client(
    settings: Settings, name: str, control: Redis, *, max_connections: int | None = None
) -> StreamsClient:
    """The client for generations' keys: `control` itself when `streams_redis_url` is unset.

    A cluster client bounds each node's pool at `max_connections`, follows MOVED
    and ASK, and after a connection error or timeout refreshes the slot map and
    may send the command again: every write of the store is therefore idempotent.
    """
    if not settings.streams_redis_url:
        return control
    kwargs = _connection_kwargs(settings, name, settings.redis_timeout_s)
    if settings.streams_on_cluster:
        # redis-py declares connection_pool abstract on its cluster client, which has none.
        cluster: RedisCluster = StreamsCluster(  # type: ignore[abstract]
            startup_nodes=cluster_nodes(settings.streams_redis_url),
            decode_responses=True,
            max_connections=max_connections or settings.redis_max_connections,
            **cluster_credentials(settings.streams_redis_url),
            **kwargs,
        )
        return cluster
    pool = BlockingConnectionPool.from_url(
        settings.streams_redis_url,
        max_connections=max_connections or settings.redis_max_connections,
        timeout=settings.redis_timeout_s,
        decode_responses=True,
        **kwargs,
    )
    client: Redis = Redis.from_pool(pool)
    return client


async def live_messages(pubsub: PubSub, *, reply_timeout_s: float) -> AsyncIterator[Any]:
    """The messages of a subscribed `pubsub`, raising `TimeoutError` once it falls silent.

    An idle subscription has no reply due, so silence alone says nothing. A side
    task PINGs it every third of `reply_timeout_s`; each PONG ends the pending read,
    so on a live connection no read waits longer than that. On a half-open one the
    read outlasts the connection's own socket timeout (it must be `reply_timeout_s`,
    as for every client built here) and fails: the caller resubscribes.
    """

    async def ping_forever() -> None:
        while True:
            await asyncio.sleep(reply_timeout_s / 3)
            await pubsub.ping()

    pinger = asyncio.create_task(ping_forever(), name="pubsub-ping")
    try:
        while True:
            if pinger.done():
                pinger.result()  # a failed PING: raise its error
            message = await pubsub.get_message(timeout=None)
            if message is not None and message.get("type") != "pong":
                yield message
    finally:
        pinger.cancel()
        with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
            await pinger
