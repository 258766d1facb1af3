"""Benchmark harness for Code Router: `python bench/run.py` (see bench/README.md)."""
