"""Benchmarks: the fan-out hub against a naive one-XREAD-per-viewer baseline."""
