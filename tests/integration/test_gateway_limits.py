"""A gateway process with small limits, trusted proxies, CORS, and a misbehaving balancer."""

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.conftest import OUTPUT
from tests.integration.gateways import FakeBalancer, bearer, gateways, unique_client

ORIGIN = "https://app.example.com"


@pytest.fixture(scope="module")
def edge() -> Iterator[str]:
    """One gateway: 5 requests/hour per user, 3 login attempts/hour, behind a trusted proxy."""
    with (
        FakeBalancer() as balancer,
        gateways(
            OUTPUT / "gateway-edge",
            RATE_LIMIT="5/hour",
            LOGIN_RATE_LIMIT="3/hour",
            TRUSTED_PROXIES="127.0.0.1/32",
            CORS_ORIGINS=ORIGIN,
            MAX_BODY_BYTES="4096",
            LOAD_BALANCER_URL=balancer.url,
            UPSTREAM_TIMEOUT="1",
        ) as (gateway,),
    ):
        yield gateway.url("api_gateway")


def via(address: str, **headers: str) -> dict[str, str]:
    """Headers of a request our trusted proxy relays for `address`."""
    return {"X-Forwarded-For": address, **headers}


def fresh_window(edge: str) -> None:
    """Wait out the last seconds of the hour, so the burst a test sends fits in one window."""
    seconds_left = int(
        httpx.get(f"{edge}/docs", headers=via(unique_client()))
        .headers["ratelimit"]
        .rsplit("t=", 1)[1]
    )
    if seconds_left < 20:
        time.sleep(seconds_left + 1)


def register(edge: str, address: str) -> tuple[str, str]:
    name = f"lim{uuid.uuid4().hex[:8]}"
    response = httpx.post(
        f"{edge}/register", json={"username": name, "password": "pass-word-1"}, headers=via(address)
    )
    assert response.status_code == 201, response.text
    return name, "pass-word-1"


def test_each_user_gets_the_limit_with_ietf_and_x_headers(edge: str) -> None:
    fresh_window(edge)
    name, password = register(edge, unique_client())
    login = httpx.post(
        f"{edge}/login",
        json={"username": name, "password": password},
        headers=via(unique_client()),
    )
    auth = bearer(login.json()["data"]["access_token"])
    answers = [httpx.get(f"{edge}/me", headers=via(unique_client(), **auth)) for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["4", "3", "2", "1", "0"]
    first = answers[0].headers
    assert first["ratelimit-policy"] == '"default";q=5;w=3600'
    assert first["ratelimit"].startswith('"default";r=4;t=')
    assert first["x-ratelimit-limit"] == "5"
    assert int(first["x-ratelimit-reset"]) > time.time()
    refused = httpx.get(f"{edge}/me", headers=via(unique_client(), **auth))
    assert refused.status_code == 429
    assert refused.json() == {"status": "error", "data": None, "message": "Rate limit exceeded"}
    assert 1 <= int(refused.headers["retry-after"]) <= 3600
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert refused.headers["x-request-id"]
    # Forwarded routes count against the same quota.
    assert httpx.get(f"{edge}/itens", headers=via(unique_client(), **auth)).status_code == 429
    # Somebody else is not affected.
    other = token_for_edge(edge)
    assert httpx.get(f"{edge}/me", headers=via(unique_client(), **bearer(other))).status_code == 200


def token_for_edge(edge: str) -> str:
    address = unique_client()
    name, password = register(edge, address)
    response = httpx.post(
        f"{edge}/login", json={"username": name, "password": password}, headers=via(address)
    )
    return str(response.json()["data"]["access_token"])


def test_anonymous_clients_are_limited_per_address(edge: str) -> None:
    fresh_window(edge)
    address = unique_client()
    codes = [httpx.get(f"{edge}/docs", headers=via(address)).status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    assert httpx.get(f"{edge}/docs", headers=via(unique_client())).status_code == 200


def test_login_brute_force_is_locked_out_per_address_and_username(edge: str) -> None:
    fresh_window(edge)
    address = unique_client()
    name, password = register(edge, address)
    wrong = {"username": name, "password": "not-the-password"}
    codes = [
        httpx.post(f"{edge}/login", json=wrong, headers=via(address)).status_code for _ in range(3)
    ]
    assert codes == [401, 401, 401]
    locked = httpx.post(
        f"{edge}/login", json={"username": name, "password": password}, headers=via(address)
    )
    assert locked.status_code == 429
    assert locked.json()["status"] == "error"
    assert int(locked.headers["retry-after"]) >= 1
    assert locked.headers["ratelimit-policy"].startswith('"login";q=3;w=3600')
    form = httpx.post(
        f"{edge}/token", data={"username": name.upper(), "password": password}, headers=via(address)
    )
    assert form.status_code == 429
    # The owner, from elsewhere, still gets in.
    elsewhere = httpx.post(
        f"{edge}/login",
        json={"username": name, "password": password},
        headers=via(unique_client()),
    )
    assert elsewhere.status_code == 200


def test_cors_preflights_and_answers_follow_the_allow_list(edge: str) -> None:
    preflight = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "DELETE",
        "Access-Control-Request-Headers": "Authorization",
    }
    allowed = httpx.options(f"{edge}/itens/1", headers=preflight)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "DELETE" in allowed.headers["access-control-allow-methods"]
    denied = httpx.options(
        f"{edge}/itens/1", headers=preflight | {"Origin": "https://evil.example"}
    )
    assert denied.status_code == 400
    assert denied.json()["status"] == "error"
    assert "access-control-allow-origin" not in denied.headers
    answer = httpx.get(f"{edge}/itens", headers={"Origin": ORIGIN, **via(unique_client())})
    assert answer.status_code == 401
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    assert "ratelimit" in answer.headers["access-control-expose-headers"].lower()


def test_a_silent_balancer_is_a_504_and_a_broken_one_a_502(edge: str) -> None:
    auth = bearer(token_for_edge(edge))
    started = time.monotonic()
    slow = httpx.get(f"{edge}/itens/slow", headers=via(unique_client(), **auth), timeout=10)
    assert slow.status_code == 504
    assert slow.json() == {"status": "error", "data": None, "message": "Upstream timed out"}
    assert time.monotonic() - started < 5  # UPSTREAM_TIMEOUT=1, with margin
    broken = httpx.get(f"{edge}/itens/garbage", headers=via(unique_client(), **auth))
    assert broken.status_code == 502
    assert broken.json()["status"] == "error"


def test_bodies_over_max_body_bytes_are_413(edge: str) -> None:
    auth = bearer(token_for_edge(edge))
    for path in ("/itens", "/register", "/login"):
        response = httpx.post(
            f"{edge}{path}",
            content=b"{" + b" " * 5000 + b"}",
            headers=via(unique_client(), **auth),
        )
        assert response.status_code == 413, path
        assert response.json()["status"] == "error"
