"""The dashboard in headless Chromium: six tiles, live charts, and a tile that turns down."""

import signal
import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.browser import headless_chromium
from tests.integration.conftest import OUTPUT
from tests.integration.stack import SERVICES, Stack

pytestmark = pytest.mark.parametrize("stack", ["embedded"], indirect=True)

SCREENSHOT = OUTPUT / "monitoring-dashboard.png"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium driven by Playwright."""
    with headless_chromium() as browser:
        yield browser


def make_traffic(stack: Stack, token: str) -> None:
    """Item reads through the gateway and cache hits and misses, so every chart has a line."""
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=stack.url("api_gateway"), headers=auth, timeout=10) as gateway:
        for _ in range(20):
            assert gateway.get("/itens").status_code == 200
    with httpx.Client(base_url=stack.url("cache"), headers=auth, timeout=10) as cache:
        assert cache.post("/cache", json={"key": "dash", "value": 1}).status_code == 201
        for i in range(20):
            cache.get("/cache/dash" if i % 4 else f"/cache/absent-{i}")


def open_dashboard(browser: Browser, base: str, problems: list[str]) -> Page:
    """The dashboard page; script errors and requests leaving the monitor land in `problems`."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None,
    )
    page.on(
        "request",
        lambda req: (
            problems.append(f"foreign request: {req.url}")
            if req.url.startswith("http") and not req.url.startswith(base)
            else None
        ),
    )
    page.goto(f"{base}/dashboard")
    return page


def test_dashboard_shows_six_services_and_a_killed_one_turns_down_within_10s(
    stack: Stack, browser: Browser, admin_token: str
) -> None:
    make_traffic(stack, admin_token)
    problems: list[str] = []
    page = open_dashboard(browser, stack.url("monitoring"), problems)
    page.wait_for_function("document.querySelectorAll('article.tile.up').length === 6")
    tiles = page.eval_on_selector_all("article.tile", "els => els.map(e => e.dataset.service)")
    assert sorted(tiles) == sorted(SERVICES)
    for chart in ("rate", "latency", "errors", "cache"):
        page.wait_for_selector(f"#chart-{chart} path.line", state="attached", timeout=15_000)
    page.wait_for_selector("#split-bar .part:not(.idle)")
    assert "server2" in page.inner_text("#split")

    stack.signal("server2", signal.SIGKILL)
    killed = time.monotonic()
    try:
        page.wait_for_selector('article.tile.down[data-service="server2"]', timeout=10_000)
        assert time.monotonic() - killed < 10
        assert page.inner_text('[data-service="server2"] .state').lower() == "down"
        page.wait_for_selector('tr.alert[data-alert="ServiceDown"][data-service="server2"]')
        page.screenshot(path=str(SCREENSHOT), full_page=True)
    finally:
        stack.restart("server2")
    page.wait_for_selector('article.tile.up[data-service="server2"]', timeout=15_000)
    assert problems == []
