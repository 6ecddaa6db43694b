"""Polls every instance of every target (its /saude and /metrics) concurrently on an interval."""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
from prometheus_client import Counter, Gauge
from svc_common.discovery import Address, Discovery, Resolver, resolve

from monitoring.config import MonitorSettings
from monitoring.scrape import Scrape, parse_metrics
from monitoring.series import Series
from monitoring.services import Service
from monitoring.split import balancer_split, cache_hit_ratio, cache_sources, service_at
from monitoring.targets import TargetState, backends_from_status

log = logging.getLogger(__name__)

# Per instance, as Prometheus labels what it scrapes (`instance` is host:port).
LABELS = ["service", "instance"]
UP = Gauge("up", "1 when the instance answered its health check, else 0.", LABELS)
PROBE_LATENCY = Gauge("probe_latency_seconds", "Duration of the last health probe.", LABELS)
SCRAPE_DURATION = Gauge(
    "monitor_scrape_duration_seconds", "Duration of the last /metrics scrape.", LABELS
)
SCRAPE_FAILURES = Counter(
    "monitor_scrape_failures_total", "Scrapes of /metrics that failed.", LABELS
)
PER_INSTANCE = (UP, PROBE_LATENCY, SCRAPE_DURATION, SCRAPE_FAILURES)
CYCLE_DURATION = Gauge(
    "monitor_poll_cycle_seconds", "Wall time of the last poll of every target, parsing included."
)


