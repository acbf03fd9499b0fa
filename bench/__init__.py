"""Benchmarks of tokenrelay; see bench/README.md."""
