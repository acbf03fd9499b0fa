"""Connections that follow the Sentinel master, and never a master Sentinel has replaced.

redis-py's Sentinel pool asks the Sentinels for the master only when it opens a
connection, and it asks the first Sentinel that answers. Three things then go wrong
when a master freezes (SIGSTOP, a stalled VM) and wakes up after its replica was
promoted, which is when the old master still believes it is the master for up to
ten seconds, until Sentinel demotes it and drops what it accepted meanwhile:

- a connection opened to it before the promotion goes on being used, next to new
  ones to the new master, so one process reads and writes both histories (a worker
  sees its own fresh lease as lost; a viewer's cursor comes from the old master and
  skips what the new one holds);
- a reply the old master sends on waking, to a command sent before the promotion,
  is taken as true;
- and a Sentinel that has not heard of the promotion yet names the old master again.

So here the pool asks every Sentinel at once and believes the one with the newest
configuration epoch. It asks again at most every `RECHECK_S` while it is used (in
the background), and before the command when it was left unused. A connection to
any other address is closed before a command is sent on it, and its reply is
discarded (as a connection error, so callers retry as after any other) if the
master changed while the command ran. What the old master accepted in that window
is then seen by no one, except for at most `RECHECK_S` after a busy pool last asked;
`min-replicas-to-write` on the servers closes the window from the other side.

When no Sentinel answers at all, the last answer stays in force (new connections
included): Sentinels down with the master up must not take the app down. Sentinels
that answer but see no healthy master fail the connection, as in redis-py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from redis.asyncio.connection import BlockingConnectionPool, SSLConnection
from redis.asyncio.sentinel import (
    MasterNotFoundError,
    SentinelConnectionPool,
    SentinelManagedConnection,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

RECHECK_S = 0.25
"""How stale the pool's idea of the master may get while it is in use: the time a
master that wakes up after being replaced can still be believed."""

IDLE_RECHECK_S = 1.0
"""Past this since the last answer (a pool left unused), the next command waits for
the Sentinels' answer instead of going on with the old one."""

LATE_SENTINEL_S = 0.05
"""How long the Sentinels beyond a majority may take to answer."""

Address = tuple[str, int]


class MasterMoved(RedisConnectionError):
    """The reply came from a Redis that Sentinel no longer names as the master."""


class SentinelsUnreachable(MasterNotFoundError):
    """No Sentinel answered at all (as opposed to Sentinels that see no healthy master)."""


class SentinelMasterPool(SentinelConnectionPool, BlockingConnectionPool):
    """A Sentinel pool that waits for a free connection like `BlockingConnectionPool`,
    and follows the master as the module docstring says."""

    def __init__(self, service_name: str, sentinel_manager: Any, **kwargs: Any) -> None:
        ssl = kwargs.pop("connection_class", None) is SSLConnection
        kwargs["connection_class"] = (
            MasterFollowingSSLConnection if ssl else MasterFollowingConnection
        )
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]
        self._asked_at = float("-inf")
        self._used_at = float("-inf")
        self._recheck: asyncio.Task[None] | None = None
        self._recheck_blocks = False
        self._sentinels_lost = False

    async def get_master_address(self) -> Address:
        """The master named by the Sentinel with the newest configuration epoch."""
        self._asked_at = time.monotonic()
        try:
            address = await _newest_master(self.sentinel_manager, self.service_name)
        except SentinelsUnreachable as exc:
            known: Address | None = self.master_address
            if known is None:
                raise
            # Sentinels down with the master still up must not take the app down:
            # new connections go where the last answer said.
            if not self._sentinels_lost:
                logger.warning("no Sentinel answers (%s); keeping %s:%s", exc, *known)
            self._sentinels_lost = True
            return known
        self._sentinels_lost = False
        if self.master_address != address:
            if self.master_address is not None:
                logger.warning(
                    "Sentinel master %r moved from %s:%s to %s:%s",
                    self.service_name,
                    *self.master_address,
                    *address,
                )
            self.master_address = address
            await self.disconnect(inuse_connections=False)
        return address

    def master_is(self, host: str, port: int) -> bool:
        """Whether the master, as last known, is at host:port (true while unknown)."""
        return self.master_address is None or self.master_address == (host, port)

    async def recheck(self) -> None:
        """Ask the Sentinels again if the last answer is older than `RECHECK_S`: in the
        background while the pool is busy (commands do not wait on the Sentinels), but
        before the commands that wake a pool left unused past `IDLE_RECHECK_S`."""
        now = time.monotonic()
        woken = now - self._used_at >= IDLE_RECHECK_S
        self._used_at = now
        if self._recheck is None or self._recheck.done():
            if not woken and now - self._asked_at < RECHECK_S:
                return
            self._recheck = asyncio.get_running_loop().create_task(self._ask_quietly())
            self._recheck_blocks = woken
        if woken or self._recheck_blocks:
            await asyncio.shield(self._recheck)

    async def _ask_quietly(self) -> None:
        try:
            await self.get_master_address()
        except (RedisError, OSError) as exc:  # the Sentinels may be failing over too
            logger.debug("Sentinel recheck failed (%s); keeping the last answer", exc)

    async def disconnect(self, inuse_connections: bool = True) -> None:
        """Also stop a recheck in flight when the whole pool closes (`Redis.aclose`
        disconnects it; a recheck itself only ever drops the idle connections)."""
        recheck = self._recheck
        if inuse_connections and recheck is not None and recheck is not asyncio.current_task():
            recheck.cancel()
            with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                await recheck
        await super().disconnect(inuse_connections)


