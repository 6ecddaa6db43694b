"""The lane and the ASGI path give the same answers, as uvicorn's tests run on h11 and httptools.

Every process of a variant runs with FAST_LANE=true ("lane": plain GETs answered below ASGI in
the gateway, the balancer and the servers) or FAST_LANE=false ("asgi": every request through
the middleware). Each case sends the same request to both variants and compares status,
headers and body, after normalising only what legitimately differs between two answers
(see _view), and pins the status so the two cannot agree on a wrong answer.

A variant is four systems sharing one SECRET_KEY (one token works everywhere):
- main: server, server2, load_balancer and api_gateway on a SQLite file of its own;
- edge: a balancer and a gateway in front of ScriptedBackend (502, 504, hop-by-hop, big);
- nobackend: a balancer whose only backend is a closed port, and a gateway (503);
- limited: a gateway with RATE_LIMIT=3/hour in front of main's balancer (429).
Both main databases start empty and get the same writes in the same order, so ids match.
"""

import contextlib
import gzip
import hashlib
import re
import secrets
import socket
import socketserver
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from json import loads
from pathlib import Path
from typing import Any

import httpx
import pytest
from svc_common.forwarding.connection import MAX_BODY_BYTES as LANE_REPLY_LIMIT

from tests.integration.conftest import OUTPUT, login
from tests.integration.gateways import ThreadedFake, bearer
from tests.integration.stack import Stack, free_port
from tests.integration.test_readme import run_readme_flow

VARIANTS = {"lane": "true", "asgi": "false"}
MAIN = ("server", "server2", "load_balancer", "api_gateway")
PAIR = ("load_balancer", "api_gateway")
# A day-long window: x-ratelimit-remaining is compared exactly (both paths must count each
# request once, with the same key), and the suite sends the same requests to both variants,
# so the counts stay in step unless UTC midnight falls in the middle of a run.
RATE_LIMIT = "100000/day"
LIMITED_RATE = "3/hour"
# Small enough that a refused body fits the socket buffers (the gateway answers 413 from the
# Content-Length, before reading the body).
MAX_BODY = 16 * 1024
# The edge balancer gives a silent backend one second; the gateways wait longer, so the
# balancer's 504 is what reaches the client. Passive ejection would turn the failures the
# cases provoke into 503s for the cases after them.
EDGE_ENV = {"TRY_TIMEOUT": "1", "UPSTREAM_TIMEOUT": "3", "EJECT_AFTER": "1000"}
BIG_REPLY_BYTES = LANE_REPLY_LIMIT + 1024 * 1024
ITEMS = 12  # enough for GET /itens?limit=50 to pass GZIP_MIN_BYTES (1024)
SERVERS = frozenset({"server", "server2"})
GENERATED_REQUEST_ID = re.compile(r"[0-9a-f]{32}")
TIMESTAMPS = re.compile(rb'"(created_at|updated_at)":"[^"]*"')
SHOWN_BODY_BYTES = 4096


# --- the scripted backend -------------------------------------------------------------------


def _reply(status: bytes, headers: list[bytes], body: bytes) -> bytes:
    head = [b"HTTP/1.1 " + status, *headers, b"content-length: %d" % len(body)]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


_JSON = b"content-type: application/json"
_SCRIPT = {
    b"/saude": _reply(b"200 OK", [_JSON], b'{"status":"success","data":{"status":"ok"}}'),
    b"/itens/hop": _reply(
        b"200 OK",
        [
            _JSON,
            b"Connection: keep-alive, X-Private-Hop",
            b"X-Private-Hop: 1",
            b"Keep-Alive: timeout=5",
        ],
        b'{"status":"success","data":{"hop":true},"message":null}',
    ),
}
_NOT_FOUND = _reply(b"404 Not Found", [_JSON], b'{"status":"error","data":null,"message":"no"}')


