"""docker-compose.cluster.yml: a 3+3 cluster, a Sentinel group, 2 APIs, 2 workers.

Validated with `docker compose config` where a compose CLI exists; the structure
is checked everywhere.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml

from tests.deploy.test_compose import ROOT, compose_command

FILE = ROOT / "docker-compose.cluster.yml"


def services() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(FILE.read_text())["services"]
    return loaded


def test_cluster_compose_config_validates() -> None:
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    checked = subprocess.run(
        [*command, "-f", str(FILE), "config", "-q"], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr


def test_three_masters_three_replicas_and_three_sentinels() -> None:
    found = services()
    nodes = [s for name, s in found.items() if name.startswith("redis-node-")]
    assert len(nodes) == 6
    for node in nodes:
        args = " ".join(node["command"])
        for setting in (
            "--cluster-enabled yes",
            "--appendonly yes",
            "--maxmemory-policy noeviction",
            "--cluster-replica-validity-factor 0",
            "--cluster-node-timeout",
        ):
            assert setting in args
    assert "--cluster-replicas 1" in " ".join(found["cluster-init"]["command"])
    sentinels = [s for name, s in found.items() if name.startswith("sentinel-")]
    assert len(sentinels) == 3
    assert "sentinel monitor tokenrelay redis-control 6379 2" in sentinels[0]["command"][-1]
    assert "--replicaof" in found["redis-control-replica"]["command"]


def test_apis_and_workers_use_both_roles() -> None:
    found = services()
    apis = [s for s in found.values() if s.get("command", [])[:2] == ["tokenrelay", "api"]]
    workers = [s for s in found.values() if s.get("command") == ["tokenrelay", "worker"]]
    assert len(apis) == 2
    assert workers and workers[0]["deploy"]["replicas"] == 2
    for service in [*apis, *workers]:
        env = service["environment"]
        assert env["TOKENRELAY_STREAMS_REDIS_URL"].startswith("redis+cluster://")
        assert env["TOKENRELAY_STREAMS_REDIS_URL"].count("redis-node-") == 6
        assert env["TOKENRELAY_REDIS_SENTINEL_MASTER"] == "tokenrelay"
        assert env["TOKENRELAY_REDIS_SENTINELS"].count(":26379") == 3
    assert "readyz" in " ".join(apis[0]["healthcheck"]["test"])
