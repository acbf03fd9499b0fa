"""The baseline the hub is measured against: one blocking XREAD per SSE viewer.

Same web stack (FastAPI on uvicorn, httptools, uvloop), same route, same SSE
framing and the same stream entries as tokenrelay's API, so the only difference
the benchmark sees is how the events get from Redis to the connections: here
every viewer holds its own pooled Redis connection blocked in XREAD, which is
how the API worked before the hub (`api/tail.py`).

Run: `python -m bench.naive --port P --redis-url URL`.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI
from redis.asyncio import Redis
from starlette.responses import StreamingResponse

from api.formats.base import sse_frame
from services import keys

HEADERS = {"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"}


def create_naive_app(redis_url: str, heartbeat_s: float = 15.0) -> FastAPI:
    app = FastAPI()
    redis = Redis.from_url(redis_url, decode_responses=True)

    async def follow(gen_id: str) -> AsyncIterator[bytes]:
        yield b"retry: 2000\n\n"
        cursor = "0-0"
        while True:
            reply = await redis.xread(
                {keys.events(gen_id): cursor}, count=500, block=int(heartbeat_s * 1000)
            )
            if not reply:
                yield b": ping\n\n"
                continue
            for entry_id, fields in reply[0][1]:
                cursor = entry_id
                yield sse_frame(entry_id, fields["type"], fields["data"])

    @app.get("/v1/generations/{gen_id}/events")
    async def events(gen_id: str) -> StreamingResponse:
        return StreamingResponse(follow(gen_id), media_type="text/event-stream", headers=HEADERS)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    args = parser.parse_args()
    uvicorn.run(
        create_naive_app(args.redis_url),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        server_header=False,
    )


if __name__ == "__main__":
    main()
