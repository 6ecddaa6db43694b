"""Active health checks, and the resolution of SERVIDORES names into backend addresses."""

import asyncio
import contextlib
import logging
import time

from svc_common.discovery import Discovery, resolve
from svc_common.forwarding.failures import UpstreamError
from svc_common.forwarding.replies import request_head

from load_balancer.backends import Backend, BackendPool
from load_balancer.config import BalancerSettings

_PROBE_HEADERS = [(b"user-agent", b"load_balancer-health-check")]
log = logging.getLogger("load_balancer.health")


class HealthChecker:
    """Probes every backend on its own cadence and keeps the pool in step with DNS."""

    def __init__(self, settings: BalancerSettings, pool: BackendPool) -> None:
        self.settings = settings
        self.pool = pool
        # Looked up here, not at import, so a test can stand a fake resolver in for DNS.
        self.discovery = Discovery(settings.servidores, resolve)
        self._watchers: dict[int, asyncio.Task[None]] = {}
        self._resolver: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Resolve SERVIDORES and start probing (lifespan start)."""
        await self.resolve_all()
        self._resolver = asyncio.create_task(self._resolve_forever(), name="lb-resolve")

    async def close(self) -> None:
        """Stop every probe (lifespan end)."""
        tasks = [*self._watchers.values(), *([self._resolver] if self._resolver else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def unresolved(self) -> dict[str, str]:
        """SERVIDORES entries whose last lookup failed, with the reason."""
        return self.discovery.unresolved

    async def resolve_all(self) -> None:
        """Bring the pool in line with what each SERVIDORES entry resolves to now."""
        # An entry that failed keeps its last addresses (Discovery): a DNS hiccup must not
        # empty the pool.
        await self.discovery.refresh()
        for origin in self.discovery.origins:
            fresh = self.discovery.addresses.get(origin)
            if fresh is None:
                continue  # never resolved yet
            for backend in self.pool.replace(origin, fresh):
                log.info("backend %s left the pool", backend.name)
                task = self._watchers.pop(id(backend), None)
                if task is not None:
                    task.cancel()
        for backend in self.pool.backends:
            if id(backend) not in self._watchers:
                self._watchers[id(backend)] = asyncio.create_task(
                    self._watch(backend), name=f"lb-probe {backend.name}"
                )

    async def _resolve_forever(self) -> None:
        while True:
            # An entry that does not resolve yet (a container still starting) is retried sooner.
            pause = self.settings.fast_interval if self.unresolved else None
            await asyncio.sleep(pause or self.settings.resolve_interval)
            try:
                await self.resolve_all()
            except Exception:  # a resolver bug must not stop re-resolution for good
                log.exception("re-resolving SERVIDORES failed")

    async def _watch(self, backend: Backend) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            since = time.monotonic()
            try:
                ok, error = await self.probe(backend)
                if error == "timeout" and backend.last_answer >= since:
                    # Slow, not dead: it answered real requests while the probe waited.
                    log.info("health check of %s timed out while it served traffic", backend.name)
                else:
                    backend.record_probe(ok, self.settings, error=error)
            except Exception:  # one bad probe must not end this backend's checks
                log.exception("health check of %s failed", backend.name)
            pause = started + backend.probe_interval(self.settings) - loop.time()
            await asyncio.sleep(max(0.0, pause))

    async def probe(self, backend: Backend) -> tuple[bool, str | None]:
        """One GET of the health path: passed, or why not. It goes over the backend's own
        pool, on a connection no request shares, so a probe never waits behind traffic."""
        pool = self.pool.connections(backend)
        head = request_head(self.settings.health_path.encode(), pool.host, _PROBE_HEADERS)
        try:
            reply = await pool.stream(head, time_limit=self.settings.health_timeout)
            await reply.started()
            await reply.read()
        except UpstreamError as exc:
            return False, str(exc)
        if reply.status != 200:
            return False, f"HTTP {reply.status}"
        return True, None
