"""The recent history the dashboard draws: one point per poll, bounded by CHART_WINDOW."""

import bisect
from collections import deque
from typing import Any

SERVICE_FIELDS = ("up", "latency_ms", "request_rate", "error_ratio", "p50_ms", "p95_ms", "p99_ms")
Value = float | None


class Series:
    """Column store of chart points; readers ask for what is newer than they have."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.times: deque[float] = deque()
        self.services: dict[str, dict[str, deque[Value]]] = {}
        self.cache_hit_ratio: deque[Value] = deque()

    def add(self, at: float, services: dict[str, dict[str, Value]], hit_ratio: Value) -> None:
        """Append one point per service (missing fields become gaps) and age out old ones."""
        for name in services:
            if name not in self.services:
                # A service first seen now has gaps for the points before it.
                self.services[name] = {f: deque([None] * len(self.times)) for f in SERVICE_FIELDS}
        self.times.append(at)
        for name, columns in self.services.items():
            point = services.get(name, {})
            for key, column in columns.items():
                column.append(point.get(key))
        self.cache_hit_ratio.append(hit_ratio)
        while self.times and self.times[0] < at - self.window:
            self.times.popleft()
            self.cache_hit_ratio.popleft()
            for columns in self.services.values():
                for column in columns.values():
                    column.popleft()

    def since(self, after: float | None = None) -> dict[str, Any]:
        """Points strictly newer than `after` (all of them when None)."""
        start = 0 if after is None else bisect.bisect_right(self.times, after)
        return {
            "window_seconds": self.window,
            "t": _tail(self.times, start),
            "services": {
                name: {key: _tail(column, start) for key, column in columns.items()}
                for name, columns in self.services.items()
            },
            "cache_hit_ratio": _tail(self.cache_hit_ratio, start),
        }


def _tail(column: deque[Any], start: int) -> list[Any]:
    return list(column)[start:] if start else list(column)
