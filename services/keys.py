"""Every Redis key tokenrelay uses, in one place.

A generation's keys share the hash tag `{gen_…}` so that its stream, status and
lease live in one Redis Cluster slot and a Lua script may touch them together.
"""

from __future__ import annotations

import re
import secrets

PREFIX = "tokenrelay"

GENERATION_ID = re.compile(r"^gen_[0-9a-f]{32}$")

GENERATION_JOB = "run_generation"
"""The arq function that runs a generation: the API enqueues it, workers register it."""

JOBS_CHANNEL = f"{PREFIX}:jobs"
"""Pub/sub channel on which a newly queued job wakes idle workers (services/job_wakeups.py)."""

CANCEL_CHANNEL = f"{PREFIX}:cancel"
"""Pub/sub channel on which a cancel request names the generation to stop."""

RECENT = f"{PREFIX}:recent"
"""Sorted set of generation ids by creation time, for listings."""

RUNNING = f"{PREFIX}:running"
"""Sorted set of generations a worker has picked up, scored by when to check their lease (ms).

One global key, so it is written beside the generation's scripts, never inside them
(a Cluster script may only touch one slot): see worker/reaper.py for why that is safe.
"""


def new_generation_id() -> str:
    return f"gen_{secrets.token_hex(16)}"


def is_generation_id(value: str) -> bool:
    return GENERATION_ID.fullmatch(value) is not None


def events(gen_id: str) -> str:
    """The Redis Stream of a generation's events: the single source of truth."""
    return f"{PREFIX}:{{{gen_id}}}:events"


def meta(gen_id: str) -> str:
    """Hash: the request, the status and the bookkeeping a status read needs."""
    return f"{PREFIX}:{{{gen_id}}}:meta"


def text(gen_id: str) -> str:
    """String: the current attempt's text so far, appended by the same script as each delta."""
    return f"{PREFIX}:{{{gen_id}}}:text"


def lease(gen_id: str) -> str:
    """String with a TTL: the token of the worker that owns the current attempt."""
    return f"{PREFIX}:{{{gen_id}}}:lease"


def tombstone(gen_id: str) -> str:
    """Tiny string that outlives the generation's keys, so a 404 can say "expired"."""
    return f"{PREFIX}:{{{gen_id}}}:known"


def takeover_job_id(gen_id: str, takeover: int) -> str:
    """The arq job id of a generation's n-th takeover: arq refuses a second job of one id."""
    return f"{gen_id}:takeover{takeover}"


def generation_of_job(job_id: str) -> str | None:
    """The generation an arq job runs (its first run's id or a takeover's), else None."""
    gen_id = job_id.partition(":takeover")[0]
    return gen_id if is_generation_id(gen_id) else None


def all_for(gen_id: str) -> tuple[str, str, str, str]:
    """Keys in the order the store's scripts expect them."""
    return meta(gen_id), events(gen_id), text(gen_id), lease(gen_id)


def viewers(gen_id: str) -> str:
    """Hash: replica id -> "count deadline_ms", the open SSE connections to a generation."""
    return f"{PREFIX}:{{{gen_id}}}:viewers"


def live(gen_id: str) -> str:
    """Sharded pub/sub channel on which a Cluster's write scripts announce new entries.

    Same hash tag as the stream, so the script that appends may publish (SPUBLISH)
    and the channel lives on the node that holds the stream (api/streaming/sharded.py).
    """
    return f"{PREFIX}:{{{gen_id}}}:live"


def hub_wake(replica_id: str) -> str:
    """Stream an API process's shared reader also watches, so adding a stream wakes it."""
    return f"{PREFIX}:hub:{replica_id}:wake"


# Access control (api/auth.py, services/api_keys.py, services/limits.py): all on the
# control Redis, never beside a generation's keys in one script or MULTI.

SIGNING_KEY = f"{PREFIX}:signing-key"
"""String: the viewer-token signing key generated once when TOKENRELAY_SIGNING_KEY is unset."""

API_KEY_IDS = f"{PREFIX}:apikeys"
"""Hash: managed key id -> the SHA-256 of the key, for `keys list` and `keys revoke ID`."""


def api_key(digest: str) -> str:
    """Hash: a managed key's record (tenant, scopes, limits, revoked_at), by the key's SHA-256."""
    return f"{PREFIX}:apikey:{digest}"


def tenant_recent(tenant: str) -> str:
    """Sorted set of one tenant's generation ids by creation time, for its listings."""
    return f"{PREFIX}:tenant:{{{tenant}}}:recent"


def tenant_running(tenant: str) -> str:
    """Sorted set: one tenant's queued and running generations, scored by a backstop deadline."""
    return f"{PREFIX}:tenant:{{{tenant}}}:running"


def key_requests(key_id: str) -> str:
    """Sorted set: one key's generation requests of the last minute (sliding window)."""
    return f"{PREFIX}:key:{{{key_id}}}:requests"


def key_streams(key_id: str) -> str:
    """Sorted set: one key's open SSE streams on every replica, scored by a refreshed deadline."""
    return f"{PREFIX}:key:{{{key_id}}}:streams"
