"""The worker's group commit (worker/group_commit.py) on a real Redis.

Many generations' publishes go out together; each must still land exactly once,
get its own outcome (one generation's refusal is not another's), survive a Redis
that forgot its scripts, and fail, all together, when the connection goes; and
the sender must go on working after that.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, RedisError

from services import keys
from services.redis_checks import version_tuple
from services.redis_connections import is_redis_full
from services.store import EventBatch, GenerationStore, PublishOutcome
from tests.faults.support import RedisServer, begun_generation

# `own_redis` is the imported fixture: each test runs on the PATH's Redis and on 6.2
from tests.faults.support import own_redis_on_each_version as own_redis_on_each_version
from worker.group_commit import GroupCommit

LEASE_MS = 30_000


class CountingStore(GenerationStore):
    """The real store, counting the pipelines it sends (the round trips saved)."""

    pipelines = 0

    async def publish_many(
        self, writes: Sequence[tuple[str, str, EventBatch]]
    ) -> list[PublishOutcome | RedisError]:
        self.pipelines += 1
        return await super().publish_many(writes)


@pytest.fixture()
async def store(own_redis: RedisServer) -> AsyncIterator[CountingStore]:
    redis = Redis.from_url(own_redis.url, decode_responses=True, socket_timeout=2)
    try:
        yield CountingStore(redis, retention_s=60, max_stream_events=1000)
    finally:
        await redis.aclose()


@pytest.fixture()
async def commit(store: CountingStore) -> AsyncIterator[GroupCommit]:
    group = GroupCommit(store)
    group.start()
    try:
        yield group
    finally:
        await group.stop()


async def started(store: GenerationStore, token: str) -> str:
    return await begun_generation(store, token, LEASE_MS)


def text_batch(text: str, batch_id: str) -> EventBatch:
    return EventBatch([("delta", f'{{"text":"{text}"}}')], text, batch_id=batch_id)


async def test_many_generations_share_round_trips_and_each_lands_once(
    store: CountingStore, commit: GroupCommit
) -> None:
    gen_ids = [await started(store, f"token-{n}") for n in range(50)]

    async def write_three(n: int, gen_id: str) -> list[PublishOutcome]:
        return [
            await commit.publish(gen_id, f"token-{n}", text_batch(f"{word}{n} ", f"t{n}:{i}"))
            for i, word in enumerate(("one", "two", "three"))
        ]

    outcomes = await asyncio.gather(*(write_three(n, g) for n, g in enumerate(gen_ids)))
    assert outcomes == [["ok", "ok", "ok"]] * 50
    assert store.pipelines <= 10  # 150 writes; one round trip each before
    for n, gen_id in enumerate(gen_ids):
        status = await store.status(gen_id)
        assert status is not None
        assert status.content == f"one{n} two{n} three{n} "


async def test_each_write_gets_its_own_outcome(store: CountingStore, commit: GroupCommit) -> None:
    mine = await started(store, "token-a")
    theirs = await started(store, "token-b")
    fenced, ok = await asyncio.gather(
        commit.publish(theirs, "a-stale-token", text_batch("stale ", "x:1")),
        commit.publish(mine, "token-a", text_batch("fresh ", "a:1")),
    )
    assert (fenced, ok) == ("fenced", "ok")
    their_status = await store.status(theirs)
    assert their_status is not None and their_status.content == ""


async def test_a_write_that_fails_in_redis_fails_alone_and_the_others_land(
    store: CountingStore, commit: GroupCommit
) -> None:
    """All of a tick's writes run in one script call; one that Redis refuses (here
    its stream key holds a string) gets that error, and the writes around it land."""
    before, broken, after = [await started(store, f"token-{n}") for n in range(3)]
    await store.redis.delete(keys.events(broken))
    await store.redis.set(keys.events(broken), "not a stream")
    outcomes = await asyncio.gather(
        commit.publish(before, "token-0", text_batch("one ", "0:1")),
        commit.publish(broken, "token-1", text_batch("two ", "1:1")),
        commit.publish(after, "token-2", text_batch("three ", "2:1")),
        return_exceptions=True,
    )
    assert outcomes[0] == "ok" and outcomes[2] == "ok", outcomes
    assert isinstance(outcomes[1], RedisError) and "WRONGTYPE" in str(outcomes[1]), outcomes
    for gen_id, text in ((before, "one "), (after, "three ")):
        status = await store.status(gen_id)
        assert status is not None and status.content == text


async def test_a_full_redis_fails_every_write_and_the_sender_goes_on(
    store: CountingStore, commit: GroupCommit
) -> None:
    gen_ids = [await started(store, f"token-{n}") for n in range(3)]
    await store.redis.config_set("maxmemory-policy", "noeviction")
    await store.redis.config_set("maxmemory", "1")
    try:
        writes = [
            commit.publish(gen_id, f"token-{n}", text_batch("x ", f"{n}:1"))
            for n, gen_id in enumerate(gen_ids)
        ]
        outcomes = await asyncio.gather(*writes, return_exceptions=True)
    finally:
        await store.redis.config_set("maxmemory", "0")
    assert all(isinstance(o, BaseException) and is_redis_full(o) for o in outcomes), outcomes
    server = await store.redis.info("server")
    if version_tuple(str(server["redis_version"])) >= (7, 0):  # passed on as its own class
        assert all(isinstance(o, OutOfMemoryError) for o in outcomes), outcomes
    assert await commit.publish(gen_ids[0], "token-0", text_batch("y ", "0:2")) == "ok"
    status = await store.status(gen_ids[0])
    assert status is not None and status.content == "y "


async def test_a_redis_that_forgot_its_scripts_is_taught_again(
    store: CountingStore, commit: GroupCommit
) -> None:
    gen_id = await started(store, "token-a")
    assert await commit.publish(gen_id, "token-a", text_batch("before ", "a:1")) == "ok"
    await store.redis.script_flush()  # what a Redis restart does
    assert await commit.publish(gen_id, "token-a", text_batch("after ", "a:2")) == "ok"
    status = await store.status(gen_id)
    assert status is not None and status.content == "before after "


async def test_a_lost_connection_fails_the_waiting_writes_and_the_sender_goes_on(
    own_redis: RedisServer, store: CountingStore, commit: GroupCommit
) -> None:
    gen_id = await started(store, "token-a")
    own_redis.stop()
    results = await asyncio.gather(
        *(commit.publish(gen_id, "token-a", text_batch("lost ", f"a:{i}")) for i in range(5)),
        return_exceptions=True,
    )
    assert all(isinstance(result, RedisConnectionError) for result in results), results
    own_redis.start()
    gen_id = await started(store, "token-b")
    assert await commit.publish(gen_id, "token-b", text_batch("back ", "b:1")) == "ok"


async def test_writes_that_follow_a_pipeline_closely_wait_to_share_the_next(
    store: CountingStore,
) -> None:
    """A busy worker's writes arrive one by one: each pipeline waits out a short
    linger after the previous one, so they gather; a write after a quiet moment
    (a first token) goes out at once."""
    group = GroupCommit(store, linger_s=0.5)  # long enough to see on a loaded machine
    group.start()
    try:
        gen_ids = [await started(store, f"token-{n}") for n in range(3)]
        began = time.monotonic()
        first = await group.publish(gen_ids[0], "token-0", text_batch("first ", "0:1"))
        assert first == "ok"
        assert time.monotonic() - began < 0.5  # not held for the linger
        pipelines = store.pipelines
        second = group.submit(gen_ids[1], "token-1", text_batch("second ", "1:1"))
        await asyncio.sleep(0.1)  # without the linger, "second" would be written by now
        assert not second.done()
        third = group.submit(gen_ids[2], "token-2", text_batch("third ", "2:1"))
        assert list(await asyncio.gather(second, third)) == ["ok", "ok"]
        assert store.pipelines == pipelines + 1  # both in one
    finally:
        await group.stop()


async def test_a_first_delta_ends_the_linger(store: CountingStore) -> None:
    """Time to first token: an attempt's first write does not wait out a busy
    worker's linger, and takes the writes waiting with it."""
    group = GroupCommit(store, linger_s=5.0)
    group.start()
    try:
        gen_ids = [await started(store, f"token-{n}") for n in range(3)]
        assert await group.publish(gen_ids[0], "token-0", text_batch("a ", "0:1")) == "ok"
        waiting = group.submit(gen_ids[1], "token-1", text_batch("b ", "1:1"))
        await asyncio.sleep(0.1)
        assert not waiting.done()  # lingering
        began = time.monotonic()
        first = group.submit(gen_ids[2], "token-2", text_batch("c ", "2:1"), urgent=True)
        assert list(await asyncio.gather(waiting, first)) == ["ok", "ok"]
        assert time.monotonic() - began < 4.0  # well before the 5 s linger ends
    finally:
        await group.stop()
