"""The API process's Prometheus metrics, on a registry of its own.

`create_app` builds one `ApiMetrics` per app (never import-time globals), so two
apps in one test process, or a bench that starts and stops apps, never collide
on metric names. The hub and the SSE transport get the object passed in and
only ever call its methods; `GET /metrics` renders the registry.

Names and what they answer:
- `tokenrelay_sse_connections_open`: how many SSE responses are being written now.
- `tokenrelay_hub_viewers_per_stream` (gauge histogram, computed at scrape): how
  many viewers each tailed stream has; `tokenrelay_hub_streams` how many streams.
- `tokenrelay_sse_events_delivered_total`, `tokenrelay_publish_to_send_seconds`:
  what went out and how long after the worker's XADD (the entry id's time, so
  the figure includes the API host's clock skew against Redis).
- `tokenrelay_hub_backlog_reads_total`, `tokenrelay_hub_slow_viewer_switches_total`,
  `tokenrelay_sse_dropped_total{reason}`, `tokenrelay_sse_rejected_total{reason}`.
- `tokenrelay_hub_redis_commands_total{command}`: every command the hub sends,
  the figure the fan-out is meant to keep flat as viewers grow.
- `tokenrelay_generations_created_total{tenant}`,
  `tokenrelay_limited_total{tenant,limit}`: per tenant, for the first
  `TOKENRELAY_METRICS_MAX_TENANTS` tenants this process sees; later ones are
  counted as `_other`, so a deployment with many tenants cannot blow up the series.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from services.events import StoredEvent

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_VIEWER_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


class ApiMetrics:
    """Every metric one API process exports."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.sse_open = Gauge(
            "tokenrelay_sse_connections_open", "Open SSE connections.", registry=r
        )
        # Written for every event on every connection: plain counters summed at
        # scrape time, not prometheus-client objects with a lock per update.
        self.delivery = DeliveryStats()
        r.register(_DeliveryCollector(self.delivery))
        self.backlog_reads = Counter(
            "tokenrelay_hub_backlog_reads",
            "XRANGE reads of a viewer's own backlog (joining late, resuming, catching up).",
            registry=r,
        )
        self.slow_switches = Counter(
            "tokenrelay_hub_slow_viewer_switches",
            "Viewers moved off the live feed because their queue was full.",
            registry=r,
        )
        self.dropped = Counter(
            "tokenrelay_sse_dropped",
            "SSE connections the server dropped.",
            ["reason"],
            registry=r,
        )
        self.rejected = Counter(
            "tokenrelay_sse_rejected",
            "SSE requests answered 503 instead of a stream.",
            ["reason"],
            registry=r,
        )
        self.hub_commands = Counter(
            "tokenrelay_hub_redis_commands",
            "Redis commands issued by the fan-out hub.",
            ["command"],
            registry=r,
        )
        self.tenants = TenantCounters(r)
        self.hub_errors = Counter(
            "tokenrelay_hub_read_errors",
            "Failed or timed-out shared reads (Redis unreachable or silent); the reader retries.",
            registry=r,
        )

    def watch_reader(self, silence_s: Callable[[], float]) -> None:
        """Export how long the shared reader has gone without a Redis reply."""
        Gauge(
            "tokenrelay_hub_reader_silence_seconds",
            "Seconds since the shared stream read last got a reply from Redis; above the"
            " block time plus TOKENRELAY_REDIS_TIMEOUT_S the reader is stuck.",
            registry=self.registry,
        ).set_function(silence_s)

    def watch_viewers(self, viewers_by_stream: Callable[[], Mapping[str, int]]) -> None:
        """Export the viewers-per-stream distribution, computed when scraped."""
        self.registry.register(_ViewersCollector(viewers_by_stream))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class TenantCounters:
    """Per-tenant counters with a bound on how many tenants get a label of their own."""

    OTHER = "_other"

    def __init__(self, registry: CollectorRegistry, max_labels: int = 100) -> None:
        self.max_labels = max_labels
        self._seen: set[str] = set()
        self._created = Counter(
            "tokenrelay_generations_created",
            "Generations queued, by tenant.",
            ["tenant"],
            registry=registry,
        )
        self._limited = Counter(
            "tokenrelay_limited",
            "Requests answered 429 by a limit, by tenant and limit.",
            ["tenant", "limit"],
            registry=registry,
        )

    def _label(self, tenant: str) -> str:
        if tenant in self._seen:
            return tenant
        if len(self._seen) < self.max_labels:
            self._seen.add(tenant)
            return tenant
        return self.OTHER

    def created(self, tenant: str) -> None:
        self._created.labels(self._label(tenant)).inc()

    def limited(self, tenant: str, limit: str) -> None:
        self._limited.labels(self._label(tenant), limit).inc()


