"""A worker process's Prometheus metrics, and the small HTTP port that serves them.

Per process, on a registry of its own built with the runtime (no import-time
globals). Exposed when `TOKENRELAY_WORKER_METRICS_PORT` is set: prometheus-client's
own threaded HTTP server on that port answers `GET /metrics`. A port per worker
rather than a push gateway, because Prometheus then sees a dead worker as a
failed scrape (`up == 0`) instead of its last pushed figures living on.

- `tokenrelay_worker_time_to_first_token_seconds`: from the provider call to its
  first text or tool-call chunk (queue time is not included).
- `tokenrelay_worker_inter_token_seconds`: gaps between consecutive chunks.
- `tokenrelay_worker_tokens_published_total{provider}`: chunks handed to the publisher.
- `tokenrelay_worker_provider_errors_total{provider,type}`: failures by public error type.
- `tokenrelay_worker_loop_lag_seconds`: how late the event loop runs its timers
  (smoothed); past 0.05 the worker takes no new job (worker/load.py).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from services.providers.base import FinishChunk, ProviderChunk

_TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
_GAP_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.ttft = Histogram(
            "tokenrelay_worker_time_to_first_token_seconds",
            "Provider call to first chunk.",
            ["provider"],
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self.gap = Histogram(
            "tokenrelay_worker_inter_token_seconds",
            "Gap between consecutive provider chunks.",
            ["provider"],
            buckets=_GAP_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "tokenrelay_worker_tokens_published",
            "Provider chunks handed to the publisher.",
            ["provider"],
            registry=r,
        )
        self.provider_errors = Counter(
            "tokenrelay_worker_provider_errors",
            "Provider failures by public error type.",
            ["provider", "type"],
            registry=r,
        )
        self.loop_lag = Gauge(
            "tokenrelay_worker_loop_lag_seconds",
            "How late the event loop runs its timers (smoothed); new jobs wait past 0.05.",
            registry=r,
        )
        self._server: WSGIServer | None = None
        self._thread: Thread | None = None

    async def observe_stream(
        self, provider: str, chunks: AsyncGenerator[ProviderChunk, None]
    ) -> AsyncGenerator[ProviderChunk, None]:
        """Pass `chunks` through, timing them; closing this closes `chunks` too."""
        started = time.monotonic()
        last: float | None = None
        ttft, gap, tokens = (
            self.ttft.labels(provider),
            self.gap.labels(provider),
            self.tokens.labels(provider),
        )
        try:
            async for chunk in chunks:
                if not isinstance(chunk, FinishChunk):
                    now = time.monotonic()
                    if last is None:
                        ttft.observe(now - started)
                    else:
                        gap.observe(now - last)
                    last = now
                    tokens.inc()
                yield chunk
        finally:
            await chunks.aclose()

    def provider_error(self, provider: str, error_type: str) -> None:
        self.provider_errors.labels(provider, error_type).inc()

    def serve(self, port: int, host: str = "0.0.0.0") -> None:
        """Answer `GET /metrics` on `port` from a daemon thread until `close`."""
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
