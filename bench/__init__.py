"""`make bench`: the benchmark harness (see bench/run.py and docs/BENCHMARKS.md)."""
