"""Real tokenrelay processes for tests: `tokenrelay api` and `tokenrelay worker`.

Each runs as `python -m cli.main ...` with its own environment and a log file,
so a test can SIGKILL or SIGTERM it and read what it said.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from cli.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]


class ServiceProcess:
    def __init__(self, args: list[str], env: Mapping[str, str], name: str) -> None:
        self.name = name
        self.log_path = Path(tempfile.mkstemp(prefix=f"tokenrelay-{name}-", suffix=".log")[1])
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", *args],
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout_s: float = 20) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.log():
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} never logged {text!r}:\n{self.log()}")
            time.sleep(0.05)

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout_s: float = 15) -> int:
        self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9
        finally:
            self._log.close()


class ApiProcess(ServiceProcess):
    def __init__(self, env: Mapping[str, str], port: int | None = None) -> None:
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        super().__init__(["api", "--port", str(self.port)], env, f"api-{self.port}")

    def wait_ready(self, timeout_s: float = 20) -> ApiProcess:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"API exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"API not ready:\n{self.log()}")
            time.sleep(0.05)


class WorkerProcess(ServiceProcess):
    def __init__(self, env: Mapping[str, str]) -> None:
        super().__init__(["worker"], env, "worker")

    def wait_ready(self, timeout_s: float = 20) -> WorkerProcess:
        self.wait_for_log("tokenrelay worker ready", timeout_s)
        return self


def stack_env(redis_url: str, **overrides: str) -> dict[str, str]:
    """Environment for test processes: fast demo tokens, short heartbeats and leases."""
    env = {
        "TOKENRELAY_REDIS_URL": redis_url,
        "TOKENRELAY_DEMO_TOKENS_PER_S": "200",
        "TOKENRELAY_HEARTBEAT_S": "1",
        "TOKENRELAY_SHUTDOWN_GRACE_S": "3",
        "TOKENRELAY_WORKER_DRAIN_S": "1",
        "TOKENRELAY_API_KEYS": "",
    }
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        env[name] = ""
    env.update(overrides)
    return {key: value for key, value in env.items()}
