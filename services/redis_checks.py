"""Start-up checks of the Redis settings tokenrelay relies on, as warnings.

Two settings decide whether a generation survives: `maxmemory-policy` must be
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

log = logging.getLogger(__name__)


def redis_setting_warnings(memory: dict[str, object], persistence: dict[str, object]) -> list[str]:
    """Warnings for the `INFO memory` and `INFO persistence` sections of a Redis."""
    warnings = []
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
    redis: Redis, component: str, timeout_s: float = 2.0
) -> list[str]:
    """Log a warning for each risky Redis setting; returns them (for tests)."""
    try:
        async with asyncio.timeout(timeout_s):
            memory = await redis.info("memory")
            persistence = await redis.info("persistence")
    except (RedisError, OSError, TimeoutError) as exc:
        log.warning("%s: could not check Redis settings (%s)", component, type(exc).__name__)
        return []
    warnings = redis_setting_warnings(memory, persistence)
    for warning in warnings:
        log.warning("%s: %s", component, warning)
    return warnings
