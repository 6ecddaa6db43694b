"""Alert notifications to ALERT_WEBHOOK_URL in Alertmanager's webhook format, with retries."""

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

import httpx
from prometheus_client import Counter

from monitoring.alerts import Alert

log = logging.getLogger(__name__)

NOTIFICATIONS = Counter(
    "monitor_notifications_total",
    "Webhook notifications by outcome (sent, failed after retries, dropped when queue full).",
    ["outcome"],
)
NOTIFY_ATTEMPTS = Counter("monitor_notification_attempts_total", "Webhook POSTs tried.")
QUEUE_LIMIT = 1000
# Alertmanager's endsAt for an alert that has not ended.
NO_END = "0001-01-01T00:00:00Z"


def _iso(at: float | None) -> str:
    if at is None:
        return NO_END
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


def webhook_payload(
    alert: Alert, *, external_url: str, receiver: str = "webhook"
) -> dict[str, Any]:
    """One alert as an Alertmanager webhook (version 4) notification."""
    labels = {"alertname": alert.name, "severity": alert.severity} | alert.labels
    status = "resolved" if alert.state == "resolved" else "firing"
    annotations = {"summary": alert.summary}
    group_key = "{}:{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": labels,
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": external_url,
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": annotations,
                "startsAt": _iso(alert.fired_at or alert.active_at),
                "endsAt": _iso(alert.resolved_at),
                "generatorURL": f"{external_url}/alerts",
                "fingerprint": alert.fingerprint,
            }
        ],
    }


class WebhookNotifier:
    """Queues notifications and POSTs them from a background task, retrying with back-off."""

    def __init__(
        self,
        url: str,
        *,
        retries: int,
        timeout: float,
        backoff: float,
        external_url: str,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self.transport = transport
        self.retries = retries
        self.timeout = timeout
        self.backoff = backoff
        self.external_url = external_url
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the client and start the sender (lifespan start)."""
        self._client = httpx.AsyncClient(timeout=self.timeout, transport=self.transport)
        self._task = asyncio.create_task(self._run(), name="webhook")

    async def flush(self) -> None:
        """Wait until every queued notification was delivered or given up on."""
        await self._queue.join()

    async def close(self) -> None:
        """Send what is queued (bounded by the timeout), then stop (lifespan end)."""
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.timeout):
                    await self.flush()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            await self._client.aclose()

    def __call__(self, alert: Alert) -> None:
        """Queue a notification for an alert that started firing or resolved."""
        try:
            self._queue.put_nowait(webhook_payload(alert, external_url=self.external_url))
        except asyncio.QueueFull:
            # A receiver that is down for long must not make the monitor hoard memory.
            NOTIFICATIONS.labels("dropped").inc()
            log.error("webhook queue full, dropped %s %s", alert.name, alert.state)

    async def _run(self) -> None:
        while True:
            payload = await self._queue.get()
            try:
                outcome = "sent" if await self._deliver(payload) else "failed"
                NOTIFICATIONS.labels(outcome).inc()
            finally:
                self._queue.task_done()

    async def _deliver(self, payload: dict[str, Any]) -> bool:
        assert self._client is not None
        what = f"{payload['commonLabels']['alertname']} {payload['status']}"
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            NOTIFY_ATTEMPTS.inc()
            try:
                response = await self._client.post(self.url, json=payload)
            except httpx.HTTPError as exc:
                log.warning("webhook %s: attempt %d failed: %r", what, attempt + 1, exc)
                continue
            if response.is_success:
                log.info("webhook %s: delivered", what)
                return True
            code = response.status_code
            log.warning("webhook %s: attempt %d got HTTP %d", what, attempt + 1, code)
            if code < 500 and code != 429:
                return False  # the receiver refuses this payload; sending it again won't help
        log.error("webhook %s: giving up after %d attempts", what, self.retries + 1)
        return False
