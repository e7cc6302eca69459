"""Benchmarks: `make bench` runs them, writes results/*.json and the README's results table."""
