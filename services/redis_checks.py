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

from redis.asyncio import Redis
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


async def warn_about_both_roles(control: Redis, streams: StreamsClient, component: str) -> None:
    """The start-up checks of a process: its control Redis, and its streams Redis when
    that is another plain Redis (a cluster client's nodes are not checked here)."""
    await warn_about_redis_settings(control, component)
    if isinstance(streams, Redis) and streams is not control:
        await warn_about_redis_settings(streams, f"{component} (streams Redis)", role="streams")
