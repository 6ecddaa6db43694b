"""Backends for the balancer's unit tests: real loopback sockets with scripted behaviour."""

import asyncio
import select
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from load_balancer.config import BalancerSettings
from load_balancer.proxy import Balancer, BalancerMiddleware
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send
from svc_common.discovery import Address


@dataclass
class Hit:
    """One request as a backend received it (header names in lower case)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class ScriptedBackend:
    """An aiohttp server; `mode` says how it answers: ok, error (500), hang or redirect."""

    name: str
    mode: str = "ok"
    hits: list[Hit] = field(default_factory=list)
    response_size: int = 0
    _runner: web.AppRunner | None = None
    url: str = ""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {name.lower(): value for name, value in request.headers.items()}
        self.hits.append(Hit(request.method, request.path_qs, headers, body))
        if self.mode == "hang":
            await asyncio.sleep(3600)
        if self.mode == "error":
            return web.json_response({"status": "error"}, status=500)
        if self.mode == "redirect":
            return web.Response(status=307, headers={"Location": "/elsewhere"})
        if self.response_size:
            response = web.StreamResponse(headers={"X-Served-By": self.name})
            await response.prepare(request)
            for _ in range(self.response_size // 8192):
                await response.write(b"x" * 8192)
            await response.write_eof()
            return response
        status = 201 if request.method == "POST" else 200
        return web.json_response(
            {"served_by": self.name, "length": len(body)},
            status=status,
            headers={"X-Served-By": self.name, "Connection": "keep-alive, X-Private-Hop"},
        )

    async def _saude(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "success"}, status=503 if self.mode == "sick" else 200)

    async def start(self) -> "ScriptedBackend":
        """Listen on a free loopback port."""
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_get("/saude", self._saude)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=0.1
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()


class DyingBackend:
    """Accepts connections and then dies the way a SIGKILLed process does.

    read_first=True reads the whole request before closing, so the kernel sends FIN: the
    request reached the backend. read_first=False closes with the request still unread in
    the socket buffer, so the kernel answers RST: the request never reached the backend.
    """

    def __init__(self, *, read_first: bool) -> None:
        self.read_first = read_first
        self.requests: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            with conn:
                select.select([conn], [], [], 5)
                if self.read_first:
                    self.requests.append(_read_request(conn))

    def close(self) -> None:
        """Stop accepting."""
        self._stop.set()
        self._thread.join()
        self._listener.close()


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
            while len(body) < length:
                body += conn.recv(65536)
    return data


def refused_url() -> str:
    """A loopback URL where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("balancer's own route", status_code=404)(scope, receive, send)


def balancer_for(urls: list[str], **settings: Any) -> tuple[Balancer, BalancerMiddleware]:
    """A balancer over exactly these backends, with no health checks running."""
    balancer = Balancer(BalancerSettings(servidores=urls, _env_file=None, **settings))  # type: ignore[call-arg]
    for url in urls:
        balancer.pool.replace(url, [Address(url, name=url)])
    return balancer, BalancerMiddleware(_not_found, balancer=balancer)
