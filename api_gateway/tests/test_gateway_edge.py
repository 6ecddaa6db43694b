"""Per-user limits, client addresses, CORS, body limits, gzip and docs, in-process."""

import asyncio
import gzip
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_gateway.edge import GzipWhenAccepted, gzipped
from fastapi.testclient import TestClient
from gateway_apps import login, running_gateway
from starlette.types import Message, Receive, Scope, Send
from svc_common.serving.lane import RawAnswer

from conftest import TokenFactory

ORIGIN = "https://app.example.com"


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[TestClient]:
    with running_gateway(
        tmp_path,
        rate_limit="4/hour",
        login_rate_limit="100/hour",
        trusted_proxies="127.0.0.1",
        cors_origins=ORIGIN,
        max_body_bytes=2048,
        metrics_token=METRICS_TOKEN,
    ) as client:
        yield client


METRICS_TOKEN = "edge-metrics-token-0123456789"


def from_ip(address: str, **headers: str) -> dict[str, str]:
    """Headers of a request relayed by a trusted proxy for `address`."""
    return {"X-Forwarded-For": address, **headers}


def test_each_user_has_a_quota_with_headers_on_every_answer(gateway: TestClient) -> None:
    token = login(gateway, "user", "user123")["access_token"]
    auth = from_ip("198.51.100.1", Authorization=f"Bearer {token}")
    answers = [gateway.get("/me", headers=auth) for _ in range(4)]
    assert [a.status_code for a in answers] == [200] * 4
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["3", "2", "1", "0"]
    assert answers[0].headers["ratelimit-policy"] == '"default";q=4;w=3600'
    assert answers[0].headers["ratelimit"].startswith('"default";r=3;t=')
    refused = gateway.get("/me", headers=auth)
    assert refused.status_code == 429
    assert refused.json() == {"status": "error", "data": None, "message": "Rate limit exceeded"}
    assert 1 <= int(refused.headers["retry-after"]) <= 3600
    # The same user from another address is still the same user.
    moved = gateway.get("/me", headers={**auth, "X-Forwarded-For": "198.51.100.2"})
    assert moved.status_code == 429


def test_forged_tokens_spend_the_callers_address_quota_not_the_victims(
    gateway: TestClient, make_token: TokenFactory
) -> None:
    forged = make_token("another-key-that-is-long-enough-0123456789", sub="admin")
    for _ in range(4):
        gateway.get("/itens", headers=from_ip("198.51.100.3", Authorization=f"Bearer {forged}"))
    assert gateway.get("/docs", headers=from_ip("198.51.100.3")).status_code == 429
    admin = login(gateway)["access_token"]
    assert (
        gateway.get(
            "/me", headers=from_ip("198.51.100.4", Authorization=f"Bearer {admin}")
        ).status_code
        == 200
    )


def test_an_ipv6_client_moving_through_its_64_spends_one_address_quota(
    gateway: TestClient,
) -> None:
    for n in range(1, 5):
        assert gateway.get("/docs", headers=from_ip(f"2001:db8:7:7::{n}")).status_code == 200
    assert gateway.get("/docs", headers=from_ip("2001:db8:7:7:ffff::5")).status_code == 429
    assert gateway.get("/docs", headers=from_ip("2001:db8:7:8::1")).status_code == 200


def test_health_and_metrics_are_never_throttled(gateway: TestClient) -> None:
    scraper = from_ip("198.51.100.5", Authorization=f"Bearer {METRICS_TOKEN}")
    for _ in range(6):
        assert gateway.get("/saude", headers=from_ip("198.51.100.5")).status_code == 200
        metrics = gateway.get("/metrics", headers=scraper)
        assert metrics.status_code == 200
        assert "x-ratelimit-limit" not in metrics.headers


def test_outside_dev_mode_the_public_port_has_no_metrics_without_the_token(
    tmp_path: Path,
) -> None:
    with running_gateway(tmp_path) as gateway:
        assert gateway.get("/metrics").status_code == 404
    with running_gateway(tmp_path, dev_mode=True) as gateway:
        assert gateway.get("/metrics").status_code == 200


def test_a_client_behind_an_untrusted_peer_cannot_pick_its_address(tmp_path: Path) -> None:
    with running_gateway(tmp_path, rate_limit="2/hour") as gateway:
        for fake in ("1.1.1.1", "2.2.2.2"):
            gateway.get("/docs", headers=from_ip(fake))
        assert gateway.get("/docs", headers=from_ip("3.3.3.3")).status_code == 429


