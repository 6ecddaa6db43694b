"""Swagger UI at the gateway's /docs, in headless Chromium: it renders with no internet,
documents /itens with the servers' schemas, and Authorize (password flow) makes calls work."""

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.browser import headless_chromium
from tests.integration.conftest import OUTPUT
from tests.integration.stack import Stack


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium driven by Playwright (no browser download)."""
    with headless_chromium() as chromium:
        yield chromium


def offline_page(browser: Browser, allowed_host: str, outside: list[str]) -> Page:
    """A page that may reach only the gateway; anything else is refused and recorded."""
    page = browser.new_page()

    def only_local(route: Route) -> None:
        if urlsplit(route.request.url).netloc == allowed_host:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    return page


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
def test_swagger_renders_offline_and_authorize_makes_itens_work(
    stack: Stack, browser: Browser
) -> None:
    gateway = stack.url("api_gateway")
    outside: list[str] = []
    page = offline_page(browser, urlsplit(gateway).netloc, outside)
    try:
        page.goto(f"{gateway}/docs")
        list_itens = page.locator(".opblock-get").filter(
            has=page.locator('.opblock-summary-path[data-path="/itens"]')
        )
        expect(list_itens).to_be_visible(timeout=30_000)
        expect(page.locator('.opblock-summary-path[data-path="/login"]')).to_be_visible()
        # The servers' schemas, not a catch-all: the item model is listed with its fields.
        expect(page.locator(".models, #model-ItemIn, section.models")).to_contain_text("ItemIn")

        page.locator(".auth-wrapper .authorize").click()
        page.fill("#oauth_username", "user")
        page.fill("#oauth_password", "user123")
        with page.expect_response(re.compile(r"/token$")) as token_response:
            page.locator(".auth-btn-wrapper .authorize").click()
        assert token_response.value.status == 200
        expect(page.locator(".auth-btn-wrapper")).to_contain_text("Logout")
        page.locator(".btn-done").click()

        list_itens.locator(".opblock-summary").click()
        list_itens.locator(".try-out__btn").click()
        with page.expect_response(re.compile(r"/itens(\?.*)?$")) as itens_response:
            list_itens.locator(".execute").click()
        assert itens_response.value.status == 200
        assert itens_response.value.request.headers["authorization"].startswith("Bearer ")
        expect(
            list_itens.locator(".live-responses-table td.response-col_status:not(.col_header)")
        ).to_contain_text("200")
        page.screenshot(path=str(OUTPUT / "gateway-docs.png"), full_page=True)
    finally:
        page.close()
    assert outside == [], f"the docs tried to reach the internet: {outside}"
