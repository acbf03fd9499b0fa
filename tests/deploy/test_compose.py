"""The deployment files keep what SSE behind a load balancer needs.

`docker compose config` validates the file where a Docker CLI with the compose
plugin (or docker-compose v1) exists; the structural checks run everywhere.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_config_validates() -> None:
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    checked = subprocess.run(
        [*command, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


def test_two_api_replicas_workers_and_a_persistent_redis() -> None:
    services = compose()["services"]
    apis = [s for s in services.values() if s.get("command", [])[:2] == ["tokenrelay", "api"]]
    assert len(apis) >= 2, "at least two API replicas"
    for api in apis:
        assert any("TOKENRELAY_REDIS_URL=redis://redis" in e for e in api["environment"])
        assert "readyz" in " ".join(api["healthcheck"]["test"])
    workers = [s for s in services.values() if s.get("command") == ["tokenrelay", "worker"]]
    assert workers, "workers"
    redis_command = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_command
    assert "--maxmemory-policy noeviction" in redis_command
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"])
    assert "lb" in services and services["lb"]["ports"]


def test_load_balancers_are_set_up_for_event_streams() -> None:
    haproxy = (ROOT / "deploy" / "haproxy.cfg").read_text()
    assert "timeout server 1h" in haproxy and "timeout client 1h" in haproxy
    assert "option httpchk GET /readyz" in haproxy
    assert "\n    compression" not in haproxy, "event streams must never be compressed"
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    for directive in ("proxy_buffering off;", "proxy_read_timeout 1h;", "gzip off;"):
        assert directive in nginx
