"""A master that freezes, is replaced, and wakes up: no command of ours is answered by it.

On a real Sentinel group. After Sentinel promotes the replica the old master, once
resumed (SIGCONT), still believes it is the master until Sentinel demotes it, and
answers whatever it is sent; the command client must not use it, neither through
a connection opened before the promotion nor for a reply to a command sent then.
`CONFIG GET port` tells which server answered.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from services.config import Settings
from services.redis_connections import command_client
from tests.support.polling import wait_for
from tests.support.redis_topologies import SentinelGroup, sentinel_group


@pytest.fixture()
def sentinels() -> Iterator[SentinelGroup]:
    with sentinel_group() as group:
        yield group


def _settings(sentinels: SentinelGroup, timeout_s: float) -> Settings:
    return Settings(
        redis_url="redis://unused.invalid:6379/0",
        redis_sentinels=sentinels.addresses,
        redis_sentinel_master=sentinels.name,
        redis_timeout_s=timeout_s,
    )


async def _promoted(sentinels: SentinelGroup) -> None:
    deadline = time.monotonic() + 30
    while sentinels.current_master_port() != sentinels.replica.port:
        assert time.monotonic() < deadline, "Sentinel did not promote the replica"
        await asyncio.sleep(0.1)


async def _port_of(client: object) -> int:
    reply = await client.config_get("port")  # type: ignore[attr-defined]
    return int(reply["port"])


@pytest.mark.timeout(120)
async def test_after_the_failover_no_command_reaches_the_resumed_old_master(
    sentinels: SentinelGroup,
) -> None:
    client = command_client(_settings(sentinels, timeout_s=2), "test-follow", max_connections=8)
    try:
        # Several connections open to the master, idle in the pool when it freezes;
        # once it is resumed, all would still work.
        ports = await asyncio.gather(*(_port_of(client) for _ in range(8)))
        assert set(ports) == {sentinels.master.port}
        os.kill(sentinels.master.process.pid, signal.SIGSTOP)
        try:
            await _promoted(sentinels)
            await asyncio.sleep(1.0)  # the pool sits unused through the promotion
        finally:
            os.kill(sentinels.master.process.pid, signal.SIGCONT)
        answered = await asyncio.gather(*(_port_of(client) for _ in range(16)))
        assert set(answered) == {sentinels.replica.port}
    finally:
        await client.aclose()


@pytest.mark.timeout(120)
async def test_a_reply_the_old_master_sends_on_waking_is_refused(
    sentinels: SentinelGroup,
) -> None:
    client = command_client(_settings(sentinels, timeout_s=30), "test-late", max_connections=8)
    try:
        assert await _port_of(client) == sentinels.master.port
        os.kill(sentinels.master.process.pid, signal.SIGSTOP)
        try:
            # Sent before the promotion: only the frozen master can answer it.
            late = asyncio.create_task(_port_of(client))
            await asyncio.sleep(0.2)
            await _promoted(sentinels)

            # Another command, on another connection, learns of the promotion. Just
            # after it, a Sentinel may still name no healthy master (MasterNotFoundError,
            # a ConnectionError: a 503 to a request), so that command is retried a while.
            async def a_master_answers() -> int | None:
                try:
                    return await _port_of(client)
                except RedisConnectionError:
                    return None

            port = await wait_for(
                a_master_answers, timeout_s=10, what="a master named after the promotion"
            )
            assert port == sentinels.replica.port
        finally:
            os.kill(sentinels.master.process.pid, signal.SIGCONT)
        try:
            late_port = await asyncio.wait_for(late, timeout=20)
        except RedisConnectionError:
            return  # refused: what the caller does after any lost connection follows
        assert late_port == sentinels.replica.port  # or sent again, to the new master
    finally:
        await client.aclose()


@pytest.mark.timeout(120)
async def test_with_every_sentinel_gone_the_known_master_still_serves(
    sentinels: SentinelGroup,
) -> None:
    """The rechecks are a safeguard, not a dependency: when no Sentinel answers (all
    SIGKILLed here), the last answer stays in force, for new connections too."""
    client = command_client(
        _settings(sentinels, timeout_s=1), "test-no-sentinels", max_connections=4
    )
    try:
        assert await _port_of(client) == sentinels.master.port
        for sentinel in sentinels.sentinels:
            sentinel.kill()
        await asyncio.sleep(1.2)  # past the idle recheck: the next command asks first
        ports = await asyncio.gather(*(_port_of(client) for _ in range(4)))
        assert set(ports) == {sentinels.master.port}
        for _ in range(10):  # busy: background rechecks, each failing
            assert await _port_of(client) == sentinels.master.port
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()