class ScriptedBackend(ThreadedFake):
    """A backend whose answer depends on the path: /saude 200 (the balancer's health check),
    /itens/close read and dropped, /itens/hang never answered, /itens/hop with hop-by-hop
    headers, /itens/big over the lane client's MAX_BODY_BYTES."""

    def __init__(self) -> None:
        self.handler = _ScriptedHandler
        super().__init__()


class _ScriptedHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        connection: socket.socket = self.request
        connection.settimeout(30)
        with contextlib.suppress(OSError):
            self._serve(connection)

    def _serve(self, connection: socket.socket) -> None:
        pending = b""
        while True:  # keep-alive: one request after another
            while b"\r\n\r\n" not in pending:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                pending += chunk
            head, _, pending = pending.partition(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            pending = pending[int(length.group(1)) if length else 0 :]
            path = head.split(b" ", 2)[1].split(b"?", 1)[0]
            if path == b"/itens/close":
                return  # read, then closed without a word
            if path == b"/itens/hang":
                while connection.recv(65536):  # silent until the client gives up
                    pass
                return
            if path == b"/itens/big":
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
                    b"content-length: %d\r\n\r\n" % BIG_REPLY_BYTES
                )
                connection.sendall(b"x" * BIG_REPLY_BYTES)
                continue
            connection.sendall(_SCRIPT.get(path, _NOT_FOUND))


# --- the two variants ---------------------------------------------------------------------


@dataclass
class System:
    """One variant's processes, all with the same FAST_LANE."""

    variant: str
    main: Stack
    edge: Stack
    nobackend: Stack
    limited: Stack

    def parts(self) -> list[tuple[Stack, tuple[str, ...]]]:
        """Each stack and the services it runs."""
        return [
            (self.main, MAIN),
            (self.edge, PAIR),
            (self.nobackend, PAIR),
            (self.limited, ("api_gateway",)),
        ]

    def url(self, entry: str) -> str:
        """Where a request goes in: a gateway, or main's first server directly."""
        if entry == "server":
            return self.main.url("server")
        stack: Stack = getattr(self, "main" if entry == "gateway" else entry)
        return stack.url("api_gateway")


def _system(variant: str, key: str, backend: str, data: Path) -> System:
    workdir = OUTPUT / "proxy-parity" / variant
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.glob("*/*.log"):
        old.unlink()
    common = {
        "FAST_LANE": VARIANTS[variant],
        "RATE_LIMIT": RATE_LIMIT,
        "MAX_BODY_BYTES": str(MAX_BODY),
    }

    def stack(name: str, **env: str) -> Stack:
        (workdir / name).mkdir(exist_ok=True)
        database = f"sqlite:///{data}/{variant}-{name}.db"
        return Stack(f"parity-{variant}-{name}", workdir / name, database, None, common | env, key)

    main = stack("main")
    return System(
        variant,
        main,
        edge=stack("edge", SERVIDORES=backend, **EDGE_ENV),
        nobackend=stack("nobackend", SERVIDORES=f"http://127.0.0.1:{free_port()}"),
        limited=stack(
            "limited", RATE_LIMIT=LIMITED_RATE, LOAD_BALANCER_URL=main.url("load_balancer")
        ),
    )


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, System]]:
    """Both variants, every process launched at once (cold starts overlap), stopped after."""
    key = secrets.token_hex(32)
    data = tmp_path_factory.mktemp("proxy-parity")
    with ScriptedBackend() as backend:
        systems = {v: _system(v, key, backend.url, data) for v in VARIANTS}
        parts = [part for system in systems.values() for part in system.parts()]
        try:
            for stack, services in parts:
                for service in services:
                    stack.start(service)
            for stack, services in parts:
                for service in services:
                    stack.wait_healthy(service)
            for system in systems.values():
                system.main.wait_balanced()
                system.edge.wait_balanced()
            yield systems
        finally:
            for stack, _ in parts:
                stack.stop_all()


@pytest.fixture(scope="module", params=list(VARIANTS))
def system(request: pytest.FixtureRequest, fleet: dict[str, System]) -> System:
    """One variant (FAST_LANE true, then false), for what is checked on each path alone."""
    return fleet[request.param]


