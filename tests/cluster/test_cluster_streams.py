"""Generations on a real Redis Cluster: fan-out over two API replicas, failover, slot moves.

Each test starts its own cluster (three masters, a replica each) when it kills or
moves something; the control Redis is the session's. Viewers are real SSE clients
that resume like an EventSource (tests/faults/support.watch), and every text is
compared byte for byte with what the demo model writes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.cluster.failover import kill_mid_stream
from tests.faults.support import (
    Processes,
    RedisServer,
    create,
    expected_story,
    fault_env,
    status,
    watch,
)
from tests.hub.support import metric_value
from tests.support.polling import wait_for
from tests.support.processes import ApiProcess
from tests.support.redis_topologies import RedisCluster, RedisNode, command, redis_cluster
from tests.support.sse import assemble_text


@pytest.fixture()
def own_cluster() -> Iterator[RedisCluster]:
    """A cluster of this test's own, for tests that kill or reshape it."""
    with redis_cluster(masters=3) as running:
        yield running


@pytest.fixture()
def procs(tmp_path: Path) -> Iterator[Processes]:
    # A control Redis of each test's own: no other test's worker may take these jobs,
    # and no other test's generations sit in this one's reaper index.
    control = RedisServer(tmp_path, appendonly=False)
    control.start()
    processes = Processes(fault_env(control.url))
    try:
        yield processes
    finally:
        processes.stop_all()
        control.stop()


def _on(cluster: RedisCluster) -> dict[str, str]:
    return {"TOKENRELAY_STREAMS_REDIS_URL": cluster.url}


async def _hub_commands(base_url: str) -> float:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        text = (await client.get("/metrics")).text
    return metric_value(text, "tokenrelay_hub_redis_commands_total")


async def _delivered(base_url: str) -> float:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        text = (await client.get("/metrics")).text
    return metric_value(text, "tokenrelay_sse_events_delivered_total")


def _holders(cluster: RedisCluster, gen_ids: list[str]) -> set[int]:
    """The ports of the masters that hold these generations' keys."""
    return {cluster.master_of(f"tokenrelay:{{{gen_id}}}:meta").port for gen_id in gen_ids}


async def _three_streams_live_on_two_replicas(
    procs: Processes, env: dict[str, str]
) -> list[ApiProcess]:
    """A worker and two APIs on `env`'s cluster; three stories, each watched on both
    APIs: exact, and live on one connection (a pub/sub link that cannot reach its
    node would end the stream with a retry hint each time: exact text still, but
    over reconnections). Returns the APIs, for their logs."""
    procs.worker(**env).wait_ready()
    apis = [procs.api(**env) for _ in range(2)]
    for api in apis:
        api.wait_ready()
    gen_ids = [await create(apis[0].base_url, max_tokens=40) for _ in range(3)]
    viewings = await asyncio.gather(
        *(watch(api.base_url, gen_id) for gen_id in gen_ids for api in apis)
    )
    for viewing in viewings:
        assert viewing.kinds[-1] == "done"
        assert assemble_text(viewing.events) == expected_story(40)
        assert viewing.connections == 1, viewing.retries
    return apis


async def test_a_password_protected_cluster_with_a_percent_encoded_password(
    procs: Processes,
) -> None:
    """As a managed cluster is set up: every node asks for the password, which holds
    characters a URL must encode. The store, the worker and the hub's pub/sub links
    (one connection per master, made by the hub itself) all log in."""
    with redis_cluster(masters=3, password="p@ss:w/rd %") as locked:
        assert "p%40ss%3Aw%2Frd%20%25@" in locked.url
        for api in await _three_streams_live_on_two_replicas(procs, _on(locked)):
            assert "Authentication" not in api.log()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")
async def test_a_cluster_over_tls(procs: Processes) -> None:
    """`rediss+cluster://`, as managed clusters with in-transit encryption are reached:
    the nodes speak only TLS (client port, replication and the cluster bus), and the
    processes trust the nodes' CA through the standard `SSL_CERT_FILE`; the hub's
    links speak TLS too."""
    with redis_cluster(masters=3, tls=True) as encrypted:
        assert encrypted.url.startswith("rediss+cluster://")
        env = {**_on(encrypted), "SSL_CERT_FILE": str(encrypted.nodes[0].tls_ca)}
        for api in await _three_streams_live_on_two_replicas(procs, env):
            assert "pub/sub link" not in api.log()


