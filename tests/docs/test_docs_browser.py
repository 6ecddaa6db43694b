"""The built docs site in headless Chromium: pages render, search answers, nothing is fetched
from another host; screenshots of the home and architecture pages go to test-output/docs/."""

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route, ViewportSize, expect

from tests.browser import headless_chromium
from tests.docs.conftest import OUTPUT

VIEWPORT: ViewportSize = {"width": 1280, "height": 1000}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium driven by Playwright."""
    with headless_chromium() as chromium:
        yield chromium


def open_page(browser: Browser, url: str, problems: list[str]) -> Page:
    """A page that may reach only the site's host; script errors and requests to any other
    host land in problems."""
    page = browser.new_page(viewport=VIEWPORT)
    host = urlsplit(url).netloc

    def only_local(route: Route) -> None:
        if urlsplit(route.request.url).netloc == host or route.request.url.startswith("data:"):
            route.continue_()
        else:
            problems.append(f"fetched {route.request.url}")
            route.abort()

    page.route("**/*", only_local)
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.goto(url)
    return page


@pytest.mark.parametrize(
    ("path", "heading", "screenshot"),
    [
        ("index.html", "Arquitetura Distribuída", "home.png"),
        ("architecture.html", "Architecture", "architecture.png"),
    ],
)
def test_a_page_renders_offline_with_its_nav_and_is_screenshotted(
    browser: Browser, site_url: str, path: str, heading: str, screenshot: str
) -> None:
    problems: list[str] = []
    page = open_page(browser, site_url + path, problems)
    try:
        expect(page.locator("article h1")).to_contain_text(heading)
        expect(page.locator("nav.md-nav--primary")).to_contain_text("Decisions")
        # The theme's own stylesheet applied: the header bar is coloured, not a bare list.
        color = page.locator("header.md-header").evaluate(
            "e => getComputedStyle(e).backgroundColor"
        )
        assert color not in {"rgba(0, 0, 0, 0)", "transparent"}, color
        OUTPUT.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(OUTPUT / screenshot))
    finally:
        page.close()
    assert problems == []


def test_search_finds_a_glossary_word_without_leaving_the_site(
    browser: Browser, site_url: str
) -> None:
    problems: list[str] = []
    page = open_page(browser, site_url + "index.html", problems)
    try:
        search = page.locator("input.md-search__input")
        search.click()
        # The index loads in a worker; a query typed before it is ready goes unanswered.
        expect(page.locator(".md-search-result__meta")).not_to_contain_text(
            "Initializing", timeout=10_000
        )
        search.press_sequentially("fence")
        expect(page.locator(".md-search-result__item").first).to_contain_text(
            "fence", ignore_case=True, timeout=10_000
        )
    finally:
        page.close()
    assert problems == []
