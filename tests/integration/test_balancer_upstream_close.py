"""The balancer in front of an nginx that closes every keep-alive connection after 50 answers.

nginx's `keepalive_requests 50` marks its 50th answer on a connection `Connection: close` and
drops whatever was sent behind it. The lane (FAST_LANE=true) pipelines GETs on its pooled
connections, so those unanswered GETs have to go out again on a fresh connection for the client
to see a 200; the ASGI path (FAST_LANE=false, aiohttp) sends one request at a time and must not
reuse the closed connection. Either way the client sees no error.
"""

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import pytest

from tests.integration.conftest import require_installed
from tests.integration.stack import SCRUBBED, STARTUP_TIMEOUT, free_port, stop_process

KEEPALIVE_REQUESTS = 50
REQUESTS = 6000
IN_FLIGHT = 64
# 6000 requests at 50 per connection need 120 connections; fewer than 100 would mean the
# balancer rarely reached nginx's limit, and the close was not what the load exercised.
MIN_UPSTREAM_CONNECTIONS = 100

NGINX_CONF = """\
master_process on;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  default_type text/plain;
  log_format upstream_close '$connection $connection_requests $status $request_uri';
  access_log {dir}/access.log upstream_close;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  keepalive_requests {keepalive_requests};
  keepalive_timeout 75s;
  server {{
    listen 127.0.0.1:{port};
    location = /saude {{ return 200 "ok\\n"; }}
    location / {{ return 200 "ok\\n"; }}
  }}
}}
"""


@dataclass
class Upstream:
    """The nginx under the balancer, and the log of what it answered."""

    url: str
    access_log: Path


@dataclass
class Load:
    """What the clients got back: status codes, or the transport error that replaced one."""

    outcomes: Counter[str]
    seconds: float

    @property
    def non_2xx(self) -> dict[str, int]:
        """Every outcome other than a 2xx answer."""
        return {k: n for k, n in self.outcomes.items() if not k.startswith("2")}


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"


def _wait_until(
    ready: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path, what: str
) -> None:
    """Until ready() holds; fails with the log's tail if the process exits or time runs out."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if ready():
                return
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready (exit code {proc.poll()}):\n{_tail(log)}")


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Upstream]:
    """nginx as our own foreground process: 200 "ok" everywhere, 50 requests per connection."""
    require_installed("nginx")
    binary = shutil.which("nginx")
    assert binary is not None
    workdir = tmp_path / "nginx"
    workdir.mkdir()
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(dir=workdir, port=port, keepalive_requests=KEEPALIVE_REQUESTS)
    )
    log = workdir / "nginx.out"
    # -e: the error log from the start, before the config is read (the default path under
    # /var/log may not be writable); -p: relative paths under the test's own directory.
    command = [binary, "-p", str(workdir), "-e", str(workdir / "error.log"), "-c", str(conf)]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [*command, "-g", "daemon off;"], stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until(
            lambda: httpx.get(f"{url}/saude", timeout=1).status_code == 200,
            proc,
            workdir / "error.log",
            "nginx",
        )
        yield Upstream(url, workdir / "access.log")
    finally:
        stop_process(proc)


@pytest.fixture(params=["true", "false"], ids=["FAST_LANE=true", "FAST_LANE=false"])
def balancer(request: pytest.FixtureRequest, nginx: Upstream, tmp_path: Path) -> Iterator[str]:
    """`python -m load_balancer` with nginx as its only backend, once the backend is up."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env |= {
        "PORTA": str(port),
        "HOST": "127.0.0.1",
        "SERVIDORES": nginx.url,
        "LOG_FORMAT": "json",
        "ACCESS_LOG": "false",
        "HEALTH_INTERVAL": "0.5",
        "FAST_LANE": request.param,
    }
    log = tmp_path / "load_balancer.log"
    with log.open("ab") as out:
        # cwd: a directory without a .env the settings would read.
        proc = subprocess.Popen(
            [sys.executable, "-m", "load_balancer"],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def backend_up() -> bool:
        if httpx.get(f"{url}/saude", timeout=1).status_code != 200:
            return False
        backends = httpx.get(f"{url}/status", timeout=1).json()["data"]["backends"]
        return [b["state"] for b in backends] == ["up"]

    try:
        _wait_until(backend_up, proc, log, "load_balancer")
        yield url
        assert proc.poll() is None, f"the balancer exited during the test:\n{_tail(log)}"
    finally:
        stop_process(proc)


async def _load(url: str) -> Load:
    """REQUESTS GETs of /x, IN_FLIGHT at a time, counting what came back."""
    outcomes: Counter[str] = Counter()
    pending = iter(range(REQUESTS))

    async def client(http: aiohttp.ClientSession) -> None:
        for _ in pending:
            try:
                async with http.get(f"{url}/x") as response:
                    await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                outcomes[type(exc).__name__] += 1
            else:
                outcomes[str(response.status)] += 1

    started = time.monotonic()
    # aiohttp rather than httpx: the client shares two cores with the balancer and nginx, and
    # with httpx this load took 25-30 s instead of 1-3 s.
    connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        await asyncio.gather(*(client(http) for _ in range(IN_FLIGHT)))
    return Load(outcomes, time.monotonic() - started)


@dataclass
class Answered:
    """The GETs of /x nginx answered: how many on each connection, and the most any got."""

    per_connection: Counter[str]
    most_on_one_connection: int


def _answered(access_log: Path) -> Answered:
    """nginx's access log, counted; only /x, as the health probes have connections of their own."""
    per_connection: Counter[str] = Counter()
    most = 0
    for line in access_log.read_text().splitlines():
        connection, connection_requests, _, uri = line.split(" ", 3)
        if uri == "/x":
            per_connection[connection] += 1
            most = max(most, int(connection_requests))
    return Answered(per_connection, most)


def test_gets_through_an_upstream_that_closes_every_50_requests_all_succeed(
    balancer: str, nginx: Upstream
) -> None:
    """Every GET gets a 2xx though nginx closes each connection after its 50th answer."""
    load = asyncio.run(_load(balancer))
    backend = httpx.get(f"{balancer}/status", timeout=5).json()["data"]["backends"][0]
    nginx_saw = _answered(nginx.access_log)
    summary = (
        f"{dict(load.outcomes)} in {load.seconds:.1f} s; nginx answered "
        f"{nginx_saw.per_connection.total()} GETs on {len(nginx_saw.per_connection)} "
        f"connections, at most {nginx_saw.most_on_one_connection} on one; balancer: "
        f"{backend['requests']} tries, {backend['failures']} failed ({backend['last_error']})"
    )
    print(summary)

    assert load.non_2xx == {}, summary
    assert load.outcomes.total() == REQUESTS, summary
    # The close really happened, on enough connections to matter.
    assert nginx_saw.most_on_one_connection == KEEPALIVE_REQUESTS, summary
    assert len(nginx_saw.per_connection) >= MIN_UPSTREAM_CONNECTIONS, summary
    assert nginx_saw.per_connection.total() >= REQUESTS, summary
