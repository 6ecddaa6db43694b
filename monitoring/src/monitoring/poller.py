"""Polls every target's /saude on an interval and keeps what it saw."""

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field

import httpx
from prometheus_client import Gauge

from monitoring.config import MonitorSettings

log = logging.getLogger(__name__)

UP = Gauge("up", "1 when the service answered its health check, else 0.", ["service"])
PROBE_LATENCY = Gauge("probe_latency_seconds", "Duration of the last health probe.", ["service"])


@dataclass
class TargetState:
    """What the monitor knows about one service."""

    name: str
    url: str
    up: bool | None = None
    latency_ms: float | None = None
    error: str | None = None
    checked_at: float | None = None
    since: float = field(default_factory=time.time)
    history: deque[tuple[float, bool]] = field(default_factory=deque)

    def record(self, up: bool, latency_ms: float, error: str | None, window: int) -> None:
        """Store one probe result and forget what fell out of the window."""
        now = time.time()
        if up != self.up:
            if up:
                log.info("%s is up", self.name)
            else:
                log.warning("%s is down: %s", self.name, error)
            self.since = now
        self.up, self.latency_ms, self.error, self.checked_at = up, latency_ms, error, now
        self.history.append((now, up))
        while self.history and self.history[0][0] < now - window:
            self.history.popleft()

    @property
    def uptime_percent(self) -> float | None:
        """Share of probes in the window that found the service up."""
        if not self.history:
            return None
        return round(100 * sum(ok for _, ok in self.history) / len(self.history), 2)

    def snapshot(self) -> dict[str, object]:
        """The state as /health shows it."""
        return {
            "name": self.name,
            "url": self.url,
            "status": "unknown" if self.up is None else "up" if self.up else "down",
            "latency_ms": self.latency_ms,
            "uptime_percent": self.uptime_percent,
            "error": self.error,
            "checked_at": self.checked_at,
            "since": self.since,
        }


class Poller:
    """Runs the probes concurrently in a background task."""

    def __init__(self, settings: MonitorSettings) -> None:
        self.settings = settings
        self.targets = {n: TargetState(n, u) for n, u in settings.monitor_targets.items()}
        self._client: httpx.AsyncClient | None = None
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
            await self.poll_once()
            await asyncio.sleep(self.settings.poll_interval)

    async def poll_once(self) -> None:
        """Probe every target once, concurrently."""
        await asyncio.gather(*(self._probe(t) for t in self.targets.values()))

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
