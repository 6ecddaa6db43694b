"""Per-backend statistics: a latency window for /status and the Prometheus series."""

from array import array
from collections.abc import Callable

from prometheus_client import Counter, Gauge
from svc_common.metrics import LoopCounter, LoopHistogram

UP = Gauge(
    "balancer_backend_up",
    "1 while the backend takes traffic, 0 while it is down or ejected.",
    ["backend"],
)
IN_FLIGHT = Gauge("balancer_backend_in_flight", "Requests open on the backend now.", ["backend"])
# Counted on every try, so kept without locks (svc_common.metrics); the rest are rare events.
REQUESTS = LoopCounter("balancer_backend_requests", "Tries sent to the backend.", ["backend"])
FAILURES = Counter(
    "balancer_backend_failures",
    "Tries that failed: connect, timeout, reset or a 5xx answer.",
    ["backend", "reason"],
)
EJECTIONS = Counter(
    "balancer_backend_ejections", "Times the backend was taken out after failures.", ["backend"]
)
LATENCY = LoopHistogram(
    "balancer_backend_latency_seconds",
    "Time from sending a try to the backend to its last response byte.",
    ["backend"],
)
RETRIES = Counter(
    "balancer_retries",
    "Requests sent again to another backend, by why the previous try failed.",
    ["reason"],
)
NO_BACKEND = Counter("balancer_no_backend", "Requests answered 503: no backend available.")

FAILURE_REASONS = ("connect", "timeout", "reset", "http_5xx")


class LatencyWindow:
    """The last `size` latencies in a ring: O(1) to record, sorted only when read."""

    def __init__(self, size: int = 1024) -> None:
        self._samples = array("d", bytes(8 * size))
        self._size = size
        self._next = 0
        self._count = 0

    def record(self, seconds: float) -> None:
        """Remember one latency, forgetting the oldest once full."""
        self._samples[self._next] = seconds
        self._next = (self._next + 1) % self._size
        if self._count < self._size:
            self._count += 1

    def percentiles(self, *quantiles: float) -> list[float | None]:
        """Nearest-rank quantiles of the window, in milliseconds (None while empty)."""
        if not self._count:
            return [None for _ in quantiles]
        ordered = sorted(self._samples[: self._count])
        last = self._count - 1
        return [round(ordered[round(q * last)] * 1000, 2) for q in quantiles]


class BackendMetrics:
    """The Prometheus children of one backend, looked up once instead of per request."""

    def __init__(self, name: str, *, up: Callable[[], bool], in_flight: Callable[[], int]):
        self.name = name
        UP.labels(name).set_function(lambda: 1.0 if up() else 0.0)
        IN_FLIGHT.labels(name).set_function(lambda: float(in_flight()))
        self.requests = REQUESTS.labels(name)
        self.ejections = EJECTIONS.labels(name)
        self.latency = LATENCY.labels(name)
        self.failures = {reason: FAILURES.labels(name, reason) for reason in FAILURE_REASONS}

    def remove(self) -> None:
        """Drop the series of a backend that left the pool."""
        for metric in (UP, IN_FLIGHT, REQUESTS, EJECTIONS, LATENCY):
            metric.remove(self.name)
        for reason in FAILURE_REASONS:
            FAILURES.remove(self.name, reason)
