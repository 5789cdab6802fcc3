"""Benchmarks: each prints its figures and writes them to docs/benchmarks.md (not part of the tests)."""
