"""The alert rules: what each one watches, its threshold and its `for` duration."""

from collections.abc import Callable
from dataclasses import dataclass

from monitoring.config import MonitorSettings
from monitoring.poller import Poller
from monitoring.scrape import IN_ROTATION


@dataclass(frozen=True)
class Condition:
    """One labelled series for which a rule's expression is true right now."""

    labels: dict[str, str]
    value: float | None
    summary: str


@dataclass(frozen=True)
class Rule:
    """An alerting rule in the Prometheus sense: expression, `for`, labels, annotations."""

    name: str
    severity: str
    for_seconds: float
    expr: str
    check: Callable[[Poller], list[Condition]]

    def describe(self) -> dict[str, object]:
        """The rule as /alerts/rules shows it."""
        return {
            "name": self.name,
            "severity": self.severity,
            "for_seconds": self.for_seconds,
            "expr": self.expr,
        }


def default_rules(settings: MonitorSettings) -> list[Rule]:
    """The five rules of the issue, thresholds and durations from ALERT_* settings."""
    min_rate = settings.alert_min_rate
    p95_limit = settings.alert_latency_p95_ms
    error_limit = settings.alert_error_ratio
    hit_limit = settings.alert_cache_hit_ratio

    def down(poller: Poller) -> list[Condition]:
        # Per instance, as `up == 0` is in Prometheus: the same labels, one pod down is one alert.
        found = []
        for service in poller.services.values():
            instances = service.instances.values()
            up = sum(t.up is True for t in instances)
            for t in instances:
                if t.up is not False:
                    continue
                summary = f"{t.name} is not answering /saude ({t.error})"
                if len(instances) > 1:
                    summary = (
                        f"{t.name} instance {t.instance} is not answering /saude ({t.error}); "
                        f"{up} of {len(instances)} up"
                    )
                found.append(Condition({"service": t.name, "instance": t.instance}, 0.0, summary))
        return found

    def slow(poller: Poller) -> list[Condition]:
        found = []
        for name, stats in poller.traffic.items():
            p95, rate = stats.get("p95_ms"), stats.get("request_rate") or 0.0
            if p95 is not None and p95 > p95_limit and rate >= min_rate:
                summary = f"{name} p95 latency is {p95:.0f} ms (limit {p95_limit:.0f} ms)"
                found.append(Condition({"service": name}, p95, summary))
        return found

    def failing(poller: Poller) -> list[Condition]:
        found = []
        for name, stats in poller.traffic.items():
            ratio, rate = stats.get("error_ratio"), stats.get("request_rate") or 0.0
            if ratio is not None and ratio > error_limit and rate >= min_rate:
                summary = f"{name} answers {ratio:.1%} with 5xx (limit {error_limit:.1%})"
                found.append(Condition({"service": name}, ratio, summary))
        return found

    def missing(poller: Poller) -> list[Condition]:
        ratio, rate = poller.cache_hit_ratio()
        if ratio is None or ratio >= hit_limit or (rate or 0.0) < min_rate:
            return []
        name = settings.cache_target
        summary = f"{name} hit ratio is {ratio:.1%} (expected at least {hit_limit:.0%})"
        return [Condition({"service": name}, ratio, summary)]

    def ejected(poller: Poller) -> list[Condition]:
        split = poller.balancer()
        return [
            Condition(
                {"service": split["target"], "backend": b["backend"]},
                0.0,
                f"{split['target']} took {b['name'] or b['backend']} out of rotation "
                f"({b['state']})",
            )
            for b in split["backends"]
            if b["state"] is not None and b["state"] not in IN_ROTATION
        ]

    window = f"{settings.rate_window:g}s"
    return [
        Rule("ServiceDown", "critical", settings.alert_down_for, "up == 0", down),
        Rule(
            "HighLatencyP95",
            "warning",
            settings.alert_latency_for,
            f"p95 of http_request_duration_seconds over {window} > {p95_limit:g} ms",
            slow,
        ),
        Rule(
            "HighErrorRate",
            "critical",
            settings.alert_error_for,
            f"5xx share of http_requests_total over {window} > {error_limit:g}",
            failing,
        ),
        Rule(
            "LowCacheHitRatio",
            "warning",
            settings.alert_cache_for,
            f"cache hits / lookups over {window} < {hit_limit:g}",
            missing,
        ),
        Rule(
            "BackendEjected",
            "warning",
            settings.alert_backend_for,
            "balancer reports a backend out of rotation",
            ejected,
        ),
    ]
