"""A monitored service: the instances its URL stands for, and what they add up to."""

import logging
import time
from collections import defaultdict

from svc_common.discovery import Address

from monitoring.targets import TargetState, summarize

log = logging.getLogger(__name__)


class Service:
    """One MONITOR_TARGETS entry: an instance per address its host name resolves to."""

    def __init__(self, name: str, url: str, *, rate_window: float = 60.0) -> None:
        self.name = name
        self.url = url
        self.rate_window = rate_window
        self.instances: dict[str, TargetState] = {}
        self._judged = "unknown"
        self.since = time.time()

    def sync(self, addresses: list[Address]) -> list[TargetState]:
        """Make the instances those of `addresses` (kept ones keep their history); returns the
        instances that went away."""
        wanted = {a.instance: a for a in addresses}
        gone = [t for key, t in self.instances.items() if key not in wanted]
        known = bool(self.instances)
        fresh: dict[str, TargetState] = {}
        for key, address in wanted.items():
            state = self.instances.get(key)
            if state is None:
                state = TargetState(
                    self.name,
                    address.url,
                    rate_window=self.rate_window,
                    instance=key,
                    host_header=address.host_header,
                )
                if known:
                    log.info("%s: instance %s appeared", self.name, key)
            fresh[key] = state
        for state in gone:
            log.info("%s: instance %s went away", self.name, state.instance)
        self.instances = fresh
        return gone

    @property
    def status(self) -> str:
        """The service's state from its instances' last probes.

        up: every probed instance answered; down: none did; degraded: some did. A degraded
        service still serves (the balancer, or a Kubernetes Service, routes around a dead pod)
        but has lost capacity and redundancy, which is worth a look but is not an outage. An
        instance not probed yet does not count, so a pod that just appeared degrades nothing.
        """
        probed = [t.up for t in self.instances.values() if t.up is not None]
        if not probed:
            return "unknown"
        if all(probed):
            return "up"
        return "degraded" if any(probed) else "down"

    def update(self) -> None:
        """Remember when the service's state changed (after each poll)."""
        status = self.status
        if status != self._judged:
            if len(self.instances) > 1 and "unknown" not in (status, self._judged):
                up = sum(t.up is True for t in self.instances.values())
                log.info("%s is %s (%d of %d up)", self.name, status, up, len(self.instances))
            self._judged, self.since = status, time.time()

    @property
    def up_share(self) -> float | None:
        """Share of the probed instances that are up (the chart's `up` point)."""
        probed = [t.up for t in self.instances.values() if t.up is not None]
        return sum(probed) / len(probed) if probed else None

    @property
    def latency_ms(self) -> float | None:
        """The slowest instance's last probe: what the unluckiest client of the service waits."""
        probed = [t.latency_ms for t in self.instances.values() if t.latency_ms is not None]
        return max(probed) if probed else None

    def _which(self, t: TargetState, text: str | None) -> str | None:
        # With one instance, a message needs no address (and reads as it always did).
        return text if text is None or len(self.instances) == 1 else f"{t.instance}: {text}"

    def snapshot(self) -> dict[str, object]:
        """The service and each of its instances, as /health shows them."""
        states = list(self.instances.values())
        history = [ok for t in states for _, ok in t.history]
        errors = [self._which(t, t.error) for t in states if t.up is False]
        checked = [t.checked_at for t in states if t.checked_at is not None]
        return {
            "name": self.name,
            "url": self.url,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "uptime_percent": round(100 * sum(history) / len(history), 2) if history else None,
            "error": "; ".join(e for e in errors if e) or None,
            "checked_at": max(checked) if checked else None,
            "since": self.since,
            "instances": [t.snapshot() for t in states],
        }

    def traffic(self) -> dict[str, float | None]:
        """Rates and quantiles of the whole service: every instance's traffic summed, as
        `sum by (service)` does in deploy/prometheus/alerts.yml."""
        windows = [t.window for t in self.instances.values()]
        requests = [r for w in windows if (r := w.rate("requests")) is not None]
        errors = [e for w in windows if (e := w.rate("errors")) is not None]
        buckets: defaultdict[float, float] = defaultdict(float)
        for window in windows:
            for le, count in window.buckets().items():
                buckets[le] += count
        return summarize(
            sum(requests) if requests else None, sum(errors) if errors else None, dict(buckets)
        )

    @property
    def scrape_error(self) -> str | None:
        """Why the last scrape of some instance failed (each named when there are several)."""
        errors = [self._which(t, t.scrape_error) for t in self.instances.values()]
        return "; ".join(e for e in errors if e) or None
