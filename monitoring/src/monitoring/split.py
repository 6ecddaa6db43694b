"""Figures summed over instances: the balancer's split across its backends, the cache hit ratio."""

from collections import defaultdict
from typing import Any

from monitoring.scrape import IN_ROTATION
from monitoring.services import Service
from monitoring.targets import TargetState


def service_at(services: dict[str, Service], url: str) -> str | None:
    """The service whose URL, or one of whose instances' URLs, is `url`."""
    url = url.rstrip("/")
    for service in services.values():
        if service.url == url or any(t.url == url for t in service.instances.values()):
            return service.name
    return None


def balancer_split(services: dict[str, Service], target: str) -> dict[str, Any]:
    """How the balancer's instances together spread requests across backends, and their state.

    A backend that one balancer instance took out of rotation shows that instance's state:
    the other instances may not have noticed yet.
    """
    lb = services.get(target)
    scraped = [t for t in lb.instances.values() if t.last_scrape is not None] if lb else []
    if lb is None or not scraped:
        return {"target": target, "source": None, "backends": []}
    rates: defaultdict[str, float] = defaultdict(float)
    totals: dict[str, float] = {}
    states: dict[str, str] = {}
    for t in scraped:
        assert t.last_scrape is not None
        for backend, rate in t.window.backend_rates().items():
            rates[backend] += rate
        for backend, count in t.last_scrape.backend_requests.items():
            totals[backend] = totals.get(backend, 0.0) + count
        for backend, state in t.last_scrape.backend_state.items():
            if backend not in states or states[backend] in IN_ROTATION:
                states[backend] = state
    total_rate = sum(rates.values())
    backends = []
    for backend in sorted(
        totals.keys() | states.keys(), key=lambda u: service_at(services, u) or u
    ):
        rate = rates.get(backend, 0.0)
        backends.append(
            {
                "backend": backend,
                "name": service_at(services, backend),
                "state": states.get(backend),
                "requests_total": totals.get(backend),
                "request_rate": round(rate, 3),
                "share": round(rate / total_rate, 4) if total_rate > 0 else None,
            }
        )
    source = next((t.backend_source for t in scraped if t.backend_source), None)
    return {"target": lb.name, "source": source, "backends": backends}


def cache_hit_ratio(instances: list[TargetState]) -> tuple[float | None, float | None]:
    """(hit ratio, lookups per second) over the rate window, every instance's lookups summed."""
    counted = [lookups for t in instances if (lookups := t.cache_lookups())]
    hits = sum(h for h, _ in counted)
    total = hits + sum(m for _, m in counted)
    return (round(hits / total, 4), round(total, 3)) if total > 0 else (None, None)


def cache_sources(instances: list[TargetState]) -> list[str]:
    """The services the hit ratio was summed from, and how each counts: metrics or http."""
    found = [
        f"{t.name} ({t.last_scrape.cache_source})"
        for t in instances
        if t.last_scrape is not None and t.last_scrape.cache_source is not None
    ]
    return list(dict.fromkeys(found))