# --- one request, seen on both --------------------------------------------------------------


@dataclass
class Seen:
    """An answer as it came off the wire: raw headers and raw (maybe gzipped) body bytes."""

    status: int
    headers: list[tuple[str, str]]
    raw: bytes
    received_at: float

    def header(self, name: str) -> str | None:
        """The first value of a header (lower-case name)."""
        return next((value for key, value in self.headers if key == name), None)

    def names(self) -> set[str]:
        """Every header name."""
        return {name for name, _ in self.headers}

    @property
    def body(self) -> bytes:
        """The body, gunzipped when it came with Content-Encoding: gzip."""
        return gzip.decompress(self.raw) if self.header("content-encoding") == "gzip" else self.raw

    def json(self) -> Any:
        """The body as JSON."""
        return loads(self.body)


def _seconds_left(seen: Seen) -> int | None:
    value = seen.header("ratelimit")
    if value is None:
        return None
    window = int(re.search(r";w=(\d+)", seen.header("ratelimit-policy") or "").group(1))
    seconds = int(value.rsplit(";t=", 1)[1])
    assert 1 <= seconds <= window, value
    return seconds


def _normalised(
    seen: Seen, name: str, value: str, *, sent_request_id: str | None, seconds_left: int | None
) -> str | None:
    """A header's value as compared between the paths; None: not compared at all."""
    compared: str | None = value
    if name == "date":
        compared = None  # uvicorn's clock at the moment of answering
    elif name == "x-request-id" and sent_request_id is None:
        # Made up per request when the client sends none; echoed exactly when it does.
        assert GENERATED_REQUEST_ID.fullmatch(value), value
        compared = "<generated>"
    elif name == "content-length":
        # Checked against the bytes received; the body itself is compared. A gzipped body's
        # length follows the timestamps inside it, which differ between the two databases.
        assert int(value) == len(seen.raw), (value, len(seen.raw))
        compared = "<length of the body received>"
    elif name == "ratelimit":
        # t= counts down the seconds left in the window while the suite runs.
        compared = value.rsplit(";t=", 1)[0] + ";t=<seconds left>"
    elif name == "x-ratelimit-reset":
        # The window's end in epoch seconds: now + t= (give or take the request's travel).
        assert seconds_left is not None
        assert abs(int(value) - (seen.received_at + seconds_left)) <= 5, value
        compared = "<now + t>"
    elif name == "retry-after" and seen.status == 429:
        # The seconds left in the window, as t= (a 503's Retry-After: 1 is compared as is).
        assert seconds_left is not None
        assert abs(int(value) - seconds_left) <= 1, (value, seconds_left)
        compared = "<seconds left>"
    elif name == "etag" and value.startswith('W/"'):
        # A page's tag hashes its JSON, whose timestamps come from each system's database.
        compared = "<weak tag of the page>"
    elif name == "x-served-by":
        # The balancer's round-robin picks either server; which one is not the point.
        assert value in SERVERS, value
        compared = "<server or server2>"
    return compared


def _view(seen: Seen, *, sent_request_id: str | None) -> dict[str, Any]:
    """What must be equal on both paths, with what legitimately differs normalised."""
    seconds_left = _seconds_left(seen)
    headers = []
    for name, value in seen.headers:
        compared = _normalised(
            seen, name, value, sent_request_id=sent_request_id, seconds_left=seconds_left
        )
        if compared is not None:
            headers.append((name, compared))
    # Items carry created_at/updated_at from their own database: same ids, other clocks.
    body = TIMESTAMPS.sub(rb'"\1":"<time>"', seen.body)
    shown: str | bytes = body
    if len(body) > SHOWN_BODY_BYTES:
        digest = hashlib.sha256(body).hexdigest()[:16]
        shown = f"<{len(body)} bytes, sha256 {digest}…, starting {body[:40]!r}>"
    return {"status": seen.status, "headers": sorted(headers), "body": shown}


