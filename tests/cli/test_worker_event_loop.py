"""`tokenrelay worker` runs on uvloop, as uvicorn runs the API: a busy worker's time
is timers, socket writes and callbacks, which uvloop does in C (bench/README.md)."""

from __future__ import annotations

import os

from tests.support.processes import WorkerProcess, stack_env


def test_the_worker_process_runs_on_uvloop(redis_url: str) -> None:
    queue = f"tokenrelay:queue:loop-{os.getpid()}"
    worker = WorkerProcess(stack_env(redis_url, TOKENRELAY_QUEUE_NAME=queue)).wait_ready()
    try:
        assert "(event loop: uvloop)" in worker.log()
    finally:
        worker.stop()
