"""The group commit's pipeline (services/resp_pipeline.py) on a real redis-server.

It encodes commands itself, so it must encode exactly as redis-py does, return
every reply in its place (an error reply too), and never hand back a connection
whose replies were not all read.
"""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from services import keys
from services.resp_pipeline import encode_bulk, encode_command, send_pipeline
from services.store import EventBatch, GenerationStore
from tests.faults.support import RedisServer

ARGUMENTS: list[str | bytes | int | float] = [
    "EVALSHA",
    "7f26feaa52bbc0728f7b9eb00df0327418caf3b6",
    4,
    "tokenrelay:{gen_x}:meta",
    "",
    "naïve 🦜 text",
    b"\x00\xffraw",
    86_400_000,
    -3,
    1796218245.5814471,
    "x" * 10_000,  # past redis-py's own buffer cutoff
]


def test_commands_are_encoded_exactly_as_redis_py_encodes_them() -> None:
    assert encode_command(ARGUMENTS) == b"".join(Connection().pack_commands([ARGUMENTS]))


def test_a_bulk_string_is_the_argument_as_encode_command_writes_it() -> None:
    for arg in ("", "a", "naïve 🦜 text", "x" * 10_000):
        assert array_free(encode_command([arg])) == encode_bulk(arg)


def array_free(command: bytes) -> bytes:
    return command.partition(b"\r\n")[2]


def test_the_group_commits_call_is_the_command_publish_would_send_for_each_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`publish_many` encodes its call from pieces (cached keys, constant limits):
    the bytes must be those of the plain argument list, built as `publish` builds it."""
    monkeypatch.setattr("services.store.time.time", lambda: 1796218245.5814471)
    store = GenerationStore(Redis(), retention_s=86_400, max_stream_events=100_000)
    writes = [
        ("gen_a", "t" * 32, EventBatch(events=[("delta", '{"text":"hi"}')], text_append="hi")),
        (
            "gen_b",
            "u" * 32,
            EventBatch(
                events=[("delta", '{"text":"naïve 🦜"}'), ("done", '{"finish_reason":"stop"}')],
                text_append="naïve 🦜",
                terminal_status="completed",
                finish_reason="stop",
                usage_json='{"input_tokens":1}',
                batch_id="u:2",
            ),
        ),
        ("gen_a", "t" * 32, EventBatch(tool_calls_json="[]", batch_id="t:9")),
        # deltas alone: the status fields are encoded as constants (`_encoded_fields`)
        (
            "gen_c",
            "v" * 32,
            EventBatch(
                events=[("delta", '{"text":"a"}'), ("delta", '{"text":"\\u00e9"}')],
                text_append="aé",
                batch_id="v:3",
            ),
        ),
        ("gen_c", "v" * 32, EventBatch(events=[("reset", '{"attempt":2}')], batch_id="v:4")),
        ("gen_c", "v" * 32, EventBatch(batch_id="v:5")),
    ]
    runs: list[str | bytes | int | float] = [len(writes)]
    for _, token, batch in writes:
        run = store._publish_args(token, batch)
        runs.extend((len(run), *run))
    every_key = [key for gen_id, _, _ in writes for key in keys.all_for(gen_id)]
    sha = store._publish_many.sha
    expected = encode_command(["EVALSHA", sha, len(every_key), *every_key, *runs])
    assert store._publish_many_command(writes) == expected
    source = store._publish_many.source
    expected = encode_command(["EVAL", source, len(every_key), *every_key, *runs])
    assert store._publish_many_command(writes, evaluate=True) == expected


def test_a_bool_is_refused_as_redis_py_refuses_it() -> None:
    with pytest.raises(TypeError):
        encode_command(["SET", "k", True])


async def test_replies_come_back_in_order_with_an_error_in_its_place(
    own_redis: RedisServer,
) -> None:
    client = Redis.from_url(own_redis.url, decode_responses=True)
    try:
        replies = await send_pipeline(
            client.connection_pool,
            [
                ["SET", "k", "naïve 🦜"],
                ["INCR", "k"],  # not an integer: this command's own error
                ["GET", "k"],
                ["EVALSHA", "0" * 40, 0],  # NOSCRIPT, as after a Redis restart
            ],
        )
        assert replies[0] == "OK"  # raw replies: no response callbacks
        assert isinstance(replies[1], ResponseError)
        assert replies[2] == "naïve 🦜"
        assert isinstance(replies[3], NoScriptError)  # what publish_many loads and resends on
        assert await client.get("k") == "naïve 🦜"  # the connection went back clean
    finally:
        await client.aclose()


async def test_a_lost_connection_raises_and_the_next_call_reconnects(
    own_redis: RedisServer,
) -> None:
    client = Redis.from_url(own_redis.url, decode_responses=True)
    try:
        assert await send_pipeline(client.connection_pool, [["PING"]]) == ["PONG"]
        own_redis.stop()
        with pytest.raises((RedisConnectionError, OSError)):
            await send_pipeline(client.connection_pool, [["PING"], ["PING"]])
        own_redis.start()
        assert await send_pipeline(client.connection_pool, [["PING"]]) == ["PONG"]
    finally:
        await client.aclose()
