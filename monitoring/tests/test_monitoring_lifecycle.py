"""Alert rules and the pending -> firing -> resolved lifecycle, on a poller fed by hand."""

from typing import Any

import pytest
from monitoring.alerts import Alert, AlertEngine
from monitoring.config import MonitorSettings
from monitoring.poller import Poller
from monitoring.rules import default_rules
from monitoring.scrape import Delta, Scrape
from monitoring.targets import TargetState


def settings(**overrides: Any) -> MonitorSettings:
    """Monitor settings from arguments only (no environment, no .env)."""
    return MonitorSettings(_env_file=None, **overrides)  # type: ignore[call-arg]


Sent = list[tuple[str, str, float | None, float | None]]


def make(repeat_interval: float = 0, **overrides: Any) -> tuple[Poller, AlertEngine, Sent]:
    """A poller that never polls, its engine, and what the engine notified, as it was then."""
    conf = settings(**overrides)
    poller = Poller(conf)
    for target in poller.instances():
        target.up = True
    sent: Sent = []

    def notify(alert: Alert) -> None:
        sent.append((alert.name, alert.state, alert.fired_at, alert.resolved_at))

    engine = AlertEngine(default_rules(conf), notify=notify, repeat_interval=repeat_interval)
    return poller, engine, sent


def only(poller: Poller, service: str) -> TargetState:
    """The one instance of a service configured by IP address."""
    [instance] = poller.services[service].instances.values()
    return instance


def down(poller: Poller, service: str) -> dict[str, str]:
    """The labels of the ServiceDown alert of a service's one instance."""
    return {"service": service, "instance": only(poller, service).instance}


def names(engine: AlertEngine, state: str | None = None) -> list[tuple[str, dict[str, str]]]:
    """(alertname, labels) of the active alerts."""
    return [(a.name, a.labels) for a in engine.alerts(state)]


def test_down_service_goes_pending_then_firing_after_its_for_duration() -> None:
    poller, engine, sent = make(alert_down_for=10)
    only(poller, "server").up = False
    engine.evaluate(poller, now=100)
    assert names(engine, "pending") == [("ServiceDown", down(poller, "server"))]
    engine.evaluate(poller, now=109)
    assert engine.alerts("firing") == []
    engine.evaluate(poller, now=110)
    assert names(engine, "firing") == [("ServiceDown", down(poller, "server"))]
    assert sent == [("ServiceDown", "firing", 110, None)]


def test_a_recovered_service_resolves_its_alert_and_history_keeps_every_step() -> None:
    poller, engine, sent = make(alert_down_for=0)
    only(poller, "cache").up = False
    engine.evaluate(poller, now=1)
    only(poller, "cache").up = True
    engine.evaluate(poller, now=2)
    assert engine.alerts() == []
    assert sent == [("ServiceDown", "firing", 1, None), ("ServiceDown", "resolved", 1, 2)]
    steps = [(e["from"], e["to"], e["at"]) for e in engine.history]
    assert steps == [
        ("inactive", "pending", 1),
        ("pending", "firing", 1),
        ("firing", "resolved", 2),
    ]


def test_a_blip_shorter_than_for_never_fires_or_notifies() -> None:
    poller, engine, sent = make(alert_down_for=5)
    only(poller, "server2").up = False
    engine.evaluate(poller, now=1)
    only(poller, "server2").up = True
    engine.evaluate(poller, now=2)
    assert sent == []
    assert [e["to"] for e in engine.history] == ["pending", "inactive"]


def test_an_alert_still_firing_is_notified_again_every_repeat_interval_until_it_resolves() -> None:
    poller, engine, sent = make(repeat_interval=60, alert_down_for=0)
    only(poller, "server").up = False
    for now in (100, 130, 159, 160, 200, 220):
        engine.evaluate(poller, now=now)
    only(poller, "server").up = True
    engine.evaluate(poller, now=230)
    assert sent == [
        ("ServiceDown", "firing", 100, None),
        ("ServiceDown", "firing", 100, None),  # at 160, the same alert (same startsAt)
        ("ServiceDown", "firing", 100, None),  # at 220
        ("ServiceDown", "resolved", 100, 230),
    ]
    assert [e["to"] for e in engine.history] == ["pending", "firing", "resolved"]


