"""Backends, their health state machine, and the choice of one for a request."""

import enum
import itertools
import logging
import math
import time
from collections.abc import Iterable

from svc_common.discovery import Address
from svc_common.forwarding.pool import UpstreamPool

from load_balancer.config import BalancerSettings
from load_balancer.stats import BackendMetrics, LatencyWindow

log = logging.getLogger("load_balancer.backends")

STARTUP_PROBE_INTERVAL = 0.25
# States that take traffic: not yet probed counts, so a fresh balancer serves at once.
SERVING = frozenset({"up", "unknown"})


class Health(enum.StrEnum):
    """The verdict of the active checks."""

    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"


class Backend:
    """One backend address: active-check verdict, passive ejection and counters."""

    def __init__(self, url: str, *, origin: str, name: str, host_header: str | None = None) -> None:
        self.url = url
        self.origin = origin
        self.name = name
        self.host_header = host_header
        self.health = Health.UNKNOWN
        self.ever_up = False
        self.ok_streak = 0
        self.fail_streak = 0
        self.last_ok = -math.inf
        self.last_answer = -math.inf  # when live traffic last got a non-5xx answer
        self.last_check_error: str | None = None
        # Passive side: consecutive failed requests, and the ejection they caused.
        self.errors_in_row = 0
        self.ejected_at: float | None = None
        self.ejected_until = 0.0
        self.eject_level = 0
        self.last_ejection_end = -math.inf
        self.requests = 0
        self.failures = 0
        self.ejections = 0
        self.in_flight = 0
        self.last_error: str | None = None
        self.latency = LatencyWindow()
        # Keep-alive connections for requests (lane and ASGI path) and probes, opened on the
        # first one (BackendPool.connections).
        self.connections: UpstreamPool | None = None
        self.metrics = BackendMetrics(
            name, up=lambda: self.state in SERVING, in_flight=lambda: self.in_flight
        )

    @property
    def state(self) -> str:
        """up, down, ejected or unknown (not probed yet), as /status shows it."""
        if self.health is Health.DOWN:
            return "down"
        if self.ejected_at is not None and not self._ejection_over(time.monotonic()):
            return "ejected"
        return str(self.health)

    def _ejection_over(self, now: float) -> bool:
        # Back only once the time is served and a probe has passed since it was ejected.
        assert self.ejected_at is not None
        return now >= self.ejected_until and self.last_ok > self.ejected_at

    def takes_traffic(self, now: float) -> bool:
        """Whether a request may be sent here now; ends an ejection that has run its course."""
        if self.health is Health.DOWN:
            return False
        if self.ejected_at is None:
            return True
        if not self._ejection_over(now):
            return False
        log.info("backend %s back after ejection", self.name)
        self._end_ejection(now)
        return True

    def _end_ejection(self, now: float) -> None:
        self.ejected_at = None
        self.errors_in_row = 0
        self.last_ejection_end = now

    def record_probe(self, ok: bool, settings: BalancerSettings, *, error: str | None) -> None:
        """Apply one active check: rise/fall thresholds, first verdict at once."""
        now = time.monotonic()
        self.last_check_error = error
        if ok:
            self.ok_streak += 1
            self.fail_streak = 0
            self.last_ok = now
            # A backend that was never up has no flapping to guard against.
            if self.health is not Health.UP and (
                not self.ever_up or self.ok_streak >= settings.health_rise
            ):
                was_down = self.health is Health.DOWN
                self.health = Health.UP
                self.ever_up = True
                if self.ejected_at is not None and was_down:
                    # Rise probes in a row prove it healthy: the ejection has done its job.
                    self._end_ejection(now)
                    self.eject_level = 0
                log.info("backend %s is up", self.name)
            return
        self.fail_streak += 1
        self.ok_streak = 0
        if self.health is Health.UNKNOWN or (
            self.health is Health.UP and self.fail_streak >= settings.health_fall
        ):
            self.health = Health.DOWN
            log.warning("backend %s is down: %s", self.name, error)

    def probe_interval(self, settings: BalancerSettings) -> float:
        """Steady backends are probed every interval, all others at the fast interval."""
        if not self.ever_up:
            # Still starting: take it into service the moment it answers.
            return min(settings.fast_interval, STARTUP_PROBE_INTERVAL)
        steady = self.health is Health.UP and self.fail_streak == 0 and self.ejected_at is None
        return settings.health_interval if steady else settings.fast_interval

    def try_sent(self) -> float:
        """Count a try going out here; returns when it started."""
        self.requests += 1
        self.metrics.requests.inc()
        self.in_flight += 1
        return time.perf_counter()

    def try_done(self, started: float, status: int | None) -> None:
        """A try ended, with the status that came back (None: no answer)."""
        self.in_flight -= 1
        if status is not None and status < 500:
            self.record_success(time.perf_counter() - started)

    def record_success(self, seconds: float) -> None:
        """A try that got a non-5xx answer."""
        self.errors_in_row = 0
        self.last_answer = time.monotonic()
        self.latency.record(seconds)
        self.metrics.latency.observe(seconds)

    def record_failure(self, reason: str, error: str, settings: BalancerSettings) -> bool:
        """Count a failed try; True when enough failed in a row to eject the backend."""
        self.failures += 1
        self.last_error = error
        self.metrics.failures[reason].inc()
        self.errors_in_row += 1
        return self.errors_in_row >= settings.eject_after and self.ejected_at is None

    def eject(self, settings: BalancerSettings) -> None:
        """Take the backend out for a back-off period that doubles with repeated ejections."""
        now = time.monotonic()
        if now - self.last_ejection_end > settings.eject_max_time:
            self.eject_level = 0  # well-behaved for long enough: forgive earlier ejections
        period = min(settings.base_ejection * 2**self.eject_level, settings.eject_max_time)
        self.eject_level += 1
        self.ejected_at = now
        self.ejected_until = now + period
        self.ejections += 1
        self.metrics.ejections.inc()
        log.warning(
            "backend %s ejected for %.1fs after %d failures in a row (last: %s)",
            self.name,
            period,
            self.errors_in_row,
            self.last_error,
        )

    def close_connections(self) -> None:
        """Close its keep-alive connections (removed, or the balancer stopping)."""
        if self.connections is not None:
            self.connections.close()

    def snapshot(self) -> dict[str, object]:
        """What /status and /saude show about this backend."""
        p50, p95 = self.latency.percentiles(0.5, 0.95)
        state = self.state
        return {
            "name": self.name,
            "url": self.url,
            "origin": self.origin,
            "state": state,
            "healthy": state in SERVING,
            "in_flight": self.in_flight,
            "requests": self.requests,
            "failures": self.failures,
            "ejections": self.ejections,
            "latency_ms": {"p50": p50, "p95": p95},
            "last_error": self.last_error,
            "last_check_error": self.last_check_error,
        }