class Poller:
    """Runs the probes and scrapes in a background task and keeps what they saw."""

    def __init__(self, settings: MonitorSettings, resolver: Resolver = resolve) -> None:
        self.settings = settings
        self.services = {
            n: Service(n, u, rate_window=settings.rate_window)
            for n, u in settings.monitor_targets.items()
        }
        self.discovery = Discovery(settings.monitor_targets.values(), resolver)
        self._sync()
        self.series = Series(settings.chart_window)
        self.traffic: dict[str, dict[str, float | None]] = {}
        self.after_cycle: list[Callable[[], object]] = []
        self._client: httpx.AsyncClient | None = None
        token = settings.metrics_token
        self._scraper = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Resolve the targets, open the HTTP client and begin polling (lifespan start)."""
        self._client = httpx.AsyncClient(timeout=self.settings.probe_timeout)
        await self.discovery.refresh()
        self._tasks = [
            asyncio.create_task(self._loop(), name="poller"),
            asyncio.create_task(self._resolve_forever(), name="poller-resolve"),
        ]

    async def close(self) -> None:
        """Stop polling and close the client (lifespan end)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()

    async def _loop(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.poll_once()
            except Exception:
                # One bad cycle (a parse bug, a hook) must not end monitoring for good.
                log.exception("poll cycle failed")
            elapsed = time.monotonic() - started
            CYCLE_DURATION.set(elapsed)
            await asyncio.sleep(max(0.0, self.settings.poll_interval - elapsed))

    async def _resolve_forever(self) -> None:
        while True:
            # A name that does not resolve (yet) is tried again at the next poll.
            unresolved = self.discovery.unresolved
            await asyncio.sleep(
                self.settings.poll_interval if unresolved else self.settings.resolve_interval
            )
            try:
                await self.discovery.refresh()
            except Exception:  # a resolver bug must not stop re-resolution for good
                log.exception("re-resolving MONITOR_TARGETS failed")

    def _sync(self) -> None:
        """Bring each service's instances in line with what its URL resolved to last."""
        # Applied between polls, never during one: a poll in flight keeps its instances.
        for service in self.services.values():
            # A name that never resolved is polled as written: it shows down (cannot connect).
            addresses = self.discovery.addresses.get(service.url)
            for gone in service.sync(addresses or [Address(service.url, name=service.url)]):
                for metric in PER_INSTANCE:
                    with contextlib.suppress(KeyError):
                        metric.remove(gone.name, gone.instance)

    def instances(self) -> list[TargetState]:
        """Every instance of every service."""
        return [t for s in self.services.values() for t in s.instances.values()]

    async def poll_once(self) -> None:
        """Probe and scrape every instance once, concurrently, then run the hooks."""
        self._sync()
        await asyncio.gather(*(self._poll(t) for t in self.instances()))
        for service in self.services.values():
            service.update()
        self.traffic = {name: s.traffic() for name, s in self.services.items()}
        hit_ratio, _ = self.cache_hit_ratio()
        points = {
            name: {"up": s.up_share, "latency_ms": s.latency_ms} | self.traffic[name]
            for name, s in self.services.items()
        }
        self.series.add(time.time(), points, hit_ratio)
        for hook in self.after_cycle:
            hook()

    async def _poll(self, target: TargetState) -> None:
        await asyncio.gather(self._probe(target), self._scrape(target))

    async def _probe(self, target: TargetState) -> None:
        assert self._client is not None
        started = time.perf_counter()
        error: str | None = None
        try:
            response = await self._client.get(f"{target.url}/saude", **_addressed(target))
            up = response.status_code == 200
            if not up:
                error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            up, error = False, type(exc).__name__
        latency = time.perf_counter() - started
        target.record(up, round(latency * 1000, 1), error, self.settings.uptime_window)
        UP.labels(target.name, target.instance).set(1 if up else 0)
        PROBE_LATENCY.labels(target.name, target.instance).set(latency)

    async def _scrape(self, target: TargetState) -> None:
        assert self._client is not None
        started = time.perf_counter()
        try:
            response = await self._client.get(
                f"{target.url}/metrics", **_addressed(target, self._scraper)
            )
            response.raise_for_status()
            scrape = parse_metrics(response.text)
        except (httpx.HTTPError, ValueError) as exc:
            SCRAPE_FAILURES.labels(target.name, target.instance).inc()
            target.scrape_failed(type(exc).__name__)
            return
        finally:
            SCRAPE_DURATION.labels(target.name, target.instance).set(time.perf_counter() - started)
        if target.name == self.settings.balancer_target:
            if scrape.backend_requests:
                target.backend_source = "metrics"
            else:
                await self._read_status(target, scrape)
        target.record_scrape(scrape, time.monotonic())

    async def _read_status(self, target: TargetState, scrape: Scrape) -> None:
        """Per-backend counters from /status, for a balancer whose metrics lack them."""
        assert self._client is not None
        try:
            response = await self._client.get(f"{target.url}/status", **_addressed(target))
            response.raise_for_status()
            requests, states = backends_from_status(response.json())
        except (httpx.HTTPError, ValueError) as exc:
            log.debug("no backend split from %s/status: %r", target.url, exc)
            return
        scrape.backend_requests = requests
        scrape.backend_state = states or scrape.backend_state
        # A failed read above keeps the last known source: one slow /status is not "no split".
        if requests:
            target.backend_source = "status"

    def target_named(self, url: str) -> str | None:
        """The service at `url` (maps a balancer's backend URL to a service name)."""
        return service_at(self.services, url)

    def balancer(self) -> dict[str, Any]:
        """The balancer's split of requests across its backends, and their health."""
        return balancer_split(self.services, self.settings.balancer_target)

    def cache_hit_ratio(self) -> tuple[float | None, float | None]:
        """(hit ratio, lookups per second) over the rate window, all services' lookups summed."""
        return cache_hit_ratio(self.instances())

    def cache(self) -> dict[str, Any]:
        """The hit ratio and which services' counters it was summed from."""
        ratio, rate = self.cache_hit_ratio()
        return {
            "target": self.settings.cache_target,
            "sources": cache_sources(self.instances()),
            "hit_ratio": ratio,
            "lookup_rate": rate,
        }


def _addressed(target: TargetState, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Request options for an instance reached by IP: its service's host name in the Host
    header and, over TLS, in SNI (which the certificate is checked against)."""
    headers = dict(headers or {})
    if target.host_header is None:
        return {"headers": headers}
    headers["Host"] = target.host_header
    options: dict[str, Any] = {"headers": headers}
    if target.url.startswith("https://"):
        options["extensions"] = {"sni_hostname": urlsplit(f"//{target.host_header}").hostname}
    return options
