"""The control Redis under Sentinel: SIGKILL of its master, and the queue keeps working.

A real Sentinel group (master, replica, three Sentinels) holds arq's queue and the
global indexes; generations live on the session's cluster. Jobs queued before the
kill still run after the failover, new requests work, and every text is exact.
Without a streams Redis, the generations live under Sentinel too: a master killed
while they stream costs an attempt (a `reset`), never a viewer's exact text.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import quote

import pytest

from tests.cluster.failover import kill_mid_stream
from tests.faults.support import Processes, create, expected_story, fault_env, status, watch
from tests.support.polling import wait_for
from tests.support.redis_topologies import (
    RedisCluster,
    SentinelGroup,
    sentinel_group,
)
from tests.support.sse import assemble_text


@pytest.fixture()
def sentinels() -> Iterator[SentinelGroup]:
    with sentinel_group() as group:
        yield group


def _sentinel_env(sentinels: SentinelGroup, **overrides: str) -> dict[str, str]:
    return fault_env(
        # The host here is never used: the Sentinels name the master.
        "redis://unused.invalid:6379/0",
        TOKENRELAY_REDIS_SENTINELS=sentinels.addresses,
        TOKENRELAY_REDIS_SENTINEL_MASTER=sentinels.name,
        TOKENRELAY_REDIS_TIMEOUT_S="2",
        **overrides,
    )


@pytest.fixture()
def procs(sentinels: SentinelGroup, cluster: RedisCluster) -> Iterator[Processes]:
    processes = Processes(_sentinel_env(sentinels, TOKENRELAY_STREAMS_REDIS_URL=cluster.url))
    yield processes
    processes.stop_all()


@pytest.fixture()
def procs_all_on_sentinel(sentinels: SentinelGroup) -> Iterator[Processes]:
    processes = Processes(_sentinel_env(sentinels))
    yield processes
    processes.stop_all()


async def test_sigkill_of_the_sentinel_master_queued_jobs_still_run(
    procs: Processes, sentinels: SentinelGroup
) -> None:
    api = procs.api().wait_ready(timeout_s=90)
    # Queued while no worker runs, replicated, then the master dies.
    queued = [await create(api.base_url, max_tokens=30) for _ in range(3)]
    # WAIT counts the replicas holding this connection's own writes (a connection
    # that wrote nothing gets every replica at once): one write of its own first,
    # so that the replica acknowledges everything written before it, the API's too.
    client = sentinels.master.client()
    try:
        client.set("tokenrelay:test:replicated-up-to-here", "1")
        assert client.wait(1, 2000) == 1
    finally:
        client.close()
    sentinels.master.kill()

    async def failed_over() -> bool:
        return sentinels.current_master_port() == sentinels.replica.port

    await wait_for(failed_over, what="Sentinel to promote the replica", timeout_s=30)
    procs.worker().wait_ready(timeout_s=90)
    after = await create(api.base_url, max_tokens=30)  # the API follows the failover too

    viewings = await asyncio.gather(
        *(watch(api.base_url, gen_id, timeout_s=60) for gen_id in [*queued, after])
    )
    for gen_id, viewing in zip([*queued, after], viewings, strict=True):
        assert viewing.kinds[-1] == "done"
        assert assemble_text(viewing.events) == expected_story(30)
        assert (await status(api.base_url, gen_id))["status"] == "completed"


async def fail_over_mid_stream(
    procs: Processes, kill: Callable[[list[str]], None], *, generations: int
) -> None:
    """`kill_mid_stream` with a Sentinel failover's bounds: processes may start while
    the Sentinels are still settling, and a failover takes seconds (down-after,
    election, promotion) before the viewers can finish."""
    await kill_mid_stream(
        procs, kill, generations=generations, ready_timeout_s=90, watch_timeout_s=150
    )


@pytest.mark.timeout(240)
async def test_sigkill_of_the_sentinel_master_mid_stream_viewers_stay_exact(
    procs_all_on_sentinel: Processes, sentinels: SentinelGroup
) -> None:
    await fail_over_mid_stream(
        procs_all_on_sentinel, lambda gen_ids: sentinels.master.kill(), generations=3
    )
    assert sentinels.current_master_port() == sentinels.replica.port


@pytest.mark.timeout(240)
async def test_a_frozen_sentinel_master_resumed_after_the_failover_loses_no_text(
    procs_all_on_sentinel: Processes, sentinels: SentinelGroup
) -> None:
    """SIGSTOP, not SIGKILL: the old master's connections stay open but silent, and
    once Sentinel has promoted the replica the old master wakes up still believing
    it is the master, until Sentinel turns it into a replica (dropping whatever it
    accepted meanwhile). Nothing a viewer sees may come from that window."""
    pid = sentinels.master.process.pid

    def freeze_fail_over_resume() -> None:
        os.kill(pid, signal.SIGSTOP)
        try:
            deadline = time.monotonic() + 30
            while sentinels.current_master_port() != sentinels.replica.port:
                assert time.monotonic() < deadline, "Sentinel did not promote the replica"
                time.sleep(0.1)
            time.sleep(1.0)  # the clients notice and move over
        finally:
            os.kill(pid, signal.SIGCONT)

    resumer = threading.Thread(target=freeze_fail_over_resume)
    await fail_over_mid_stream(
        procs_all_on_sentinel, lambda gen_ids: resumer.start(), generations=3
    )
    resumer.join(timeout=60)


@pytest.mark.timeout(240)
async def test_a_password_protected_sentinel_group_fails_over_with_viewers_exact() -> None:
    """As managed Sentinel set-ups run: the master, its replica and the Sentinels all
    ask for a password (here with characters a URL must encode). Generations live
    there; its master is killed while they stream."""
    with sentinel_group(password="s3cr:t@x") as group:
        env = fault_env(
            "redis://:s3cr%3At%40x@unused.invalid:6379/0",
            TOKENRELAY_REDIS_SENTINELS=group.addresses,
            TOKENRELAY_REDIS_SENTINEL_MASTER=group.name,
            TOKENRELAY_REDIS_SENTINEL_PASSWORD="s3cr:t@x",
            TOKENRELAY_REDIS_TIMEOUT_S="2",
        )
        processes = Processes(env)
        try:
            await fail_over_mid_stream(
                processes, lambda gen_ids: group.master.kill(), generations=2
            )
            for process in processes.started:
                assert "Authentication" not in process.log()
        finally:
            processes.stop_all()
        assert group.current_master_port() == group.replica.port


@pytest.mark.timeout(120)
async def test_a_tls_only_sentinel_group_serves_generations() -> None:
    """Master and replica speak only TLS (`rediss://`, the CA given in the URL), as
    managed Redis often does; the Sentinels name them and every process connects
    over TLS, for commands, the queue and the blocking reads alike."""
    with sentinel_group(tls=True) as group:
        assert group.master.tls_ca is not None
        ca = quote(str(group.master.tls_ca), safe="")
        env = fault_env(
            f"rediss://unused.invalid:6379/0?ssl_ca_certs={ca}",
            TOKENRELAY_REDIS_SENTINELS=group.addresses,
            TOKENRELAY_REDIS_SENTINEL_MASTER=group.name,
            TOKENRELAY_REDIS_TIMEOUT_S="2",
        )
        processes = Processes(env)
        try:
            processes.worker().wait_ready(timeout_s=60)
            api = processes.api().wait_ready(timeout_s=60)
            gen_id = await create(api.base_url, max_tokens=30)
            viewing = await watch(api.base_url, gen_id, timeout_s=60)
            assert viewing.kinds[-1] == "done"
            assert assemble_text(viewing.events) == expected_story(30)
            assert (await status(api.base_url, gen_id))["status"] == "completed"
        finally:
            processes.stop_all()