@dataclass
class Both:
    """The two variants, a client for each, and one admin token that works on every process."""

    lane: System
    asgi: System
    token: str
    clients: dict[str, httpx.Client] = field(default_factory=dict)

    @property
    def auth(self) -> dict[str, str]:
        """The admin's Authorization header."""
        return bearer(self.token)

    def send(
        self,
        system: System,
        method: str,
        path: str,
        *,
        entry: str,
        headers: dict[str, str],
        content: bytes | None,
        json: Any,
    ) -> Seen:
        """One request to one variant; no Accept-Encoding unless the case sends one."""
        client = self.clients[system.variant]
        request = client.build_request(
            method, system.url(entry) + path, headers=headers, content=content, json=json
        )
        if not any(name.lower() == "accept-encoding" for name in headers):
            del request.headers["accept-encoding"]  # httpx's default asks for gzip
        response = client.send(request, stream=True)
        try:
            raw = b"".join(response.iter_raw())
        finally:
            response.close()
        headers_seen = [
            (name.decode("latin-1").lower(), value.decode("latin-1"))
            for name, value in response.headers.raw
        ]
        return Seen(response.status_code, headers_seen, raw, time.time())

    def same(
        self,
        method: str,
        path: str,
        *,
        status: int,
        entry: str = "gateway",
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        json: Any = None,
    ) -> tuple[Seen, Seen]:
        """Send the request to the lane variant, then the ASGI one; assert both answered
        alike and with `status`; return (lane, asgi)."""
        headers = headers or {}
        sent_id = next((v for k, v in headers.items() if k.lower() == "x-request-id"), None)
        lane, asgi = (
            self.send(s, method, path, entry=entry, headers=headers, content=content, json=json)
            for s in (self.lane, self.asgi)
        )
        expected = _view(asgi, sent_request_id=sent_id)
        assert _view(lane, sent_request_id=sent_id) == expected, (
            f"{method} {path} via {entry}: the lane (left) and ASGI (right) answers differ"
        )
        assert (lane.status, asgi.status) == (status, status), f"{method} {path} via {entry}"
        return lane, asgi


@pytest.fixture(scope="module")
def both(fleet: dict[str, System]) -> Iterator[Both]:
    """Both variants with a client each; logged in on each, so their counters stay in step."""
    tokens = [login(fleet[v].main, "admin", "admin123") for v in VARIANTS]
    with httpx.Client(timeout=30) as lane, httpx.Client(timeout=30) as asgi:
        yield Both(fleet["lane"], fleet["asgi"], tokens[0], {"lane": lane, "asgi": asgi})


@pytest.fixture(scope="module")
def items(both: Both) -> list[int]:
    """ITEMS items created in the same order on both (fresh) databases: the same ids."""
    ids = []
    for n in range(ITEMS):
        item = {
            "nome": f"Parity item {n:02d}",
            "descricao": "Read on the lane and on the ASGI path, and compared.",
            "preco": 10 + n,
        }
        lane, asgi = both.same("POST", "/itens", status=201, headers=both.auth, json=item)
        assert lane.json()["data"]["id"] == asgi.json()["data"]["id"]
        ids.append(lane.json()["data"]["id"])
    return ids


def _fresh_window(window: int, needed: float = 15) -> None:
    """Wait for the next clock-aligned window when fewer than `needed` seconds are left."""
    left = window - time.time() % window
    if left < needed:
        time.sleep(left + 0.5)


# --- the cases --------------------------------------------------------------------------------


def test_a_good_token_reads_an_item_alike_on_both_paths(both: Both, items: list[int]) -> None:
    """GET /itens/{id} with a valid token: 200, the item and its ETag."""
    answer, _ = both.same("GET", f"/itens/{items[0]}", status=200, headers=both.auth)
    assert answer.json()["data"]["id"] == items[0]
    assert answer.header("etag") == f'"{items[0]}.1"'


def test_no_token_is_refused_with_a_challenge_alike_on_both_paths(
    both: Both, items: list[int]
) -> None:
    """GET /itens/{id} without a token: 401 with WWW-Authenticate: Bearer."""
    answer, _ = both.same("GET", f"/itens/{items[0]}", status=401)
    assert answer.header("www-authenticate") == "Bearer"
    assert answer.json()["status"] == "error"


