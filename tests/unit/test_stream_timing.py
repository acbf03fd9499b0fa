"""The worker's per-chunk timings (worker/stream_timing.py) read as Prometheus histograms."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from worker.stream_timing import StreamTimings, _Histogram


def test_a_value_on_a_bound_counts_in_that_bucket_and_buckets_are_cumulative() -> None:
    histogram = _Histogram((0.01, 0.1))
    for value in (0.005, 0.01, 0.05, 7.0):
        histogram.observe(value)
    assert histogram.cumulative() == [("0.01", 2), ("0.1", 3), ("+Inf", 4)]
    assert histogram.total == 0.005 + 0.01 + 0.05 + 7.0


def test_the_exposition_has_the_names_labels_and_counts_of_each_provider() -> None:
    timings = StreamTimings()
    registry = CollectorRegistry()
    registry.register(timings)
    for provider, chunks in (("demo", 3), ("openai", 1)):
        timing = timings.start(provider)
        for _ in range(chunks):
            timing.chunk()
    text = generate_latest(registry).decode()
    assert 'tokenrelay_worker_tokens_published_total{provider="demo"} 3.0' in text
    assert 'tokenrelay_worker_inter_token_seconds_count{provider="demo"} 2.0' in text
    assert 'tokenrelay_worker_time_to_first_token_seconds_count{provider="openai"} 1.0' in text
    assert 'tokenrelay_worker_inter_token_seconds_count{provider="openai"} 0.0' in text
    assert 'tokenrelay_worker_inter_token_seconds_bucket{le="+Inf",provider="demo"} 2.0' in text
    assert "# TYPE tokenrelay_worker_inter_token_seconds histogram" in text
