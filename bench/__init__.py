"""Benchmarks for agriseg (``make bench``); not part of the test run."""
