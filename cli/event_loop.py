"""The event loop a `tokenrelay worker` process runs on: uvloop when it is installed.

uvicorn already runs the API on uvloop (`loop="auto"`); the worker is arq's, which
takes whatever loop the policy gives it. A worker's time goes to timers, socket
writes and callbacks, which uvloop does in C: at 1,000 concurrent generations it
is the difference between one core carrying them and not (bench/README.md).
Without uvloop (it is optional on some platforms) the standard loop is used, as
uvicorn does.
"""

from __future__ import annotations

import asyncio


def install_fastest_loop() -> None:
    """Make new event loops uvloop's when it is importable (the worker logs which it got)."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
