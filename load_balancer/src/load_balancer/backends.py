"""The backend list and the round-robin choice among them."""

import itertools
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class Backend:
    """One item server and what the balancer has seen of it."""

    url: str
    requests: int = 0
    failures: int = 0
    in_flight: int = 0
    last_error: str | None = None

    def snapshot(self) -> dict[str, object]:
        """Counters for /saude and /status."""
        return {
            "url": self.url,
            "requests": self.requests,
            "failures": self.failures,
            "in_flight": self.in_flight,
            "last_error": self.last_error,
        }


class BackendPool:
    """Round-robin over the configured backends."""

    def __init__(self, urls: list[str]) -> None:
        self.backends = [Backend(url) for url in urls]
        self._turn = itertools.count()

    def rotation(self) -> Iterator[Backend]:
        """Every backend once, starting with the next one in turn."""
        start = next(self._turn) % len(self.backends)
        for offset in range(len(self.backends)):
            yield self.backends[(start + offset) % len(self.backends)]
