"""Polls every target's /saude and /metrics concurrently on an interval."""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
from prometheus_client import Counter, Gauge

from monitoring.config import MonitorSettings
from monitoring.scrape import Scrape, parse_metrics
from monitoring.series import Series
from monitoring.targets import TargetState, backends_from_status

log = logging.getLogger(__name__)

UP = Gauge("up", "1 when the service answered its health check, else 0.", ["service"])
PROBE_LATENCY = Gauge("probe_latency_seconds", "Duration of the last health probe.", ["service"])
SCRAPE_DURATION = Gauge(
    "monitor_scrape_duration_seconds", "Duration of the last /metrics scrape.", ["service"]
)
SCRAPE_FAILURES = Counter(
    "monitor_scrape_failures_total", "Scrapes of /metrics that failed.", ["service"]
)
CYCLE_DURATION = Gauge(
    "monitor_poll_cycle_seconds", "Wall time of the last poll of every target, parsing included."
)


class Poller:
    """Runs the probes and scrapes in a background task and keeps what they saw."""

    def __init__(self, settings: MonitorSettings) -> None:
        self.settings = settings
        self.targets = {
            n: TargetState(n, u, rate_window=settings.rate_window)
            for n, u in settings.monitor_targets.items()
        }
        self.series = Series(settings.chart_window)
        self.traffic: dict[str, dict[str, float | None]] = {}
        self.after_cycle: list[Callable[[], object]] = []
        self._client: httpx.AsyncClient | None = None
        token = settings.metrics_token
        self._scraper = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the HTTP client and begin polling (lifespan start)."""
        self._client = httpx.AsyncClient(timeout=self.settings.probe_timeout)
        self._task = asyncio.create_task(self._loop(), name="poller")

    async def close(self) -> None:
        """Stop polling and close the client (lifespan end)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
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

    async def poll_once(self) -> None:
        """Probe and scrape every target once, concurrently, then run the hooks."""
        await asyncio.gather(*(self._poll(t) for t in self.targets.values()))
        self.traffic = {name: t.traffic() for name, t in self.targets.items()}
        hit_ratio, _ = self.cache_hit_ratio()
        points = {
            name: {"up": None if t.up is None else float(t.up), "latency_ms": t.latency_ms}
            | self.traffic[name]
            for name, t in self.targets.items()
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
            response = await self._client.get(f"{target.url}/saude")
            up = response.status_code == 200
            if not up:
                error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            up, error = False, type(exc).__name__
        latency = time.perf_counter() - started
        target.record(up, round(latency * 1000, 1), error, self.settings.uptime_window)
        UP.labels(target.name).set(1 if up else 0)
        PROBE_LATENCY.labels(target.name).set(latency)

    async def _scrape(self, target: TargetState) -> None:
        assert self._client is not None
        started = time.perf_counter()
        try:
            response = await self._client.get(f"{target.url}/metrics", headers=self._scraper)
            response.raise_for_status()
            scrape = parse_metrics(response.text)
        except (httpx.HTTPError, ValueError) as exc:
            SCRAPE_FAILURES.labels(target.name).inc()
            target.scrape_failed(type(exc).__name__)
            return
        finally:
            SCRAPE_DURATION.labels(target.name).set(time.perf_counter() - started)
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
            response = await self._client.get(f"{target.url}/status")
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
        """The target whose base URL is `url` (maps a backend URL to a service name)."""
        url = url.rstrip("/")
        return next((t.name for t in self.targets.values() if t.url == url), None)

    def balancer(self) -> dict[str, Any]:
        """The balancer's split of requests across its backends, and their health."""
        lb = self.targets.get(self.settings.balancer_target)
        scrape = lb.last_scrape if lb else None
        if lb is None or scrape is None:
            return {"target": self.settings.balancer_target, "source": None, "backends": []}
        rates = lb.window.backend_rates()
        total_rate = sum(rates.values())
        backends = []
        known = scrape.backend_requests.keys() | scrape.backend_state.keys()
        for backend in sorted(known, key=lambda url: self.target_named(url) or url):
            rate = rates.get(backend, 0.0)
            backends.append(
                {
                    "backend": backend,
                    "name": self.target_named(backend),
                    "state": scrape.backend_state.get(backend),
                    "requests_total": scrape.backend_requests.get(backend),
                    "request_rate": round(rate, 3),
                    "share": round(rate / total_rate, 4) if total_rate > 0 else None,
                }
            )
        return {"target": lb.name, "source": lb.backend_source, "backends": backends}

    def cache_hit_ratio(self) -> tuple[float | None, float | None]:
        """(hit ratio, lookups per second) over the rate window, all services' lookups summed."""
        counted = [lookups for t in self.targets.values() if (lookups := t.cache_lookups())]
        hits = sum(h for h, _ in counted)
        total = hits + sum(m for _, m in counted)
        return (round(hits / total, 4), round(total, 3)) if total > 0 else (None, None)

    def cache(self) -> dict[str, Any]:
        """The hit ratio and which services' counters it was summed from."""
        ratio, rate = self.cache_hit_ratio()
        sources = [
            f"{t.name} ({t.last_scrape.cache_source})"
            for t in self.targets.values()
            if t.last_scrape is not None and t.last_scrape.cache_source is not None
        ]
        return {
            "target": self.settings.cache_target,
            "sources": sources,
            "hit_ratio": ratio,
            "lookup_rate": rate,
        }
