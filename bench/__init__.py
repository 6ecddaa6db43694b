"""Benchmarks: `make bench` (the request path against nginx) and `make bench-cache`."""
