"""One round trip of many commands, encoded without redis-py's per-argument machinery.

Why: the worker's group commit (worker/group_commit.py) sends every running
generation's publish in one script call, about 20 arguments each, tens of
thousands a second on a busy worker. redis-py's pipeline encodes each argument
through its generic encoder and queues each command through its command layer:
about 12 µs of CPU per script call here, against 4 µs for the plain RESP
encoding below (bench/README.md, "Worker capacity"). The connection, its pool,
its timeouts and the reply parser are still redis-py's own; only the encoding and
the bookkeeping around it are done here.

Replies come back in order; an error reply is returned in its place (as
redis-py's `execute(raise_on_error=False)` does). Any other failure (a lost
connection, a timeout) raises, and the connection is dropped rather than handed
back with replies unread.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio.connection import ConnectionPool
from redis.exceptions import ResponseError

Arg = str | bytes | int | float


_EMPTY_BULK = b"$0\r\n\r\n"


def encode_bulk(arg: str) -> bytes:
    """One argument as a RESP bulk string: a caller that encodes a command piece by
    piece (and reuses the pieces that do not change) joins these after `array_header`."""
    if not arg:
        return _EMPTY_BULK
    data = arg.encode()
    return b"$%d\r\n%b\r\n" % (len(data), data)


def array_header(count: int) -> bytes:
    """What starts a command of `count` arguments."""
    return b"*%d\r\n" % count


def encode_command(args: Sequence[Arg]) -> bytes:
    """`args` as one RESP array of bulk strings, as redis-py would encode them."""
    parts = [array_header(len(args))]
    for arg in args:
        if isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, bool):
            raise TypeError("a bool is not a Redis argument")
        elif isinstance(arg, int | float):
            data = repr(arg).encode()
        else:
            raise TypeError(f"not a Redis argument: {type(arg).__name__}")
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


async def send_pipeline(
    pool: ConnectionPool, commands: Sequence[Sequence[Arg]]
) -> list[object | ResponseError]:
    """Send `commands` in one write on one pooled connection; their replies, in order."""
    return await send_encoded(pool, [encode_command(command) for command in commands])


async def send_encoded(
    pool: ConnectionPool, commands: Sequence[bytes]
) -> list[object | ResponseError]:
    """`send_pipeline` for commands already encoded (`encode_command`, or pieces of it)."""
    connection = await pool.get_connection()
    try:
        await connection.send_packed_command(b"".join(commands))
        replies: list[object | ResponseError] = []
        for _ in commands:
            try:
                replies.append(await connection.read_response())
            except ResponseError as error:  # this command's own error reply
                replies.append(error)
    except BaseException:
        await connection.disconnect(nowait=True)
        raise
    finally:
        await pool.release(connection)
    return replies