def test_a_bad_token_is_refused_alike_on_both_paths(both: Both, items: list[int]) -> None:
    """GET /itens/{id} with a token whose signature was tampered with: 401."""
    head, signature = both.token.rsplit(".", 1)
    forged = f"{head}.{signature[:10]}{'A' if signature[10] != 'A' else 'B'}{signature[11:]}"
    answer, _ = both.same("GET", f"/itens/{items[0]}", status=401, headers=bearer(forged))
    assert answer.header("www-authenticate") == "Bearer"


def test_a_body_over_max_body_bytes_is_413_alike_on_both_paths(both: Both) -> None:
    """POST /itens with a body over MAX_BODY_BYTES (ASGI on both: the lane takes no body)."""
    body = b"{" + b" " * MAX_BODY + b"}"
    headers = both.auth | {"Content-Type": "application/json"}
    answer, _ = both.same("POST", "/itens", status=413, headers=headers, content=body)
    assert answer.json()["message"] == f"Request body over {MAX_BODY} bytes"


def test_the_request_over_the_rate_limit_is_429_alike_on_both_paths(
    both: Both, items: list[int]
) -> None:
    """RATE_LIMIT=3/hour: three GETs pass, the fourth is 429 with Retry-After."""
    _fresh_window(3600)
    path = f"/itens/{items[0]}"
    for remaining in ("2", "1", "0"):
        answer, _ = both.same("GET", path, status=200, entry="limited", headers=both.auth)
        assert answer.header("x-ratelimit-remaining") == remaining
    refused, _ = both.same("GET", path, status=429, entry="limited", headers=both.auth)
    assert refused.json()["message"] == "Rate limit exceeded"
    assert refused.header("retry-after")


def test_a_backend_that_closes_unanswered_is_502_alike_on_both_paths(both: Both) -> None:
    """The backend reads the GET and closes, on the retry too: 502."""
    answer, _ = both.same("GET", "/itens/close", status=502, entry="edge", headers=both.auth)
    assert answer.json()["message"] == "Upstream server failed"


def test_no_reachable_backend_is_503_alike_on_both_paths(both: Both) -> None:
    """The balancer's only backend is a closed port: 503 with Retry-After: 1."""
    answer, _ = both.same("GET", "/itens", status=503, entry="nobackend", headers=both.auth)
    assert answer.json()["message"] == "No backend server available"
    assert answer.header("retry-after") == "1"


def test_a_silent_backend_is_504_alike_on_both_paths(both: Both) -> None:
    """The backend never answers; the balancer's TRY_TIMEOUT (1 s) ends it: 504."""
    answer, _ = both.same("GET", "/itens/hang", status=504, entry="edge", headers=both.auth)
    assert answer.json()["message"] == "Upstream server timed out"


@pytest.mark.parametrize("accept_encoding", [None, "gzip"], ids=["no-accept-encoding", "gzip"])
def test_a_list_over_gzip_min_bytes_is_encoded_as_asked_alike_on_both_paths(
    both: Both, items: list[int], accept_encoding: str | None
) -> None:
    """GET /itens?limit=50: gzipped (Vary: Accept-Encoding) only when the client accepts it."""
    headers = both.auth | ({"Accept-Encoding": accept_encoding} if accept_encoding else {})
    answer, _ = both.same("GET", "/itens?limit=50", status=200, headers=headers)
    assert len(answer.body) > 1024
    assert [i["id"] for i in answer.json()["data"]][: len(items)] == items
    assert answer.header("content-encoding") == accept_encoding
    if accept_encoding:
        assert answer.header("vary") == "Accept-Encoding"
        assert answer.raw[:2] == b"\x1f\x8b"  # what came over the wire is gzip


