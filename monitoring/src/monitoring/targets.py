"""What the monitor remembers of one instance of a service: health probes and scraped traffic."""

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from monitoring.scrape import Scrape, Window, delta, histogram_quantile

log = logging.getLogger(__name__)

QUANTILES = {"p50_ms": 0.5, "p95_ms": 0.95, "p99_ms": 0.99}


@dataclass
class TargetState:
    """Health history and the traffic window of one instance (a scraped target, as Prometheus
    calls it) of the service `name`."""

    name: str
    url: str
    rate_window: float = 60.0
    instance: str = ""
    host_header: str | None = None
    up: bool | None = None
    latency_ms: float | None = None
    error: str | None = None
    checked_at: float | None = None
    since: float = field(default_factory=time.time)
    history: deque[tuple[float, bool]] = field(default_factory=deque)
    last_scrape: Scrape | None = None
    scraped_at: float | None = None
    scrape_error: str | None = None
    backend_source: str | None = None
    window: Window = field(init=False)

    def __post_init__(self) -> None:
        self.window = Window(self.rate_window)
        self.instance = self.instance or urlsplit(self.url).netloc

    def record(self, up: bool, latency_ms: float, error: str | None, window: int) -> None:
        """Store one probe result and forget what fell out of the window."""
        now = time.time()
        if up != self.up:
            if up:
                log.info("%s (%s) is up", self.name, self.instance)
            else:
                log.warning("%s (%s) is down: %s", self.name, self.instance, error)
            self.since = now
        self.up, self.latency_ms, self.error, self.checked_at = up, latency_ms, error, now
        self.history.append((now, up))
        while self.history and self.history[0][0] < now - window:
            self.history.popleft()

    def record_scrape(self, scrape: Scrape, at: float) -> None:
        """Fold one /metrics scrape (monotonic time `at`) into the rate window."""
        self.scrape_error = None
        if self.last_scrape is not None and self.scraped_at is not None:
            self.window.add(delta(self.last_scrape, scrape, at=at, seconds=at - self.scraped_at))
        self.last_scrape, self.scraped_at = scrape, at

    def scrape_failed(self, error: str) -> None:
        """Forget the traffic: a dead service's old rates must not linger on the charts."""
        self.window.clear()
        self.last_scrape = self.scraped_at = None
        self.scrape_error = error

    @property
    def uptime_percent(self) -> float | None:
        """Share of probes in the window that found the service up."""
        if not self.history:
            return None
        return round(100 * sum(ok for _, ok in self.history) / len(self.history), 2)

    @property
    def status(self) -> str:
        """up, down or unknown (not probed yet)."""
        return "unknown" if self.up is None else "up" if self.up else "down"

    def snapshot(self) -> dict[str, object]:
        """The state as /health shows it."""
        return {
            "instance": self.instance,
            "url": self.url,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "uptime_percent": self.uptime_percent,
            "error": self.error,
            "checked_at": self.checked_at,
            "since": self.since,
        }

    def traffic(self) -> dict[str, float | None]:
        """Request rate, 5xx ratio and latency quantiles (ms) over the rate window."""
        window = self.window
        return summarize(window.rate("requests"), window.rate("errors"), window.buckets())

    def cache_lookups(self) -> tuple[float, float] | None:
        """(hits, misses) per second over the rate window, if this service counts any."""
        if self.last_scrape is None or self.last_scrape.cache_source is None:
            return None
        hits, misses = self.window.rate("cache_hits"), self.window.rate("cache_misses")
        return None if hits is None or misses is None else (hits, misses)


def summarize(
    requests: float | None, errors: float | None, buckets: dict[float, float]
) -> dict[str, float | None]:
    """Request rate, 5xx ratio and latency quantiles (ms) from rates and bucket increases."""
    ratio = errors / requests if requests and errors is not None else None
    stats: dict[str, float | None] = {
        "request_rate": _round(requests, 3),
        "error_ratio": _round(ratio, 4),
    }
    for key, q in QUANTILES.items():
        seconds = histogram_quantile(q, buckets) if requests else None
        stats[key] = _round(seconds * 1000, 2) if seconds is not None else None
    return stats


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def backends_from_status(body: Any) -> tuple[dict[str, float], dict[str, str]]:
    """Request counters and state of each backend from the balancer's /status JSON."""
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, dict):
        data = data.get("backends")
    requests: dict[str, float] = {}
    states: dict[str, str] = {}
    for item in data if isinstance(data, list) else []:
        if not isinstance(item, dict):
            continue
        key = item.get("url") or item.get("backend") or item.get("name")
        if not isinstance(key, str):
            continue
        if isinstance(item.get("requests"), int | float):
            requests[key] = float(item["requests"])
        if isinstance(state := item.get("state") or item.get("status"), str):
            states[key] = state.lower()
        elif isinstance(item.get("healthy"), bool):
            states[key] = "up" if item["healthy"] else "down"
        elif isinstance(item.get("ejected"), bool):
            states[key] = "ejected" if item["ejected"] else "up"
    return requests, states
