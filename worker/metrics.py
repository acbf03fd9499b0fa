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
  (These three are counted by worker/stream_timing.py, cheaply, once per chunk.)
- `tokenrelay_worker_loop_lag_seconds`: how late the event loop runs its timers
  (smoothed); past 0.05 the worker takes no new job (worker/load.py).
"""

from __future__ import annotations

from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from worker.stream_timing import StreamTimings


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.streams = StreamTimings()
        r.register(self.streams)
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
