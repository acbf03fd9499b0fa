"""Events per second one client parses from one stream: tokenrelay's clients and the usual tools.

    python -m bench.clients                 # 200,000 events, best of 3 runs each
    python -m bench.clients --events 20000  # quicker

One stream of `delta` events in the native format (id, event, one JSON data line;
the text of each a few words), ending with `done`, is served as fast as the
loopback carries it by a separate process (`python -m bench.clients serve`), so
what is measured is the client: HTTP, SSE parsing, JSON, and for tokenrelay's
clients the fold into `text`. Each one reads the whole stream, with one
connection, and keeps what a user would (tokenrelay's client its typed events and
text; httpx-sse and `eventsource` the parsed JSON of each event's data).

Python: `tokenrelay_client.TokenRelay` (sync) and `AsyncTokenRelay`, next to
httpx-sse over the same httpx. JavaScript (Node, if it and bench/js's packages
are installed: `npm install --prefix bench/js`): the tokenrelay client next to
the `eventsource` package, the EventSource for Node.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import httpx_sse
from tokenrelay_client import AsyncTokenRelay, TokenRelay

from cli.redis_server import free_port

ROOT = Path(__file__).resolve().parents[1]
WORDS = [
    "the",
    "stream",
    "survives",
    "a",
    "replica",
    "restart",
    "and",
    "every",
    "viewer",
    "resumes",
]


def stream_body(events: int) -> bytes:
    """`events` deltas and a `done`, as the API would send them."""
    parts = ["retry: 2000\n\n"]
    for i in range(events):
        text = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(3)) + " "
        parts.append(f"id: 1700000000000-{i}\nevent: delta\ndata: {json.dumps({'text': text})}\n\n")
        if i % 500 == 0:
            parts.append(": ping\n\n")
    done = json.dumps({"finish_reason": "stop", "usage": None})
    parts.append(f"id: 1700000000001-0\nevent: done\ndata: {done}\n\n")
    return "".join(parts).encode()


def serve(port: int, body_path: str) -> None:
    """Answers every GET with the stream (no Content-Length, closed at the end, like SSE)."""
    body = Path(body_path).read_bytes()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def tokenrelay_sync(base_url: str) -> int:
    with TokenRelay(base_url=base_url) as tr:
        stream = tr.generations.stream("gen_bench")
        count = sum(1 for event in stream if event.type == "delta")
        assert stream.text and stream.status == "completed"
        return count


def tokenrelay_async(base_url: str) -> int:
    async def run() -> int:
        async with AsyncTokenRelay(base_url=base_url) as tr:
            stream = tr.generations.stream("gen_bench")
            count = 0
            async for event in stream:
                count += event.type == "delta"
            assert stream.text and stream.status == "completed"
            return count

    return asyncio.run(run())


def httpx_sse_sync(base_url: str) -> int:
    count = 0
    texts: list[str] = []
    with (
        httpx.Client(base_url=base_url) as http,
        httpx_sse.connect_sse(http, "GET", "/v1/generations/gen_bench/events") as source,
    ):
        for event in source.iter_sse():
            if event.event == "delta":
                texts.append(json.loads(event.data)["text"])
                count += 1
            elif event.event == "done":
                break
    return count


def best_rates(
    clients: dict[str, Callable[[str], int]], base_url: str, events: int, runs: int
) -> dict[str, tuple[float, float]]:
    """Per client: (events per wall-clock second, events per CPU second of this process).

    The best of `runs` rounds, the clients taking turns within each round, so that
    a burst of load from elsewhere on a shared machine does not land on one client
    only. The CPU-time figure is what the client itself costs.
    """
    best = {name: (0.0, 0.0) for name in clients}
    for _ in range(runs):
        for name, run in clients.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            count = run(base_url)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            assert count == events, f"{name}: {count} events, expected {events}"
            wall, per_cpu = best[name]
            best[name] = (max(wall, count / elapsed), max(per_cpu, count / cpu))
    return best


def javascript_rates(url: str, events: int, runs: int) -> dict[str, list[float]] | str:
    node = shutil.which("node")
    if node is None:
        return "skipped: no node on the PATH"
    if not (ROOT / "bench/js/node_modules/eventsource").exists():
        return "skipped: npm install --prefix bench/js first"
    script = ROOT / "bench/js/clients.mjs"
    done = subprocess.run(
        [node, str(script), url, str(events), str(runs)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    rates: dict[str, list[float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.clients")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("command", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.command[:1] == ["serve"]:
        serve(int(args.command[1]), args.command[2])
        return 0

    body = stream_body(args.events)
    with tempfile.NamedTemporaryFile(suffix=".sse", delete=False) as file:
        file.write(body)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.clients", "serve", str(port), file.name], cwd=ROOT
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base_url}/healthz", timeout=1).close()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the bench server did not start"
                time.sleep(0.05)
        python_clients: dict[str, Callable[[str], int]] = {
            "tokenrelay-client (Python, sync)": tokenrelay_sync,
            "tokenrelay-client (Python, asyncio)": tokenrelay_async,
            "httpx-sse 0.4 (+ json.loads)": httpx_sse_sync,
        }
        rates = best_rates(python_clients, base_url, args.events, args.runs)
        js = javascript_rates(f"{base_url}/v1/generations/gen_bench/events", args.events, args.runs)
    finally:
        server.terminate()
        server.wait(10)
        os.unlink(file.name)

    print(f"{args.events} events ({len(body) / 1e6:.1f} MB), best of {args.runs} runs each\n")
    print("| client | events/s (wall clock) | events per CPU second |\n|---|---|---|")
    for name, (wall, cpu) in rates.items():
        print(f"| {name} | {wall:,.0f} | {cpu:,.0f} |")
    if isinstance(js, str):
        print(f"| JavaScript clients | {js} | |")
    else:
        for name, (wall, cpu) in js.items():
            print(f"| {name} | {wall:,.0f} | {cpu:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
