"""A Redis that hangs (paused, partitioned) turns into prompt 503s, not stuck requests."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import redis

from tests.faults.support import Processes, RedisServer, fault_env


def redis_pid(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        server: dict[str, int] = client.info("server")  # type: ignore[assignment]  # sync client
        return int(server["process_id"])
    finally:
        client.close()


async def test_hung_redis_answers_503_and_recovers(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, appendonly=False)
    server.start()
    procs = Processes(fault_env(server.url, TOKENRELAY_REDIS_TIMEOUT_S="1"))
    pid = redis_pid(server.url)
    body = {"model": "demo/echo", "messages": [{"role": "user", "content": "still here"}]}
    try:
        api = procs.api().wait_ready()
        async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as client:
            os.kill(pid, signal.SIGSTOP)
            try:
                refused = await client.post("/v1/generations", json=body)
                assert refused.status_code == 503, refused.text
                assert refused.headers["retry-after"]
                assert refused.json()["error"]["type"] == "unavailable"
                assert (await client.get("/readyz")).status_code == 503
            finally:
                os.kill(pid, signal.SIGCONT)
            assert (await client.get("/readyz")).status_code == 200
            accepted = await client.post("/v1/generations", json=body)
            assert accepted.status_code == 202
    finally:
        procs.stop_all()
        server.stop()