def test_cors_allows_only_the_listed_origins(gateway: TestClient) -> None:
    preflight = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    ok = gateway.options("/itens", headers=preflight)
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == ORIGIN
    assert "access-control-allow-credentials" not in ok.headers
    evil = gateway.options("/itens", headers={**preflight, "Origin": "https://evil.example"})
    assert evil.status_code == 400
    assert evil.json()["status"] == "error"
    assert "access-control-allow-origin" not in evil.headers
    simple = gateway.get("/saude", headers={"Origin": ORIGIN})
    assert simple.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()
    assert (
        "access-control-allow-origin"
        not in gateway.get("/saude", headers={"Origin": "https://evil.example"}).headers
    )


def test_cors_is_off_by_default(tmp_path: Path) -> None:
    with running_gateway(tmp_path) as gateway:
        response = gateway.get("/saude", headers={"Origin": ORIGIN})
        assert "access-control-allow-origin" not in response.headers
        preflight = gateway.options(
            "/login", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
        )
        assert "access-control-allow-origin" not in preflight.headers


def test_large_bodies_are_413_on_every_route(gateway: TestClient) -> None:
    big = {"username": "a" * 4000, "password": "x"}
    assert gateway.post("/login", json=big).status_code == 413
    assert gateway.post("/register", json=big).status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * 512

    streamed = gateway.post(
        "/register", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    assert streamed.json()["status"] == "error"
    token = login(gateway)["access_token"]
    forwarded = gateway.post(
        "/itens", content=b"x" * 4096, headers={"Authorization": f"Bearer {token}"}
    )
    assert forwarded.status_code == 413


def test_large_answers_are_gzipped_for_clients_that_ask(gateway: TestClient) -> None:
    plain = gateway.get("/openapi.json", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    packed = gateway.get("/openapi.json", headers={"Accept-Encoding": "gzip"})
    assert packed.headers["content-encoding"] == "gzip"
    small = gateway.get("/saude", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers
    assert packed.json() == plain.json()
    assert gzip.compress(plain.content)  # sanity: the plain body is the real document


def test_docs_assets_come_from_the_gateway_itself(tmp_path: Path) -> None:
    with running_gateway(tmp_path) as gateway:
        page = gateway.get("/docs").text
        assert "/docs/assets/swagger-ui-bundle.js" in page
        assert "cdn." not in page
        assert "https://" not in page.split("<body>")[0]
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
            response = gateway.get(f"/docs/assets/{asset}")
            assert response.status_code == 200, asset
            assert len(response.content) > 10_000
        assert "cdn." not in gateway.get("/redoc").text
        assert gateway.get("/docs/assets/%2e%2e/%2e%2e/config.py").status_code == 404


def test_without_the_servers_the_schema_still_lists_the_gateway_routes(gateway: TestClient) -> None:
    schema = gateway.get("/openapi.json").json()
    assert {"/login", "/token", "/refresh", "/logout", "/register", "/me"} <= set(schema["paths"])
    assert (
        schema["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]["password"][
            "tokenUrl"
        ]
        == "token"
    )


def both_paths_gzip(etag: bytes, body: bytes) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
    """The headers of one answer gzipped as the lane does it (gzipped()) and as the ASGI path
    does (GzipWhenAccepted), for a client that accepts gzip."""
    start_headers = [(b"content-type", b"application/json"), (b"etag", etag)]
    request_headers = [(b"accept-encoding", b"gzip")]
    lane = asyncio.run(
        gzipped(RawAnswer(200, list(start_headers), body), request_headers, min_size=1024)
    )
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": start_headers})
        await send({"type": "http.response.body", "body": body})

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def capture(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "headers": request_headers}
    asyncio.run(GzipWhenAccepted(app, min_size=1024)(scope, receive, capture))
    return dict(lane.raw_headers), dict(sent[0]["headers"])


@pytest.mark.parametrize(
    ("etag", "size", "sent"),
    [
        (b'"7.2"', 4096, b'"7.2-gzip"'),  # gzipped: another representation, another tag
        (b'W/"page"', 4096, b'W/"page"'),  # a weak tag already covers the gzip form
        (b'"7.2"', 100, b'"7.2"'),  # under GZIP_MIN_BYTES: sent as it is, under its own tag
    ],
)
def test_a_gzipped_answer_s_strong_etag_takes_its_gzip_form_alike_on_both_paths(
    etag: bytes, size: int, sent: bytes
) -> None:
    lane, asgi = both_paths_gzip(etag, b"x" * size)
    assert lane[b"etag"] == asgi[b"etag"] == sent
    assert lane.get(b"content-encoding") == asgi.get(b"content-encoding")
