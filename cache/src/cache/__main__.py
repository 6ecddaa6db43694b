"""`python -m cache` starts the cache service."""

from cache.main import run

run()
