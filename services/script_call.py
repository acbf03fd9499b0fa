"""A Lua script call as data, so one module's write can run inside another's script.

The API's status record and listing (services/store.py) and its job's queueing
(services/job_wakeups.py) are each a script of their own module; on one Redis they
run as one script, in one round trip (`chained`).
"""

from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript


@dataclass(frozen=True, slots=True)
class ScriptCall:
    """One call of a Lua script: its source, its keys and its arguments."""

    source: str
    keys: list[str]
    args: list[Any]

    async def run(self, client: Redis) -> Any:
        """Run this call on `client` (by its SHA, loading the script when Redis lacks it)."""
        return await registered(client, self.source)(keys=self.keys, args=self.args)


# Two script bodies as one: each runs as a function whose KEYS and ARGV are its own,
# one after the other; ARGV starts with the count of the first's keys and of its
# arguments. An error reply of the first stops the script before the second runs.
_CHAINED = """
local function first(KEYS, ARGV)
{first}
end
local function second(KEYS, ARGV)
{second}
end
local key_count, arg_count = tonumber(ARGV[1]), tonumber(ARGV[2])
first({{unpack(KEYS, 1, key_count)}}, {{unpack(ARGV, 3, 2 + arg_count)}})
return second({{unpack(KEYS, key_count + 1)}}, {{unpack(ARGV, 3 + arg_count)}})
"""


def chained(first: ScriptCall, second: ScriptCall) -> ScriptCall:
    """`first`, then `second`, as one atomic script call answering what `second` answers
    (for keys on one Redis, never a cluster)."""
    return ScriptCall(
        _chained_source(first.source, second.source),
        [*first.keys, *second.keys],
        [len(first.keys), len(first.args), *first.args, *second.args],
    )


@functools.lru_cache(maxsize=64)
def _chained_source(first: str, second: str) -> str:
    return _CHAINED.format(first=first, second=second)


_registered: weakref.WeakKeyDictionary[Redis, dict[str, AsyncScript]] = weakref.WeakKeyDictionary()


def registered(client: Redis, source: str) -> AsyncScript:
    """`source` registered on `client` once (redis-py hashes the source at registration)."""
    scripts = _registered.setdefault(client, {})
    script = scripts.get(source)
    if script is None:
        script = scripts[source] = client.register_script(source)
    return script
