"""Extra gateway processes with settings of their own, and a private Redis to kill at will."""

import contextlib
import secrets
import shutil
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

import httpx
import redis

from tests.integration.stack import Stack, free_port


@contextmanager
def gateways(
    workdir: Path, count: int = 1, *, redis_url: str | None = None, **env: str
) -> Iterator[list[Stack]]:
    """`count` gateway replicas sharing a SQLite file, a key and (optionally) Redis."""
    workdir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    database = f"sqlite:///{workdir}/gateway.db"
    replicas = [
        Stack(f"{workdir.name}-{i}", workdir / f"replica{i}", database, redis_url, env, key)
        for i in range(count)
    ]
    try:
        for replica in replicas:
            replica.workdir.mkdir(exist_ok=True)
            replica.start("api_gateway")
        for replica in replicas:
            replica.wait_healthy("api_gateway")
        yield replicas
    finally:
        for replica in replicas:
            replica.stop_all()


class PrivateRedis:
    """A redis-server of our own on a free port, so a test can stop and restart it."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its URL, database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Launch and wait until it answers PING."""
        binary = shutil.which("redis-server")
        assert binary, "redis-server is needed (installed with Redis)"
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(
            [binary, *args, "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                client.ping()
                client.close()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        """Kill it (as a crash would)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@contextmanager
def running_redis_server(workdir: Path) -> Iterator[PrivateRedis]:
    """A PrivateRedis started in workdir; killed afterwards, whatever happened."""
    workdir.mkdir(parents=True, exist_ok=True)
    server = PrivateRedis(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class ThreadedFake:
    """A scripted upstream on a free loopback port, served from threads (`with` runs it)."""

    handler: type[socketserver.BaseRequestHandler]

    def __init__(self) -> None:
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), self.handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakeBalancer(ThreadedFake):
    """A misbehaving upstream: /itens/slow never answers, /itens/garbage is not HTTP."""

    def __init__(self) -> None:
        self.handler = _FakeHandler
        super().__init__()


class _FakeHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        request: socket.socket = self.request
        head = request.recv(65536)
        if b" /itens/garbage" in head.split(b"\r\n", 1)[0]:
            request.sendall(b"THIS IS NOT HTTP\r\n\r\n")
            return
        # Anything else: hold the connection open without a word, until the client gives up.
        request.settimeout(30)
        with contextlib.suppress(OSError):
            while request.recv(65536):
                pass


def unique_client() -> str:
    """A documentation-range IPv6 client address no other test uses: in a /64 of its own, as
    the gateway's per-address limits count an IPv6 client by its /64."""
    return f"2001:db8:{secrets.token_hex(2)}:{secrets.token_hex(2)}::1"


def bearer(token: str) -> dict[str, str]:
    """An Authorization header."""
    return {"Authorization": f"Bearer {token}"}


def token_for(gateway: Stack, username: str = "user", password: str = "user123") -> str:
    """A fresh access token from this gateway."""
    response = httpx.post(
        f"{gateway.url('api_gateway')}/login", json={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["access_token"])
