"""Alert lifecycle as Prometheus and Alertmanager run it: pending -> firing -> resolved."""

import contextlib
import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Gauge

from monitoring.poller import Poller
from monitoring.rules import Condition, Rule

log = logging.getLogger(__name__)

ALERTS = Gauge(
    "ALERTS",
    "Active alerts, as Prometheus exports them (1 per pending or firing alert).",
    ["alertname", "alertstate", "severity", "service", "instance", "backend"],
)
ACTIVE_STATES = ("pending", "firing")
TRANSITIONS = Counter(
    "monitor_alert_transitions_total", "Alert state changes.", ["alertname", "state"]
)


def fingerprint(name: str, labels: dict[str, str]) -> str:
    """Stable id of one alert series (its name and labels)."""
    text = name + "".join(f"\x00{k}\x01{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Alert:
    """One alert series of one rule."""

    name: str
    severity: str
    labels: dict[str, str]
    summary: str
    value: float | None
    active_at: float
    state: str = "pending"
    fired_at: float | None = None
    resolved_at: float | None = None
    notified_at: float | None = None
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        self.fingerprint = fingerprint(self.name, self.labels)

    def to_dict(self) -> dict[str, Any]:
        """The alert as /alerts and the webhook show it."""
        return {
            "name": self.name,
            "service": self.labels.get("service"),
            "labels": {"alertname": self.name, "severity": self.severity} | self.labels,
            "severity": self.severity,
            "state": self.state,
            "summary": self.summary,
            "value": self.value,
            "active_at": self.active_at,
            "fired_at": self.fired_at,
            "resolved_at": self.resolved_at,
            "since": self.fired_at or self.active_at,
            "fingerprint": self.fingerprint,
        }


class AlertEngine:
    """Evaluates the rules after every poll and remembers each state change."""

    def __init__(
        self,
        rules: list[Rule],
        *,
        history: int = 500,
        notify: Callable[[Alert], None] | None = None,
        repeat_interval: float = 0,
    ) -> None:
        self.rules = rules
        self.active: dict[str, Alert] = {}
        self.history: deque[dict[str, Any]] = deque(maxlen=history)
        self.notify = notify
        # Alertmanager's repeat_interval: a firing alert is notified again this often (0: never),
        # so one lost or overlooked notification does not hide an outage that goes on.
        self.repeat_interval = repeat_interval

    def evaluate(self, poller: Poller, now: float | None = None) -> list[Alert]:
        """Run every rule once; returns the alerts that started firing or resolved (and
        notifies those, and the firing ones due again)."""
        now = time.time() if now is None else now
        changed: list[Alert] = []
        again: list[Alert] = []
        for rule in self.rules:
            seen: set[str] = set()
            for condition in rule.check(poller):
                alert = self._observe(rule, condition, now)
                seen.add(alert.fingerprint)
                if alert.state == "pending" and now - alert.active_at >= rule.for_seconds:
                    self._move(alert, "firing", now)
                    alert.fired_at = now
                    changed.append(alert)
                elif alert.state == "firing" and self._due_again(alert, now):
                    again.append(alert)
            for key, alert in list(self.active.items()):
                if alert.name != rule.name or key in seen:
                    continue
                del self.active[key]
                if alert.state == "firing":
                    alert.resolved_at = now
                    self._move(alert, "resolved", now)
                    changed.append(alert)
                else:
                    # Cleared before its `for` ran out: never fired, nothing to resolve.
                    self._move(alert, "inactive", now)
        for alert in changed + again:
            alert.notified_at = now
            if self.notify is not None:
                self.notify(alert)
        return changed

    def _due_again(self, alert: Alert, now: float) -> bool:
        last = alert.notified_at
        return self.repeat_interval > 0 and last is not None and now - last >= self.repeat_interval

    def _observe(self, rule: Rule, condition: Condition, now: float) -> Alert:
        key = fingerprint(rule.name, condition.labels)
        alert = self.active.get(key)
        if alert is None:
            alert = Alert(
                rule.name, rule.severity, condition.labels, condition.summary, condition.value, now
            )
            self.active[key] = alert
            self._move(alert, "pending", now, previous="inactive")
        alert.summary, alert.value = condition.summary, condition.value
        return alert

    def _move(self, alert: Alert, state: str, now: float, previous: str | None = None) -> None:
        previous = previous or alert.state
        labels = alert.labels
        # "" stands for a label the alert does not carry, as in Prometheus.
        where = [labels.get(key, "") for key in ("service", "instance", "backend")]
        if previous in ACTIVE_STATES:
            with contextlib.suppress(KeyError):
                ALERTS.remove(alert.name, previous, alert.severity, *where)
        alert.state = state
        if state in ACTIVE_STATES:
            ALERTS.labels(alert.name, state, alert.severity, *where).set(1)
        TRANSITIONS.labels(alert.name, state).inc()
        level = logging.WARNING if state == "firing" else logging.INFO
        log.log(level, "alert %s %s -> %s: %s", alert.name, previous, state, alert.summary)
        self.history.append(
            {
                "at": now,
                "name": alert.name,
                "labels": dict(labels),
                "from": previous,
                "to": state,
                "summary": alert.summary,
                "value": alert.value,
                "fingerprint": alert.fingerprint,
            }
        )

    def alerts(self, state: str | None = None) -> list[Alert]:
        """Pending and firing alerts, firing first, oldest first within a state."""
        found = [a for a in self.active.values() if state is None or a.state == state]
        return sorted(found, key=lambda a: (a.state != "firing", a.active_at))
