"""Which Redis failures are a passing outage (503 with Retry-After), and which are bugs (500)."""

from __future__ import annotations

import pytest
from redis._parsers import _AsyncRESP2Parser
from redis.asyncio.cluster import ClusterParser
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.errors import REDIS_DOWN, REDIS_FULL, failure_of
from services.redis_connections import is_passing_outage, is_redis_full


@pytest.mark.parametrize(
    "exc",
    [
        RedisConnectionError("Connection closed by server."),
        RedisTimeoutError("Timeout reading from socket"),
        ReadOnlyError("READONLY You can't write against a read only replica."),
        ResponseError("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is no"),
        ResponseError("LOADING Redis is loading the dataset in memory"),
        ResponseError("TRYAGAIN Multiple keys request during rehashing of slot"),
        ResponseError("CLUSTERDOWN The cluster is down"),
        # Redis 6.2 wraps a command's error inside a script in the script's own
        ResponseError("@user_script: 12: -READONLY You can't write against a read only replica."),
    ],
)
def test_failover_and_restart_replies_are_a_passing_outage(exc: Exception) -> None:
    assert is_passing_outage(exc)
    assert failure_of(exc) == REDIS_DOWN


@pytest.mark.parametrize("parser", [ClusterParser, _AsyncRESP2Parser])
@pytest.mark.parametrize(
    "reply",
    [
        "CLUSTERDOWN The cluster is down",
        "TRYAGAIN Multiple keys request during rehashing of slot",
        "READONLY You can't write against a read only replica.",
        "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
        "LOADING Redis is loading the dataset in memory",
        "NOREPLICAS Not enough good replicas to write.",
    ],
)
def test_failover_replies_as_redis_py_raises_them_are_a_passing_outage(
    parser: type[_AsyncRESP2Parser], reply: str
) -> None:
    """redis-py's parsers turn most of these replies into classes of their own and cut
    the code off the message (a ClusterDownError says "The cluster is down"): the
    check must know them by class, or a failover mid-request answers 500."""
    exc = parser(socket_read_size=65536).parse_error(reply)  # type: ignore[no-untyped-call]  # untyped in redis-py
    assert is_passing_outage(exc), (type(exc).__name__, str(exc))
    assert failure_of(exc) == REDIS_DOWN


@pytest.mark.parametrize(
    "exc",
    [
        ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
        ResponseError("ERR Error running script: attempt to compare nil with number"),
        RuntimeError("something of ours went wrong"),
        AttributeError("'NoneType' object has no attribute 'id'"),
    ],
)
def test_other_failures_stay_errors(exc: Exception) -> None:
    assert not is_passing_outage(exc)
    assert not is_redis_full(exc)
    assert failure_of(exc).status == 500


@pytest.mark.parametrize(
    "exc",
    [
        OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),  # Redis 7
        ResponseError("@user_script: 8: -OOM command not allowed when used memory > 'maxmemory'."),
        ResponseError(
            "Error running script (call to f_0123): @user_script:8: @user_script: 8: "
            "-OOM command not allowed when used memory > 'maxmemory'."
        ),
    ],
)
def test_a_full_redis_is_known_in_every_form_redis_gives(exc: Exception) -> None:
    """As redis-py raises a full Redis's refusal from inside a script: Redis 7 passes
    the OOM reply on (OutOfMemoryError); Redis 6.2 wraps it in the script's error."""
    assert is_redis_full(exc)
    assert not is_passing_outage(exc)
    assert failure_of(exc) == REDIS_FULL