async def _newest_master(sentinel_manager: Any, service_name: str) -> Address:
    """Ask every Sentinel at once; of those that see a healthy master, believe the one
    with the highest config epoch (the one that has heard of the latest failover).

    Once a majority has answered, the others get `LATE_SENTINEL_S` more: a frozen
    Sentinel must not hold every command up for its whole reply timeout."""
    asks = [
        asyncio.ensure_future(sentinel.sentinel_master(service_name))
        for sentinel in sentinel_manager.sentinels
    ]
    majority = len(asks) // 2 + 1
    try:
        pending: set[asyncio.Future[Any]] = set(asks)
        while pending and len(asks) - len(pending) < majority:
            _done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if pending:
            await asyncio.wait(pending, timeout=LATE_SENTINEL_S)
    finally:
        for ask in asks:
            ask.cancel()
    best: tuple[int, Address] | None = None
    errors = []
    answered = 0
    for ask in asks:
        if not ask.done() or ask.cancelled():
            continue
        if (error := ask.exception()) is not None:
            if not isinstance(error, RedisError | OSError):
                raise error
            errors.append(repr(error))
            continue
        answered += 1
        state = ask.result()
        if not sentinel_manager.check_master_state(state, service_name):
            continue
        epoch = int(state.get("config-epoch", 0))
        if best is None or epoch > best[0]:
            best = (epoch, (state["ip"], int(state["port"])))
    if best is None:
        if not answered:
            raise SentinelsUnreachable(f"no Sentinel answered about {service_name!r}: {errors}")
        raise MasterNotFoundError(f"No master found for {service_name!r}: {errors}")
    return best[1]


class MasterFollowingConnection(SentinelManagedConnection):
    """A connection that is only ever used with the master its pool currently knows."""

    connection_pool: SentinelMasterPool

    def _talks_to_master(self) -> bool:
        return self.connection_pool.master_is(str(self.host), int(self.port))

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        await self.connection_pool.recheck()
        if self.is_connected and not self._talks_to_master():
            await self.disconnect()  # sending reconnects, to the master Sentinel names
        await super().send_packed_command(command, check_health)

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        reply = await super().read_response(*args, **kwargs)
        if not self._talks_to_master():
            await self.disconnect()
            raise MasterMoved(
                f"the reply came from {self.host}:{self.port}, no longer the Sentinel master"
            )
        return reply


class MasterFollowingSSLConnection(MasterFollowingConnection, SSLConnection):
    """The same over TLS (`rediss://`)."""
