"""Starts the six services as real uvicorn processes on free loopback ports."""

import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

# name -> (module run with `python -m`, extra environment)
SERVICES: dict[str, tuple[str, dict[str, str]]] = {
    "server": ("server", {"SERVICE_NAME": "server"}),
    "server2": ("server", {"SERVICE_NAME": "server2"}),
    "load_balancer": ("load_balancer", {}),
    "api_gateway": ("api_gateway", {}),
    "cache": ("cache", {}),
    "monitoring": ("monitoring", {}),
}
# Settings a developer's shell might carry that must not leak into the processes under test.
SCRUBBED = (
    "DATABASE_URL",
    "REDIS_URL",
    "SECRET_KEY",
    "DEV_MODE",
    "SERVIDORES",
    "LOAD_BALANCER_URL",
    "MONITOR_TARGETS",
    "PORTA",
    "SERVICE_NAME",
    "HOST",
    "RATE_LIMIT",
    "LOGIN_RATE_LIMIT",
    "TRUSTED_PROXIES",
    "CORS_ORIGINS",
    "ITEMS_OPENAPI_URL",
    "DEMO_USERS",
    "FIRST_ADMIN_USERNAME",
    "FIRST_ADMIN_PASSWORD",
    "METRICS_TOKEN",
)
# Generous: on a busy 2-core machine six cold Python starts can take well over a minute.
STARTUP_TIMEOUT = 120.0


_handed_out: set[int] = set()


def stop_process(proc: "subprocess.Popen[bytes]") -> None:
    """SIGTERM, and SIGKILL when it has not exited 15 s later."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port() -> int:
    """A loopback port nobody listens on, below Linux's ephemeral range (32768+).

    Ports the kernel hands out for outgoing connections could be taken again between this
    check and the service's bind; ports below that range only collide with other listeners.
    """
    for _ in range(200):
        port = random.randrange(20_000, 32_000)
        # Nothing listens on a port picked a moment ago until its process binds it, so a
        # second pick could land on it too (a cache and a server2 once did).
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port found in 20000-32000")


def start_refused(
    module: str, env: dict[str, str], workdir: Path
) -> "subprocess.CompletedProcess[str]":
    """Run a service that should refuse to start, outside dev mode: its exit and output.

    workdir holds no .env file, so only `env` (over the scrubbed environment) configures it.
    """
    base = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    base |= {"DEV_MODE": "false", "PORTA": str(free_port()), "DATABASE_URL": "sqlite:///:memory:"}
    return subprocess.run(
        [sys.executable, "-m", module],
        env=base | env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@dataclass
class Stack:
    """One running system: six processes sharing a database and (maybe) Redis."""

    name: str
    workdir: Path
    database_url: str
    redis_url: str | None
    extra_env: dict[str, str] = field(default_factory=dict)
    secret_key: str = field(default_factory=lambda: secrets.token_hex(32))
    metrics_token: str = field(default_factory=lambda: secrets.token_hex(16))
    ports: dict[str, int] = field(default_factory=lambda: {s: free_port() for s in SERVICES})
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def url(self, service: str) -> str:
        """Base URL of a service."""
        return f"http://127.0.0.1:{self.ports[service]}"

    def env(self, service: str) -> dict[str, str]:
        """The environment a user would set for this service."""
        env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
        env |= {
            "PORTA": str(self.ports[service]),
            "HOST": "127.0.0.1",
            "SECRET_KEY": self.secret_key,
            "METRICS_TOKEN": self.metrics_token,
            "DEV_MODE": "false",
            "DATABASE_URL": self.database_url,
            "SERVIDORES": f"{self.url('server')},{self.url('server2')}",
            "LOAD_BALANCER_URL": self.url("load_balancer"),
            "MONITOR_TARGETS": ",".join(f"{s}={self.url(s)}" for s in SERVICES),
            "ITEMS_OPENAPI_URL": f"{self.url('server')}/openapi.json",
            # Other tests fire requests (and bad logins) fast from one address; the limits are
            # tested on gateways of their own (test_gateway_limits.py, test_gateway_replicas.py).
            "RATE_LIMIT": "100000/second",
            "LOGIN_RATE_LIMIT": "100000/minute",
            "POLL_INTERVAL": "0.5",
            "HEALTH_INTERVAL": "0.5",
            "LOG_FORMAT": "json",
            # The seed's accounts, which the tests log in with; test_gateway_accounts.py pins
            # a gateway without them.
            "DEMO_USERS": "true",
        }
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        env |= SERVICES[service][1] | self.extra_env
        return env

    def scrape(self, service: str) -> httpx.Response:
        """GET /metrics of a service, as the monitor does (with METRICS_TOKEN)."""
        headers = {"Authorization": f"Bearer {self.metrics_token}"}
        return httpx.get(f"{self.url(service)}/metrics", headers=headers)

    def log_path(self, service: str) -> Path:
        """Where the service's output goes (kept for debugging a failure)."""
        return self.workdir / f"{service}.log"

    def start(self, service: str) -> None:
        """Launch one service; does not wait for it."""
        module = SERVICES[service][0]
        with self.log_path(service).open("ab") as log:
            self.procs[service] = subprocess.Popen(
                [sys.executable, "-m", module],
                env=self.env(service),
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_healthy(self, service: str, timeout: float = STARTUP_TIMEOUT) -> None:
        """Block until /saude answers 200; fail with the log tail otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs[service]
            if proc.poll() is not None:
                break
            try:
                if httpx.get(f"{self.url(service)}/saude", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        tail = self.log_path(service).read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{service} did not become healthy ({self.name}):\n{tail}")

    def start_all(self, services: Sequence[str] = tuple(SERVICES)) -> None:
        """Start the services (all six by default), wait until each is healthy and balanced."""
        for service in services:
            self.start(service)
        for service in services:
            self.wait_healthy(service)
        if "load_balancer" in services:
            self.wait_balanced()

    def wait_balanced(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Block until the balancer's /status shows every backend up."""
        deadline = time.monotonic() + timeout
        states: list[str] = []
        while time.monotonic() < deadline:
            try:
                status = httpx.get(f"{self.url('load_balancer')}/status", timeout=1)
                states = [b["state"] for b in status.json()["data"]["backends"]]
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                states = []
            if states and all(state == "up" for state in states):
                return
            time.sleep(0.05)
        raise RuntimeError(f"balancer backends not all up ({self.name}): {states}")

    def signal(self, service: str, sig: signal.Signals) -> None:
        """Send a signal to one service and reap it."""
        proc = self.procs[service]
        proc.send_signal(sig)
        proc.wait(timeout=30)

    def restart(self, service: str) -> None:
        """Start a stopped service again and wait for it (and for the balancer to use it)."""
        self.start(service)
        self.wait_healthy(service)
        balanced = ("server", "server2", "load_balancer")
        if service in balanced and all(self.running(s) for s in balanced):
            self.wait_balanced()

    def running(self, service: str) -> bool:
        """Whether the service was started and has not exited."""
        proc = self.procs.get(service)
        return proc is not None and proc.poll() is None

    def stop_all(self) -> None:
        """SIGTERM everything still running, SIGKILL what does not exit."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
