"""Reads a service's /metrics and turns counters into rates, ratios and quantiles."""

import math
from collections import defaultdict, deque
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

# The monitor's own probes hit these on every service; counting them would drown real traffic.
PROBE_ROUTES = frozenset({"/saude", "/livez", "/readyz", "/metrics"})
CACHE_LOOKUP_ROUTE = "/cache/{key}"
# Backend states that mean "in rotation" or "not judged yet"; any other one is out of rotation.
IN_ROTATION = frozenset({"up", "healthy", "ok", "active", "available", "unknown"})


@dataclass
class Scrape:
    """Counter totals of one /metrics body, summed over the labels the monitor ignores."""

    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)
    backend_requests: dict[str, float] = field(default_factory=dict)
    backend_state: dict[str, str] = field(default_factory=dict)
    cache_hits: float = 0.0
    cache_misses: float = 0.0
    cache_source: str | None = None


def _relevant(line: str) -> bool:
    # Only sample lines the monitor reads reach the (slow, pure-Python) parser.
    if not line or line[0] == "#":
        return False
    name = line.split("{", 1)[0].split(" ", 1)[0]
    if name.endswith("_created"):
        return False
    return name.startswith("http_request") or "cache" in name or 'backend="' in line


def parse_metrics(text: str) -> Scrape:
    """Totals from Prometheus text: traffic, latency buckets, per-backend split, cache lookups."""
    scrape = Scrape()
    buckets: defaultdict[float, float] = defaultdict(float)
    hits = misses = http_hits = http_misses = 0.0
    named_cache = False
    wanted = "\n".join(filter(_relevant, text.splitlines()))
    for family in text_string_to_metric_families(wanted):
        for s in family.samples:
            name, labels, value = s.name, s.labels, s.value
            route = labels.get("route", "")
            if name == "http_requests_total" and route not in PROBE_ROUTES:
                scrape.requests += value
                status = labels.get("status", "")
                if status.startswith("5"):
                    scrape.errors += value
                if route == CACHE_LOOKUP_ROUTE and labels.get("method") == "GET":
                    http_hits += value if status == "200" else 0.0
                    http_misses += value if status == "404" else 0.0
            elif name == "http_request_duration_seconds_bucket" and route not in PROBE_ROUTES:
                buckets[float(labels["le"])] += value
            elif "backend" in labels:
                _backend_sample(scrape, name, labels, value)
            elif "cache" in name and name.endswith("_total"):
                result = labels.get("result", "")
                if name.endswith("cache_hits_total") or result == "hit":
                    hits, named_cache = hits + value, True
                elif name.endswith("cache_misses_total") or result == "miss":
                    misses, named_cache = misses + value, True
    scrape.buckets = dict(sorted(buckets.items()))
    if named_cache:
        scrape.cache_hits, scrape.cache_misses, scrape.cache_source = hits, misses, "metrics"
    elif http_hits or http_misses:
        scrape.cache_hits, scrape.cache_misses, scrape.cache_source = http_hits, http_misses, "http"
    return scrape


def _backend_sample(scrape: Scrape, name: str, labels: dict[str, str], value: float) -> None:
    """Per-backend series, whatever the balancer calls them (see docs/monitoring.md)."""
    backend = labels["backend"]
    if name.endswith("requests_total"):
        scrape.backend_requests[backend] = scrape.backend_requests.get(backend, 0.0) + value
    elif name.endswith(("_up", "_healthy")):
        scrape.backend_state[backend] = "up" if value >= 1 else "down"
    elif name.endswith("_ejected"):
        scrape.backend_state[backend] = "ejected" if value >= 1 else "up"
    elif "state" in labels and value >= 1:
        scrape.backend_state[backend] = labels["state"].lower()


def _increase(before: float, after: float) -> float:
    # A counter that went down was reset by a restart: everything it shows now is new.
    return after - before if after >= before else after


def _increases(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: _increase(before.get(k, 0.0), v) for k, v in after.items()}


@dataclass
class Delta:
    """What changed between two scrapes of one target."""

    at: float
    seconds: float
    requests: float
    errors: float
    buckets: dict[float, float]
    backend_requests: dict[str, float]
    cache_hits: float
    cache_misses: float


def delta(before: Scrape, after: Scrape, *, at: float, seconds: float) -> Delta:
    """Reset-aware increase of every counter from one scrape to the next."""
    buckets = {
        le: _increase(before.buckets.get(le, 0.0), count) for le, count in after.buckets.items()
    }
    return Delta(
        at=at,
        seconds=seconds,
        requests=_increase(before.requests, after.requests),
        errors=_increase(before.errors, after.errors),
        buckets=buckets,
        backend_requests=_increases(before.backend_requests, after.backend_requests),
        cache_hits=_increase(before.cache_hits, after.cache_hits),
        cache_misses=_increase(before.cache_misses, after.cache_misses),
    )


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Prometheus's histogram_quantile over cumulative bucket counts keyed by `le`."""
    bounds = sorted(buckets)
    if not bounds or not math.isinf(bounds[-1]):
        return None
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for le in bounds:
        count = buckets[le]
        if count >= rank:
            if math.isinf(le):
                return lower
            if le <= 0 or count == below:
                return le
            return lower + (le - lower) * (rank - below) / (count - below)
        lower, below = le, count
    return lower


@dataclass
class Window:
    """Increases seen over the last `seconds`, from which rates are read."""

    seconds: float
    deltas: deque[Delta] = field(default_factory=deque)

    def add(self, item: Delta) -> None:
        """Keep one more delta and forget those that fell out of the window."""
        self.deltas.append(item)
        while self.deltas and self.deltas[0].at <= item.at - self.seconds:
            self.deltas.popleft()

    def clear(self) -> None:
        """Forget everything (the target stopped answering)."""
        self.deltas.clear()

    @property
    def span(self) -> float:
        """Seconds the window's deltas cover."""
        return sum(d.seconds for d in self.deltas)

    def rate(self, attr: str) -> float | None:
        """Per-second increase of a scalar counter (requests, errors, cache_hits...)."""
        span = self.span
        return sum(getattr(d, attr) for d in self.deltas) / span if span > 0 else None

    def buckets(self) -> dict[float, float]:
        """Bucket increases summed over the window."""
        total: defaultdict[float, float] = defaultdict(float)
        for d in self.deltas:
            for le, count in d.buckets.items():
                total[le] += count
        return dict(total)

    def backend_rates(self) -> dict[str, float]:
        """Requests per second sent to each backend."""
        span = self.span
        total: defaultdict[str, float] = defaultdict(float)
        for d in self.deltas:
            for backend, count in d.backend_requests.items():
                total[backend] += count
        return {b: c / span for b, c in total.items()} if span > 0 else {}
