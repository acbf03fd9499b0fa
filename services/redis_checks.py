"""Start-up checks of the Redis settings tokenrelay relies on, as warnings.

A Redis Cluster node behind a plain `redis://` URL is reported first: every key
of another node's slots would be refused. Two settings decide whether a
generation survives: `maxmemory-policy` must be
`noeviction` (an evicting policy may silently delete a stream, a lease or a
queued job under memory pressure; with `noeviction` a full Redis refuses writes,
which workers and the API report as errors), and persistence (without AOF a
Redis restart forgets every generation and queued job). Managed Redis services
often forbid `CONFIG GET`, so the checks read `INFO` instead, and a Redis that
cannot be asked is reported, never fatal: the process starts and waits for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError

from services.redis_connections import StreamsClient

log = logging.getLogger(__name__)


_CLUSTER_NODE = {
    "control": (
        "this Redis is a Redis Cluster node: the control Redis (TOKENRELAY_REDIS_URL) must "
        "be a plain Redis, or one under Sentinel (the job queue spans slots); put "
        "generations on the cluster with TOKENRELAY_STREAMS_REDIS_URL=redis+cluster://HOST:PORT"
    ),
    "streams": (
        "this Redis is a Redis Cluster node, but TOKENRELAY_STREAMS_REDIS_URL is not a "
        "cluster URL: generations on other nodes' slots would be refused (MOVED); use "
        "redis+cluster://HOST:PORT[,HOST:PORT]/0"
    ),
}


def redis_setting_warnings(
    memory: dict[str, object],
    persistence: dict[str, object],
    cluster: dict[str, object] | None = None,
    role: str = "control",
) -> list[str]:
    """Warnings for the `INFO memory`, `persistence` and `cluster` sections of a Redis
    that a plain client (`redis://`) talks to, in `role` ("control" or "streams")."""
    warnings = []
    if cluster and str(cluster.get("cluster_enabled", "0")) == "1":
        warnings.append(_CLUSTER_NODE[role])
    policy = str(memory.get("maxmemory_policy", "unknown"))
    if policy != "noeviction":
        warnings.append(
            f"Redis maxmemory-policy is '{policy}': under memory pressure Redis may evict "
            "streams, leases and queued jobs; set 'maxmemory-policy noeviction'"
        )
    if str(persistence.get("aof_enabled", "0")) != "1":
        warnings.append(
            "Redis append-only file is off: a Redis restart loses generations and queued "
            "jobs written since the last snapshot (or all of them without snapshots); "
            "set 'appendonly yes'"
        )
    return warnings


async def warn_about_redis_settings(
    redis: Redis, component: str, timeout_s: float = 2.0, role: str = "control"
) -> list[str]:
    """Log a warning for each risky Redis setting; returns them (for tests)."""
    try:
        async with asyncio.timeout(timeout_s):
            memory = await redis.info("memory")
            persistence = await redis.info("persistence")
            cluster = await redis.info("cluster")
    except (RedisError, OSError, TimeoutError) as exc:
        log.warning("%s: could not check Redis settings (%s)", component, type(exc).__name__)
        return []
    warnings = redis_setting_warnings(memory, persistence, cluster, role)
    for warning in warnings:
        log.warning("%s: %s", component, warning)
    return warnings


CLUSTER_MIN_VERSION = (7, 0)
"""Generations on a Redis Cluster need sharded pub/sub (SPUBLISH, SSUBSCRIBE): Redis 7.0."""


def version_tuple(text: str) -> tuple[int, ...]:
    """ "7.0.15" as (7, 0): the major and minor version, to compare with a minimum."""
    return tuple(int(part) for part in text.split(".")[:2] if part.isdigit())


def cluster_version_errors(versions: Mapping[str, str]) -> list[str]:
    """One error for each cluster node (name: its `redis_version`) too old for
    generations on a cluster; every write of a generation would be refused there."""
    needed = ".".join(map(str, CLUSTER_MIN_VERSION))
    return [
        f"Redis Cluster node {node} runs Redis {version}: generations on a cluster need "
        f"Redis {needed} or later (sharded pub/sub, SPUBLISH and SSUBSCRIBE); every "
        "generation on its slots will fail until it is upgraded"
        for node, version in sorted(versions.items())
        if version_tuple(version) < CLUSTER_MIN_VERSION
    ]


async def check_cluster_versions(
    streams: RedisCluster, component: str, timeout_s: float = 2.0
) -> list[str]:
    """Log an error for each node of the streams cluster older than Redis 7.0; returns them.

    Why at start-up: on such a node the scripts that append to a stream fail with
    "Unknown Redis command", and nothing of a generation but its `start` ever shows,
    which says nothing of the cause to whoever watches it.
    """
    try:
        async with asyncio.timeout(timeout_s):
            replies = await streams.info("server", target_nodes=RedisCluster.ALL_NODES)
    except (RedisError, OSError, TimeoutError) as exc:
        log.warning("%s: could not check the Redis Cluster's version (%s)", component,
                    type(exc).__name__)  # fmt: skip
        return []
    versions = {
        str(node): str(info.get("redis_version", "unknown"))
        for node, info in replies.items()
        if isinstance(info, dict)
    }
    errors = cluster_version_errors(versions)
    for error in errors:
        log.error("%s: %s", component, error)
    return errors


async def warn_about_both_roles(control: Redis, streams: StreamsClient, component: str) -> None:
    """The start-up checks of a process: its control Redis, its streams Redis when that
    is another plain Redis, and a streams cluster's versions."""
    await warn_about_redis_settings(control, component)
    if isinstance(streams, RedisCluster):
        await check_cluster_versions(streams, component)
    elif isinstance(streams, Redis) and streams is not control:
        await warn_about_redis_settings(streams, f"{component} (streams Redis)", role="streams")