async def test_a_cluster_node_behind_a_plain_url_is_reported_at_start_up(
    procs: Processes, cluster: RedisCluster
) -> None:
    """A new user's likely slip: `redis://` for a cluster node. Each process says so,
    naming the fix, instead of leaving it to MOVED errors on some generations."""
    plain = {"TOKENRELAY_STREAMS_REDIS_URL": f"redis://{cluster.nodes[0].address}/0"}
    worker = procs.worker(**plain).wait_ready()
    api = procs.api(**plain).wait_ready()
    for process in (worker, api):
        await asyncio.to_thread(
            process.wait_for_log, "TOKENRELAY_STREAMS_REDIS_URL is not a cluster URL"
        )
        assert "use redis+cluster://" in process.log()
    # Run anyway, generations whose keys live on another node answer a 503 that
    # names the fix, never a 500 (each id's slot is random: 12 land on node 0's
    # third of the slots alone about once in half a million).
    body = {"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as client:
        answers = [await client.post("/v1/generations", json=body) for _ in range(12)]
    assert {answer.status_code for answer in answers} <= {202, 503}
    refused = [answer for answer in answers if answer.status_code == 503]
    assert refused, [answer.status_code for answer in answers]
    assert "redis+cluster://" in refused[0].json()["error"]["message"]
    # Answered by the error handlers, not left to the server's last resort, which logs
    # a traceback and closes the connection under the next request on it.
    assert "Exception in ASGI application" not in api.log()


async def test_generations_spread_over_every_master_and_every_viewer_is_exact(
    procs: Processes, cluster: RedisCluster
) -> None:
    """Twelve or more generations, each watched on two API replicas, run by two workers."""
    for _ in range(2):
        procs.worker(**_on(cluster))
    apis = [procs.api(**_on(cluster)) for _ in range(2)]
    for process in procs.started:
        process.wait_ready()  # type: ignore[attr-defined]  # workers and APIs both have it

    # Ids are random, so twelve may all miss one of three masters (2% of runs): go on
    # until every master holds at least one, which ids do within a few dozen.
    masters = {master.port for master in cluster.masters()}
    gen_ids: list[str] = []
    while len(gen_ids) < 12 or _holders(cluster, gen_ids) != masters:
        assert len(gen_ids) < 60, "ids never reached every master: slots are not spread"
        gen_ids.append(await create(apis[0].base_url, max_tokens=60))
    viewings = await asyncio.gather(
        *(watch(api.base_url, gen_id) for gen_id in gen_ids for api in apis)
    )
    expected = expected_story(60)
    for viewing in viewings:
        assert viewing.kinds[-1] == "done"
        assert assemble_text(viewing.events) == expected
    for gen_id in gen_ids:
        assert (await status(apis[1].base_url, gen_id))["content"] == expected

    for master in cluster.masters():
        assert int(command(master, "DBSIZE")) > 0
    # ...and nothing of a generation is on the control Redis, only the global indexes.
    control = redis.Redis.from_url(procs.env["TOKENRELAY_REDIS_URL"], decode_responses=True)
    # (Only this test's: earlier tests of the session keep theirs on this Redis.)
    for gen_id in gen_ids:
        assert not list(control.scan_iter(f"tokenrelay:{{{gen_id}}}:*")), gen_id
    assert all(control.zscore("tokenrelay:recent", gen_id) for gen_id in gen_ids)
    control.close()


async def test_hub_commands_per_event_do_not_grow_with_viewers(
    procs: Processes, cluster: RedisCluster
) -> None:
    """The same generation watched by 1 and then by 8 viewers on one replica: the
    hub's Redis commands per generation stay the same (subscribe, one read on
    attach, unsubscribe), while the events delivered grow eightfold."""
    procs.worker(**_on(cluster)).wait_ready()
    api = procs.api(**_on(cluster)).wait_ready()

    async def run(viewers: int) -> tuple[float, float]:
        gen_id = await create(api.base_url, max_tokens=80)
        before = await _hub_commands(api.base_url)
        delivered_before = await _delivered(api.base_url)
        results = await asyncio.gather(*(watch(api.base_url, gen_id) for _ in range(viewers)))
        for viewing in results:
            assert assemble_text(viewing.events) == expected_story(80)
        return (
            await _hub_commands(api.base_url) - before,
            await _delivered(api.base_url) - delivered_before,
        )

    one_commands, one_delivered = await run(1)
    many_commands, many_delivered = await run(8)
    assert many_delivered >= 8 * one_delivered * 0.9
    # Live events arrive as pushes: no command per event and none per viewer beyond
    # each one's own backlog read (XRANGE when it attaches).
    assert many_commands <= one_commands + 8 * 3
    assert one_commands < one_delivered / 4


@pytest.mark.timeout(300)  # a cluster, four processes and a failover on two busy cores
async def test_sigkill_of_a_master_mid_stream_viewers_on_two_replicas_stay_exact(
    procs: Processes, own_cluster: RedisCluster
) -> None:
    killed: list[RedisNode] = []

    def kill_the_first_ones_master(gen_ids: list[str]) -> None:
        killed.append(own_cluster.master_of(f"tokenrelay:{{{gen_ids[0]}}}:meta"))
        killed[0].kill()

    await kill_mid_stream(procs, kill_the_first_ones_master, generations=6, env=_on(own_cluster))
    # The killed master's replica serves its slots now.
    assert killed[0].port not in {m.port for m in own_cluster.masters()}
    assert len(own_cluster.masters()) == 3


@pytest.mark.timeout(300)
async def test_a_frozen_master_resumed_after_its_failover_leaves_viewers_exact(
    procs: Processes, own_cluster: RedisCluster
) -> None:
    """SIGSTOP, then SIGCONT once its replica has taken over: meanwhile every
    connection to it is open and silent, and on waking it still believes, for a
    moment, that it serves its slots."""
    resumed = threading.Event()

    def freeze_fail_over_resume(key: str) -> None:
        frozen = own_cluster.master_of(key)
        probe = next(n for n in own_cluster.nodes if n.port != frozen.port)
        os.kill(frozen.process.pid, signal.SIGSTOP)
        try:
            deadline = time.monotonic() + 60
            while True:
                slot = int(command(probe, "CLUSTER", "KEYSLOT", key))
                serving = {
                    int(master[1])
                    for start, end, master, *_ in command(probe, "CLUSTER", "SLOTS")
                    if start <= slot <= end
                }
                if serving and frozen.port not in serving:
                    break
                assert time.monotonic() < deadline, "no replica took over"
                time.sleep(0.1)
            time.sleep(1.0)  # the clients notice and move over
        finally:
            os.kill(frozen.process.pid, signal.SIGCONT)
            resumed.set()

    def freeze_the_first_ones_master(gen_ids: list[str]) -> None:
        key = f"tokenrelay:{{{gen_ids[0]}}}:meta"
        threading.Thread(target=freeze_fail_over_resume, args=(key,), daemon=True).start()

    await kill_mid_stream(procs, freeze_the_first_ones_master, generations=6, env=_on(own_cluster))
    assert resumed.wait(timeout=60)


def _migrate_slot(cluster: RedisCluster, key: str) -> tuple[int, int]:
    """Move `key`'s slot, with its keys, to another master (what `redis-cli --cluster
    reshard` does, one slot): SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE."""
    source = cluster.master_of(key)
    target = next(m for m in cluster.masters() if m.port != source.port)
    slot = str(command(source, "CLUSTER", "KEYSLOT", key))
    source_id = command(source, "CLUSTER", "MYID")
    target_id = command(target, "CLUSTER", "MYID")
    command(target, "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
    command(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
    while True:
        moving = command(source, "CLUSTER", "GETKEYSINSLOT", slot, "100")
        if not moving:
            break
        command(source, "MIGRATE", "127.0.0.1", str(target.port), "", "0", "5000", "KEYS", *moving)
    for master in cluster.masters():
        command(master, "CLUSTER", "SETSLOT", slot, "NODE", target_id)
    return source.port, target.port


async def test_a_slot_migrated_mid_stream_leaves_viewers_exact(
    procs: Processes, own_cluster: RedisCluster
) -> None:
    procs.worker(**_on(own_cluster)).wait_ready()
    apis = [procs.api(**_on(own_cluster)) for _ in range(2)]
    for api in apis:
        api.wait_ready()
    gen_id = await create(apis[0].base_url, max_tokens=200)
    watching = [asyncio.create_task(watch(api.base_url, gen_id)) for api in apis for _ in range(2)]

    async def has_output() -> bool:
        return bool((await status(apis[0].base_url, gen_id))["content"])

    await wait_for(has_output, what="output before the move")
    key = f"tokenrelay:{{{gen_id}}}:meta"
    source, target = await asyncio.to_thread(_migrate_slot, own_cluster, key)

    viewings = await asyncio.gather(*watching)
    assert own_cluster.master_of(key).port == target != source
    for viewing in viewings:
        assert viewing.kinds[-1] == "done"
        assert assemble_text(viewing.events) == expected_story(200)
    assert (await status(apis[1].base_url, gen_id))["content"] == expected_story(200)
