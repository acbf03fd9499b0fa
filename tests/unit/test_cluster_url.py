"""Reading a cluster URL (seed nodes, login percent-decoded, TLS), and a cluster node
behind a plain URL reported at start-up."""

from __future__ import annotations

import pytest

from services.config import Settings
from services.redis_checks import redis_setting_warnings
from services.redis_connections import cluster_credentials, cluster_nodes


def test_seeds_login_and_tls_of_a_cluster_url() -> None:
    url = "rediss+cluster://app:p%40ss%3Aw%2Frd@10.0.0.1:7000,redis-b:7001,redis-c,[::1]:7002/0"
    assert [(n.host, n.port) for n in cluster_nodes(url)] == [
        ("10.0.0.1", 7000),
        ("redis-b", 7001),
        ("redis-c", 6379),
        ("::1", 7002),
    ]
    assert cluster_credentials(url) == {"username": "app", "password": "p@ss:w/rd", "ssl": True}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis+cluster://h:7000/0", {"username": None, "password": None, "ssl": False}),
        (
            "redis+cluster://:secret@h:7000/0",
            {"username": None, "password": "secret", "ssl": False},
        ),
    ],
)
def test_a_cluster_url_without_a_full_login(url: str, expected: dict[str, object]) -> None:
    assert cluster_credentials(url) == expected


@pytest.mark.parametrize(
    ("url", "on_cluster"),
    [
        ("redis+cluster://h:7000/0", True),
        ("rediss+cluster://h:7000/0", True),
        ("redis://h:6379/0", False),
        ("rediss://h:6379/0", False),
        (None, False),
    ],
)
def test_which_streams_urls_name_a_cluster(url: str | None, on_cluster: bool) -> None:
    assert Settings(streams_redis_url=url).streams_on_cluster is on_cluster


def test_a_cluster_node_as_the_control_redis_is_reported_with_the_fix() -> None:
    memory: dict[str, object] = {"maxmemory_policy": "noeviction"}
    persistence: dict[str, object] = {"aof_enabled": 1}
    assert redis_setting_warnings(memory, persistence, {"cluster_enabled": 0}) == []
    [warning] = redis_setting_warnings(memory, persistence, {"cluster_enabled": 1}, "control")
    assert "(TOKENRELAY_REDIS_URL) must be a plain Redis" in warning
    assert "TOKENRELAY_STREAMS_REDIS_URL=redis+cluster://" in warning
