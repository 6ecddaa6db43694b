"""Webhook notifications: Alertmanager's payload, retries with back-off, giving up."""

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from monitoring.alerts import Alert
from monitoring.notify import NO_END, WebhookNotifier, webhook_payload

URL = "http://receiver.test/hook"


def firing_alert() -> Alert:
    """ServiceDown for server, firing since t=1000."""
    alert = Alert("ServiceDown", "critical", {"service": "server"}, "server is down", 0.0, 990.0)
    alert.state, alert.fired_at = "firing", 1000.0
    return alert


def test_payload_has_alertmanagers_webhook_shape() -> None:
    alert = firing_alert()
    body = webhook_payload(alert, external_url="http://mon:8005")
    assert body["version"] == "4"
    assert body["status"] == "firing"
    assert body["commonLabels"] == {
        "alertname": "ServiceDown",
        "severity": "critical",
        "service": "server",
    }
    [item] = body["alerts"]
    assert item["startsAt"] == "1970-01-01T00:16:40Z"
    assert item["endsAt"] == NO_END
    assert item["annotations"] == {"summary": "server is down"}
    assert item["fingerprint"] == alert.fingerprint
    alert.state, alert.resolved_at = "resolved", 1060.0
    resolved = webhook_payload(alert, external_url="http://mon:8005")
    assert resolved["status"] == "resolved"
    assert resolved["alerts"][0]["endsAt"] == "1970-01-01T00:17:40Z"


Replies = list[int | Exception]


@pytest.fixture
def receiver() -> tuple[list[dict[str, object]], Replies, httpx.MockTransport]:
    """What the receiver got, the replies it will give (in order), and its transport."""
    got: list[dict[str, object]] = []
    replies: Replies = []

    def handle(request: httpx.Request) -> httpx.Response:
        got.append(json.loads(request.content))
        reply = replies.pop(0) if replies else 200
        if isinstance(reply, Exception):
            raise reply
        return httpx.Response(reply)

    return got, replies, httpx.MockTransport(handle)


Factory = Callable[[httpx.MockTransport], WebhookNotifier]


@pytest.fixture
async def started() -> AsyncIterator[Factory]:
    """Start notifiers on a transport; close them afterwards."""
    made: list[WebhookNotifier] = []

    def make(transport: httpx.MockTransport) -> WebhookNotifier:
        notifier = WebhookNotifier(
            URL, retries=2, timeout=2, backoff=0.01, external_url="", transport=transport
        )
        made.append(notifier)
        return notifier

    yield make
    for notifier in made:
        await notifier.close()


async def test_server_errors_and_connection_failures_are_retried(
    receiver: tuple[list[dict[str, object]], Replies, httpx.MockTransport], started: Factory
) -> None:
    got, replies, transport = receiver
    replies.extend([503, httpx.ConnectError("refused")])
    notifier = started(transport)
    await notifier.start()
    notifier(firing_alert())
    async with asyncio.timeout(5):
        await notifier.flush()
    assert len(got) == 3  # 503, refused, then delivered
    assert all(body["status"] == "firing" for body in got)


async def test_it_gives_up_after_the_configured_retries(
    receiver: tuple[list[dict[str, object]], Replies, httpx.MockTransport], started: Factory
) -> None:
    got, replies, transport = receiver
    replies.extend([500, 500, 500, 500])
    notifier = started(transport)
    await notifier.start()
    notifier(firing_alert())
    async with asyncio.timeout(5):
        await notifier.flush()
    assert len(got) == 3  # the first try and two retries


async def test_a_refused_payload_is_not_sent_again(
    receiver: tuple[list[dict[str, object]], Replies, httpx.MockTransport], started: Factory
) -> None:
    got, replies, transport = receiver
    replies.append(400)
    notifier = started(transport)
    await notifier.start()
    notifier(firing_alert())
    async with asyncio.timeout(5):
        await notifier.flush()
    assert len(got) == 1


async def test_the_payload_is_the_alert_as_it_was_when_queued(
    receiver: tuple[list[dict[str, object]], Replies, httpx.MockTransport], started: Factory
) -> None:
    got, _, transport = receiver
    notifier = started(transport)
    alert = firing_alert()
    notifier(alert)
    alert.state, alert.resolved_at = "resolved", 2000.0
    notifier(alert)
    await notifier.start()
    async with asyncio.timeout(5):
        await notifier.flush()
    assert [body["status"] for body in got] == ["firing", "resolved"]