def test_if_none_match_on_the_current_etag_is_304_alike_on_both_paths(
    both: Both, items: list[int]
) -> None:
    """GET /itens/{id} with If-None-Match naming its ETag: 304, the ETag, no body."""
    headers = both.auth | {"If-None-Match": f'"{items[1]}.1"'}
    answer, _ = both.same("GET", f"/itens/{items[1]}", status=304, headers=headers)
    assert answer.header("etag") == f'"{items[1]}.1"'
    assert answer.raw == b""


def test_a_gzipped_item_has_a_tag_of_its_own_that_conditions_still_match_alike_on_both_paths(
    both: Both,
) -> None:
    """An item over GZIP_MIN_BYTES read with gzip: its strong ETag in the gzip form, which
    If-None-Match (304, naming that form) and If-Match (the update goes through) accept."""
    big = {"nome": "Parity big item", "descricao": "€" * 500, "preco": 1}  # 1,500 bytes
    created, _ = both.same("POST", "/itens", status=201, headers=both.auth, json=big)
    path = f"/itens/{created.json()['data']['id']}"
    plain, _ = both.same("GET", path, status=200, headers=both.auth)
    tag = plain.header("etag")
    assert tag is not None
    assert not tag.startswith("W/")
    packed, _ = both.same("GET", path, status=200, headers=both.auth | {"Accept-Encoding": "gzip"})
    assert packed.header("content-encoding") == "gzip"
    gzip_tag = packed.header("etag")
    assert gzip_tag == tag[:-1] + '-gzip"'
    unchanged, _ = both.same(
        "GET", path, status=304, headers=both.auth | {"If-None-Match": gzip_tag}
    )
    assert unchanged.header("etag") == gzip_tag
    update = big | {"preco": 2}
    both.same("PUT", path, status=200, headers=both.auth | {"If-Match": gzip_tag}, json=update)
    both.same("PUT", path, status=412, headers=both.auth | {"If-Match": gzip_tag}, json=update)


def test_a_sent_x_request_id_is_echoed_alike_on_both_paths(both: Both, items: list[int]) -> None:
    """An X-Request-ID the client sends comes back unchanged."""
    request_id = f"parity-{secrets.token_hex(8)}"
    headers = both.auth | {"X-Request-ID": request_id}
    lane, asgi = both.same("GET", f"/itens/{items[2]}", status=200, headers=headers)
    assert lane.header("x-request-id") == asgi.header("x-request-id") == request_id


def test_x_served_by_names_the_server_alike_on_both_paths(both: Both, items: list[int]) -> None:
    """Through the gateway X-Served-By is server or server2; from server directly, server."""
    lane, asgi = both.same("GET", f"/itens/{items[3]}", status=200, headers=both.auth)
    assert {lane.header("x-served-by"), asgi.header("x-served-by")} <= SERVERS
    lane, asgi = both.same(
        "GET", f"/itens/{items[3]}", status=200, entry="server", headers=both.auth
    )
    assert lane.header("x-served-by") == asgi.header("x-served-by") == "server"


def test_hop_by_hop_headers_of_the_backend_are_dropped_alike_on_both_paths(both: Both) -> None:
    """Keep-Alive and the headers the backend's Connection names never reach the client."""
    answer, _ = both.same("GET", "/itens/hop", status=200, entry="edge", headers=both.auth)
    assert not answer.names() & {"keep-alive", "x-private-hop"}
    assert "x-private-hop" not in (answer.header("connection") or "").lower()
    assert answer.json()["data"] == {"hop": True}


def test_a_reply_over_the_lanes_size_limit_is_relayed_alike_on_both_paths(both: Both) -> None:
    """A 200 bigger than the lane client's MAX_BODY_BYTES reaches the client whole."""
    answer, _ = both.same("GET", "/itens/big", status=200, entry="edge", headers=both.auth)
    assert len(answer.raw) == BIG_REPLY_BYTES


def test_the_readme_curl_flow_succeeds_on_each_path(system: System) -> None:
    """The README's curl flow, verbatim but for the ports, with FAST_LANE=false as with true."""
    run_readme_flow(system.main.ports)
