"""Time to first token, gaps between tokens and tokens published, per provider.

Observed once per provider chunk: the worker's hottest path, tens of thousands
of times a second on a busy worker. prometheus-client's Histogram takes a lock and
walks its buckets in Python for each observation, and its Counter takes another
lock: about 1 µs per chunk together, which was a twentieth of the worker's CPU per
token at 1,000 generations (bench/README.md). Here each observation is a bisect
and two additions on plain lists, done on the event loop's thread, the only
writer; prometheus-client's documented custom-collector interface exposes them
under the same names, types and labels as before. A scrape (from the metrics
server's thread) reads the lists as they are at that moment, as it would read
prometheus-client's own values.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
GAP_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _Histogram:
    """One provider's bucket counts (the last one is +Inf) and sum."""

    __slots__ = ("bounds", "counts", "labels", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.labels: list[str] = [floatToGoString(b) for b in [*bounds, float("inf")]]  # type: ignore[no-untyped-call]  # prometheus-client's own `le` format
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        running = 0.0
        buckets: list[tuple[str, float]] = []
        for label, count in zip(self.labels, list(self.counts), strict=True):
            running += count
            buckets.append((label, running))
        return buckets


class _Provider:
    __slots__ = ("gap", "tokens", "ttft")

    def __init__(self) -> None:
        self.ttft = _Histogram(TTFT_BUCKETS)
        self.gap = _Histogram(GAP_BUCKETS)
        self.tokens = 0


class StreamTimings(Collector):
    """Every provider's figures; `start` one `StreamTiming` per attempt."""

    def __init__(self) -> None:
        self._providers: dict[str, _Provider] = {}

    def start(self, provider: str) -> StreamTiming:
        figures = self._providers.get(provider)
        if figures is None:
            figures = self._providers[provider] = _Provider()
        return StreamTiming(figures)

    def collect(self) -> Iterator[Metric]:
        providers = list(self._providers.items())  # one step: safe against a new provider
        ttft = HistogramMetricFamily(
            "tokenrelay_worker_time_to_first_token_seconds",
            "Provider call to first chunk.",
            labels=["provider"],
        )
        gap = HistogramMetricFamily(
            "tokenrelay_worker_inter_token_seconds",
            "Gap between consecutive provider chunks.",
            labels=["provider"],
        )
        tokens = CounterMetricFamily(
            "tokenrelay_worker_tokens_published",
            "Provider chunks handed to the publisher.",
            labels=["provider"],
        )
        for name, figures in providers:
            ttft.add_metric([name], figures.ttft.cumulative(), figures.ttft.total)
            gap.add_metric([name], figures.gap.cumulative(), figures.gap.total)
            tokens.add_metric([name], figures.tokens)
        yield ttft
        yield gap
        yield tokens


class StreamTiming:
    """One attempt's clock: `chunk()` for each text or tool-call chunk it receives."""

    __slots__ = ("_figures", "_last", "_started")

    def __init__(self, figures: _Provider) -> None:
        self._figures = figures
        self._started = time.monotonic()
        self._last: float | None = None

    def chunk(self) -> None:
        now = time.monotonic()
        if self._last is None:
            self._figures.ttft.observe(now - self._started)
        else:
            self._figures.gap.observe(now - self._last)
        self._last = now
        self._figures.tokens += 1
