"""`tokenrelay dev`: everything on one machine for a first run.

Uses the Redis at TOKENRELAY_REDIS_URL if it answers, else starts a private one
(see cli/redis_server.py). The API and one worker run as child processes with
that URL; Ctrl-C (or SIGTERM) stops all of them, the private Redis last.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

from cli.redis_server import NO_REDIS_HINT, find_redis_server, private_redis, redis_answers
from services.config import Settings


def run_dev(settings: Settings, *, port: int) -> int:
    with contextlib.ExitStack() as stack:
        redis_url = settings.redis_url
        if redis_answers(redis_url):
            print(f"tokenrelay dev: using Redis at {redis_url}", flush=True)
        else:
            binary = find_redis_server()
            if binary is None:
                print(NO_REDIS_HINT, file=sys.stderr)
                return 1
            redis_url = stack.enter_context(private_redis(binary))
            print(f"tokenrelay dev: started a private Redis at {redis_url}", flush=True)
        env = {**os.environ, "TOKENRELAY_REDIS_URL": redis_url}
        command = [sys.executable, "-m", "cli.main"]
        children = [
            subprocess.Popen([*command, "worker"], env=env),
            subprocess.Popen(
                [*command, "api", "--host", "127.0.0.1", "--port", str(port)], env=env
            ),
        ]
        print(
            f"tokenrelay dev: API on http://127.0.0.1:{port} (Ctrl-C stops everything)",
            flush=True,
        )
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        try:
            while all(child.poll() is None for child in children):
                time.sleep(0.2)
            return 1
        except KeyboardInterrupt:
            return 0
        finally:
            # A second Ctrl-C while the children stop must not cut their shutdown short.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            for child in children:
                try:
                    child.wait(timeout=settings.shutdown_grace_s + 5)
                except subprocess.TimeoutExpired:
                    child.kill()
    return 0
