"""Debian's Chromium under Playwright, as every browser test launches it: never a downloaded
browser, headless, quiet and offline."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

from tests.deploy.tools import missing

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def headless_chromium() -> Iterator[Browser]:
    """The browser; a failure under CI=true when Chromium is missing, a skip otherwise."""
    if not CHROMIUM.exists():
        missing(f"{CHROMIUM} (Debian package chromium, make system-deps)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()