def test_without_a_repeat_interval_a_firing_alert_is_notified_once() -> None:
    poller, engine, sent = make(alert_down_for=0)
    only(poller, "server").up = False
    for now in (100, 10_000, 100_000):
        engine.evaluate(poller, now=now)
    assert sent == [("ServiceDown", "firing", 100, None)]


def test_unknown_services_are_not_down() -> None:
    poller, engine, _ = make(alert_down_for=0)
    only(poller, "server").up = None
    engine.evaluate(poller, now=1)
    assert engine.alerts() == []


def traffic(rate: float, p95: float | None = None, errors: float | None = None) -> dict[str, Any]:
    """One service's derived traffic as the poller stores it."""
    return {"request_rate": rate, "error_ratio": errors, "p50_ms": None, "p95_ms": p95}


def test_latency_and_error_rules_use_configured_thresholds_and_a_minimum_rate() -> None:
    poller, engine, _ = make(
        alert_latency_p95_ms=200, alert_latency_for=0, alert_error_ratio=0.1, alert_error_for=0
    )
    poller.traffic = {
        "server": traffic(5, p95=250, errors=0.2),
        "server2": traffic(5, p95=150, errors=0.05),
        "cache": traffic(0.01, p95=900, errors=1.0),  # too little traffic to judge
    }
    engine.evaluate(poller, now=1)
    assert sorted(names(engine)) == [
        ("HighErrorRate", {"service": "server"}),
        ("HighLatencyP95", {"service": "server"}),
    ]
    values = {a.name: a.value for a in engine.alerts()}
    assert values == {"HighErrorRate": 0.2, "HighLatencyP95": 250}


def feed_cache(poller: Poller, service: str, hits: float, misses: float) -> None:
    """Put ten seconds of cache lookups in a service's window."""
    target = only(poller, service)
    target.last_scrape = target.last_scrape or Scrape(cache_source="metrics")
    target.window.add(Delta(0, 10, 0, 0, {}, {}, hits, misses))


def test_hit_ratio_sums_the_lookups_of_every_service_that_counts_them() -> None:
    poller, _, _ = make()
    feed_cache(poller, "server", hits=90, misses=10)
    feed_cache(poller, "server2", hits=60, misses=40)
    assert poller.cache_hit_ratio() == (0.75, 20.0)
    assert poller.cache()["sources"] == ["server (metrics)", "server2 (metrics)"]


def test_low_cache_hit_ratio_fires_below_the_threshold_only() -> None:
    poller, engine, _ = make(alert_cache_hit_ratio=0.8, alert_cache_for=0)
    feed_cache(poller, "cache", hits=85, misses=15)
    engine.evaluate(poller, now=1)
    assert engine.alerts() == []
    feed_cache(poller, "cache", hits=0, misses=100)  # the window holds 85 hits in 200 lookups
    engine.evaluate(poller, now=2)
    [alert] = engine.alerts("firing")
    assert (alert.name, alert.labels, alert.value) == (
        "LowCacheHitRatio",
        {"service": "cache"},
        pytest.approx(0.425),
    )


def test_ejected_backend_alert_names_the_backend_and_its_service() -> None:
    poller, engine, _ = make(alert_backend_for=0)
    lb = only(poller, "load_balancer")
    lb.last_scrape = Scrape(
        backend_requests={"http://127.0.0.1:8002": 10, "http://127.0.0.1:8003": 10},
        backend_state={
            "http://127.0.0.1:8002": "ejected",
            "http://127.0.0.1:8003": "up",
            "http://127.0.0.1:8009": "unknown",
        },
    )
    engine.evaluate(poller, now=1)
    [alert] = engine.alerts("firing")
    assert alert.labels == {"service": "load_balancer", "backend": "http://127.0.0.1:8002"}
    assert alert.summary == "load_balancer took server out of rotation (ejected)"


def test_firing_alerts_come_first_then_pending() -> None:
    poller, engine, _ = make(alert_down_for=5)
    only(poller, "server").up = False
    engine.evaluate(poller, now=1)
    only(poller, "cache").up = False
    engine.evaluate(poller, now=6)
    assert [(a.labels["service"], a.state) for a in engine.alerts()] == [
        ("server", "firing"),
        ("cache", "pending"),
    ]