class BackendPool:
    """The current backends and the strategy that picks one for each try."""

    def __init__(self, settings: BalancerSettings) -> None:
        self.settings = settings
        self.backends: list[Backend] = []
        self._turn = itertools.count()
        self._least_conn = settings.balance_strategy == "least_conn"

    def replace(self, origin: str, addresses: Iterable[Address]) -> list[Backend]:
        """Make `addresses` the backends of one SERVIDORES entry; returns the ones removed."""
        keep = {b.url: b for b in self.backends if b.origin == origin}
        wanted = {a.url: a for a in addresses}
        removed = [b for url, b in keep.items() if url not in wanted]
        # Only new addresses become Backends: each registers its own metric series.
        added = [
            Backend(a.url, origin=origin, name=a.name, host_header=a.host_header)
            for url, a in wanted.items()
            if url not in keep
        ]
        if removed or added:
            gone = {id(b) for b in removed}
            self.backends = [b for b in self.backends if id(b) not in gone] + added
            for backend in removed:
                backend.metrics.remove()
                backend.close_connections()
        return removed

    def connections(self, backend: Backend) -> UpstreamPool:
        """The backend's keep-alive connections, one pool for requests and probes (opened on
        first use: a pool needs the running loop)."""
        if backend.connections is None:
            backend.connections = UpstreamPool(
                backend.url,
                connect_timeout=self.settings.connect_timeout,
                keepalive_timeout=self.settings.keepalive_timeout,
                limit=self.settings.pool_limit_per_backend,
                host_header=backend.host_header,
            )
        return backend.connections

    def pick(self, tried: list[Backend]) -> Backend | None:
        """The next backend for a try: round-robin or least in-flight, skipping tried ones."""
        now = time.monotonic()
        if tried and not self._least_conn:
            return self._next_after(tried, now)
        candidates = [b for b in self.backends if b not in tried and b.takes_traffic(now)]
        if not candidates:
            return None
        start = next(self._turn) % len(candidates)
        if not self._least_conn:
            return candidates[start]
        # Ties go round-robin, so equally loaded backends share the traffic.
        rotated = candidates[start:] + candidates[:start]
        return min(rotated, key=lambda b: b.in_flight)

    def _next_after(self, tried: list[Backend], now: float) -> Backend | None:
        # A retry goes to the backend that follows the one that failed.
        backends = self.backends
        start = backends.index(tried[-1]) + 1 if tried[-1] in backends else 0
        for offset in range(len(backends)):
            backend = backends[(start + offset) % len(backends)]
            if backend not in tried and backend.takes_traffic(now):
                return backend
        return None

    def failed(self, backend: Backend, reason: str, error: str) -> None:
        """Count a failed try and eject the backend when it keeps failing."""
        if backend.record_failure(reason, error, self.settings):
            # Never the last backend taking traffic (as Envoy's max_ejection_percent): one
            # client's requests that fail everywhere must not shut the whole service.
            now = time.monotonic()
            if any(b is not backend and b.takes_traffic(now) for b in self.backends):
                backend.eject(self.settings)
