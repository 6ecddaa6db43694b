"""Unit tests of the benchmark harness's pure parts."""
