"""The processes a benchmark run needs: a private Redis, and the two servers under test.

Everything listens on 127.0.0.1 only, on free ports; the Redis is private to the
run (never the machine's 6379) and keeps nothing on disk.
"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from cli.redis_server import find_redis_server, free_port, private_redis

ROOT = Path(__file__).resolve().parents[1]


def raise_fd_limit(wanted: int = 20_000) -> int:
    """Raise this process's (and so its children's) open-file limit as far as allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@contextlib.contextmanager
def redis_for_connections(connections: int) -> Iterator[str]:
    """A private redis-server (its URL) for a run that holds `connections` viewers,
    with the open-file limit raised for them; exits with the reason when this
    machine cannot (too low a limit, no redis-server)."""
    limit = raise_fd_limit()
    # The limit is per process: the server holds every connection, and each client
    # process its share (bench/scenarios.py splits them over several).
    if limit < connections + 200:
        raise SystemExit(f"open-file limit {limit} is too low for {connections} connections")
    binary = find_redis_server()
    if binary is None:
        raise SystemExit("no redis-server found")
    with private_redis(binary, extra_args=("--maxclients", str(limit - 100))) as redis_url:
        yield redis_url


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for_listener(port: int, timeout_s: float = 30) -> None:
    """Until something accepts connections on 127.0.0.1:`port` (a server just started)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class Server:
    """A server under test: `tokenrelay api` (the hub) or `bench.naive` (the baseline)."""

    def __init__(self, kind: str, redis_url: str) -> None:
        self.kind = kind
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the server
            prefix=f"bench-{kind}-", suffix=".log", delete=False
        )
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "TOKENRELAY_REDIS_URL": redis_url,
            "TOKENRELAY_API_KEYS": "",
            "TOKENRELAY_MAX_SSE_CONNECTIONS": "50000",
            "TOKENRELAY_HEARTBEAT_S": "15",
        }
        if kind == "hub":
            args = ["-m", "cli.main", "api", "--port", str(self.port)]
        else:
            args = ["-m", "bench.naive", "--port", str(self.port), "--redis-url", redis_url]
        self.process = subprocess.Popen(
            [sys.executable, *args], env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._wait_listening()

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited: {Path(self.log.name).read_text()}")
            try:
                httpx.get(f"{self.base_url}/healthz", timeout=1)
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    @property
    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    @property
    def rss_kib(self) -> int:
        return rss_kib(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


@contextlib.contextmanager
def fake_upstream_process(provider: str) -> Iterator[str]:
    """A fake upstream of `provider` ("openai" or "anthropic", tests/support/fake_*.py)
    in a process of its own, as a real provider is: never sharing a GIL with the
    client or the servers under test. Yields its base URL, as that SDK wants it."""
    port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, "-m", f"tests.support.fake_{provider}", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_listener(port)
        yield f"http://127.0.0.1:{port}" + ("/v1" if provider == "openai" else "")
    finally:
        upstream.terminate()
        upstream.wait(10)