class DeliveryStats:
    """Events written and their publish-to-send lag, counted without locks: every
    update and every scrape runs on the API process's event loop."""

    __slots__ = ("buckets", "count", "direct_count", "lag_sum")

    def __init__(self) -> None:
        self.count = 0
        self.direct_count = 0
        self.lag_sum = 0.0
        self.buckets = [0] * (len(_LAG_BUCKETS) + 1)

    def add(self, lag_s: float, connections: int = 1) -> None:
        self.count += connections
        self.lag_sum += lag_s * connections
        self.buckets[bisect_left(_LAG_BUCKETS, lag_s)] += connections

    def add_event(self, event: StoredEvent, now: float, connections: int = 1) -> None:
        """`event` written to `connections` at `now`; its lag runs from its XADD (its id)."""
        self.add(max(0.0, now - int(event.id.partition("-")[0]) / 1000), connections)

    def add_direct(self, events: Sequence[StoredEvent], connections: int) -> None:
        """`events` written to `connections` connections by the hub in one pass
        (api/streaming/direct.py), counted once for the pass rather than once per
        connection, which cost as much Python as the write itself. The lag is taken
        at the end of the pass: the last connection's, an upper bound for the others."""
        now = time.time()
        for event in events:
            self.add_event(event, now, connections)
        self.direct_count += len(events) * connections


class _DeliveryCollector(Collector):
    def __init__(self, stats: DeliveryStats) -> None:
        self._stats = stats

    def collect(self) -> Iterable[Metric]:
        stats = self._stats
        delivered = CounterMetricFamily(
            "tokenrelay_sse_events_delivered", "Events written to SSE connections."
        )
        delivered.add_metric([], stats.count)
        yield delivered
        direct = CounterMetricFamily(
            "tokenrelay_sse_events_delivered_direct",
            "Of those, events the hub wrote itself, in one pass over a stream's viewers.",
        )
        direct.add_metric([], stats.direct_count)
        yield direct
        cumulative, buckets = 0, []
        for bound, count in zip((*_LAG_BUCKETS, float("inf")), stats.buckets, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
        lag = HistogramMetricFamily(
            "tokenrelay_publish_to_send_seconds",
            "Time from an event's XADD (its entry id) to its write on an SSE connection.",
        )
        lag.add_metric([], buckets, sum_value=stats.lag_sum)
        yield lag


class _ViewersCollector(Collector):
    def __init__(self, viewers_by_stream: Callable[[], Mapping[str, int]]) -> None:
        self._viewers_by_stream = viewers_by_stream

    def collect(self) -> Iterable[Metric]:
        counts = list(self._viewers_by_stream().values())
        streams = GaugeMetricFamily(
            "tokenrelay_hub_streams", "Streams with at least one viewer on this process."
        )
        streams.add_metric([], len(counts))
        yield streams
        buckets = [(str(bound), sum(c <= bound for c in counts)) for bound in _VIEWER_BUCKETS]
        buckets.append(("+Inf", len(counts)))
        family = GaugeHistogramMetricFamily(
            "tokenrelay_hub_viewers_per_stream", "Viewers of each stream on this process."
        )
        family.add_metric([], buckets, gsum_value=sum(counts))
        yield family
