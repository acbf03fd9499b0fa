"""A Lua script call as data, so one module's write can run inside another's script.

The API's status record (services/store.py) and its job's queueing
(services/job_wakeups.py) are each a script of their own module; on one Redis they
run as one script, in one round trip (`write_then_queue_job`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ScriptCall:
    """One call of a Lua script: its source, its keys and its arguments."""

    source: str
    keys: list[str]
    args: list[Any]
