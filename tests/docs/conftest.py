"""The docs site, built once per session with `mkdocs build --strict`, and served on loopback."""

import contextlib
import functools
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import REPO, venv_tool

MKDOCS_YML = REPO / "mkdocs.yml"
DOCS = REPO / "docs"
OUTPUT = REPO / "test-output" / "docs"
# Material prints a banner about MkDocs 2.0 on every build unless told not to.
QUIET = {"NO_MKDOCS_2_WARNING": "1"}


def build(config: Path, site_dir: Path) -> subprocess.CompletedProcess[str]:
    """`mkdocs build --strict` of config into site_dir."""
    command = [venv_tool("mkdocs"), "build", "--strict", "--config-file", str(config)]
    return subprocess.run(
        [*command, "--site-dir", str(site_dir)],
        cwd=REPO,
        env=os.environ | QUIET,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def mkdocs_config() -> dict[str, Any]:
    """mkdocs.yml as data."""
    config: dict[str, Any] = yaml.safe_load(MKDOCS_YML.read_text())
    return config


class _Handler(SimpleHTTPRequestHandler):
    """Static files, with the header that lets linkchecker go as fast as it likes."""

    def end_headers(self) -> None:
        # Without it linkchecker waits 0.1-0.6 s between two requests to one host.
        self.send_header("LinkChecker", "allow")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve directory on a free loopback port; yields its base URL."""
    handler = functools.partial(_Handler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built site (a strict build: any warning fails it)."""
    out = tmp_path_factory.mktemp("site")
    result = build(MKDOCS_YML, out)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr}"
    return out


@pytest.fixture(scope="session")
def site_url(site: Path) -> Iterator[str]:
    """The built site over HTTP, as a static host would serve it."""
    with serve(site) as url:
        yield url
