"""Fixtures for the Cluster suite: a real 3-master Redis Cluster holding the generations.

The control Redis (queue, indexes) stays the session's private redis-server; every
generation lives on the cluster (`TOKENRELAY_STREAMS_REDIS_URL=redis+cluster://…`).
The `stack` fixture is overridden here, so the stream suites re-collected in this
package (tests/cluster/test_stream_suite.py) run unchanged against the cluster.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.processes import stack_env
from tests.support.redis_topologies import RedisCluster, redis_cluster
from tests.support.stack import Stack, running_stack


@pytest.fixture(scope="session")
def cluster() -> Iterator[RedisCluster]:
    """Three masters with a replica each, shared by the tests that kill nothing."""
    with redis_cluster(masters=3) as running:
        yield running


@pytest.fixture(scope="session")
def stack(redis_url: str, cluster: RedisCluster) -> Iterator[Stack]:
    """One API and one worker whose generations live on the cluster."""
    # A queue of its own: the session's other workers (tests/conftest.py's stack)
    # share this control Redis and would take jobs whose generations they cannot see.
    env = stack_env(
        redis_url,
        TOKENRELAY_STREAMS_REDIS_URL=cluster.url,
        TOKENRELAY_QUEUE_NAME="tokenrelay:cluster-queue",
    )
    with running_stack(redis_url, env) as running:
        yield running
