"""A worker's CPU per streamed provider request: the SDK's request path against ours.

A local aiohttp server (its own process) answers every POST with a Chat
Completions stream. The same request is made, alternately, through the `openai`
SDK's own request path (`client.post(..., stream=True)` on its aiohttp
transport, chunks read as plain JSON: what the openai provider did before) and
through the providers' transport (services/providers/upstream_http.py: the SDK's
headers and SSE decoder over one aiohttp session). Reported: CPU of this process
per request for a one-chunk answer (the fixed cost, most of it before the first
byte is sent), and per chunk for a 300-chunk answer.

    python -m bench.provider_request
    python -m bench.provider_request --quick
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import openai
from aiohttp import web
from openai._streaming import SSEDecoder

from bench.servers import wait_for_listener
from cli.redis_server import free_port
from services.providers.upstream_http import UpstreamHttp

CHUNK = (
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m",'
    b'"choices":[{"index":0,"delta":{"content":" tok"},"finish_reason":null}]}\n\n'
)
BODY = {"model": "m", "messages": [{"role": "user", "content": "hello there"}], "stream": True}


def serve(port: int) -> None:
    async def answer(request: web.Request) -> web.StreamResponse:
        chunks = int(request.query.get("chunks", "1"))
        await request.read()
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for n in range(chunks):
            await response.write(CHUNK)
            if n % 3 == 0:
                await asyncio.sleep(0)  # let reads interleave, as tokens do
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", answer)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


async def measure(base_url: str, requests: int) -> None:
    sdk = openai.AsyncOpenAI(
        api_key="sk-bench",
        base_url=base_url,
        max_retries=0,
        http_client=openai.DefaultAioHttpClient(),
    )
    ours = UpstreamHttp(
        base_url=base_url,
        headers={**sdk.default_headers, **sdk.auth_headers},
        connect_timeout_s=5,
    )

    def through_sdk(chunks: int) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            stream = await sdk.post(
                f"/chat/completions?chunks={chunks}",
                body=BODY,
                cast_to=object,
                stream=True,
                stream_cls=openai.AsyncStream[object],
            )
            return len([chunk async for chunk in stream])

        return run

    def through_ours(chunks: int) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            read = 0
            events = ours.events(f"/chat/completions?chunks={chunks}", BODY, SSEDecoder())
            async for event in events:
                if not event.data.startswith("[DONE]"):
                    json.loads(event.data)
                    read += 1
            return read

        return run

    print("| path | CPU per request, 1 chunk (µs) | CPU per chunk, 300 chunks (µs) |")
    print("|---|---|---|")
    try:
        for _ in range(2):
            for name, make in (
                ("the SDK's request path (`client.post`)", through_sdk),
                ("the providers' transport (`UpstreamHttp`)", through_ours),
            ):
                per_request = await cpu_per_call(make(1), requests, expected=1)
                per_chunk = await cpu_per_call(make(300), max(5, requests // 50), expected=300)
                print(f"| {name} | {per_request:.0f} | {per_chunk / 300:.1f} |")
    finally:
        await ours.aclose()
        await sdk.close()


async def cpu_per_call(call: Callable[[], Awaitable[int]], times: int, *, expected: int) -> float:
    for _ in range(max(3, times // 10)):  # warm-up: connections, caches
        assert await call() == expected
    started = time.process_time()
    for _ in range(times):
        assert await call() == expected
    return (time.process_time() - started) / times * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 requests instead of 500")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.provider_request", "--serve", str(port)]
    )
    try:
        wait_for_listener(port)
        asyncio.run(measure(f"http://127.0.0.1:{port}/v1", 100 if args.quick else 500))
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
