"""The streams role's cluster client finds the cluster again, whatever redis-py forgot.

redis-py drops a node from its list of places to learn the topology from each
time a command to it fails, and the disconnects that follow a dead master make
commands to live nodes fail too: the list can end up empty, and the stock client
then reports the cluster unreachable for the rest of its life. These tests empty
that list as such a failover does and check the client recovers on its own.
"""

from __future__ import annotations

import asyncio
import uuid

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode

from cli.redis_server import free_port
from services.config import Settings
from services.redis_connections import StreamsCluster, streams_client
from tests.support.redis_topologies import RedisCluster


def _client(cluster: RedisCluster) -> StreamsCluster:
    control = Redis()  # never used: the cluster holds every key of these tests
    client = streams_client(Settings(streams_redis_url=cluster.url), "test-cluster", control)
    assert isinstance(client, StreamsCluster)
    return client


async def test_a_client_that_forgot_every_node_finds_the_cluster_again(
    cluster: RedisCluster,
) -> None:
    client = _client(cluster)
    key = f"tokenrelay:{{test-{uuid.uuid4().hex}}}:meta"
    try:
        await client.set(key, "kept", ex=60)
        client.nodes_manager.startup_nodes.clear()  # what failing commands do, one by one
        await client.aclose()  # and the disconnect that forces a topology refresh
        assert await client.get(key) == "kept"
    finally:
        await client.delete(key)
        await client.aclose()


async def test_commands_failing_during_a_refresh_do_not_break_it(cluster: RedisCluster) -> None:
    """A refresh awaits each node in turn while failing commands remove nodes from
    the list it walks; with redis-py's live dict view, a refresh that had to go past
    a dead node raised "dictionary changed size during iteration"."""
    client = _client(cluster)
    key = f"tokenrelay:{{test-{uuid.uuid4().hex}}}:meta"
    try:
        await client.set(key, "kept", ex=60)
        await client.aclose()
        manager = client.nodes_manager
        # A dead master first in the list, as after a failover: asking it fails, and
        # the refresh moves on to the next node, if the list still lets it.
        live = dict(manager.startup_nodes)
        dead = ClusterNode("127.0.0.1", free_port(), **manager.connection_kwargs)
        manager.startup_nodes.clear()
        manager.startup_nodes[dead.name] = dead
        manager.startup_nodes.update(live)

        async def forget_nodes_meanwhile() -> None:
            await asyncio.sleep(0)
            manager.startup_nodes.pop(dead.name, None)

        forgetting = asyncio.create_task(forget_nodes_meanwhile())
        assert await client.get(key) == "kept"
        await forgetting
    finally:
        await client.delete(key)
        await client.aclose()
