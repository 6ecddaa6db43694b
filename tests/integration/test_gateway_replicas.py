"""Two gateway replicas sharing a private Redis: counters, revocations, and Redis dying."""

import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis

from tests.integration.conftest import OUTPUT, require_installed
from tests.integration.gateways import (
    PrivateRedis,
    bearer,
    gateways,
    running_redis_server,
    unique_client,
)


@pytest.fixture(scope="module")
def private_redis() -> Iterator[PrivateRedis]:
    """A redis-server this module may kill and restart."""
    require_installed("redis-server")
    with running_redis_server(OUTPUT / "gateway-replicas") as server:
        yield server


# The "proxy" in front of the replicas: requests sent from 127.0.0.2 may name their client.
PROXY = "127.0.0.2"


@pytest.fixture(scope="module")
def replicas(private_redis: PrivateRedis) -> Iterator[tuple[str, str]]:
    """Two gateways on one Redis, trusting only 127.0.0.2; 6 requests/hour, 4 logins/hour."""
    with gateways(
        OUTPUT / "gateway-replicas",
        count=2,
        redis_url=private_redis.url,
        RATE_LIMIT="6/hour",
        LOGIN_RATE_LIMIT="4/hour",
        TRUSTED_PROXIES=f"{PROXY}/32",
    ) as (a, b):
        yield a.url("api_gateway"), b.url("api_gateway")


def anywhere() -> dict[str, str]:
    """X-Forwarded-For naming a client address no other request uses."""
    return {"X-Forwarded-For": unique_client()}


def call(
    method: str,
    url: str,
    token: str | None = None,
    *,
    json: object = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """A request through the trusted proxy, for a client address of its own: anonymous calls
    never share a quota, so each test meets only the limits it exercises."""
    sent = anywhere() | (bearer(token) if token else {}) | (headers or {})
    with httpx.Client(transport=httpx.HTTPTransport(local_address=PROXY), timeout=10) as client:
        return client.request(method, url, headers=sent, json=json)


def eventually(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    """Whether check() turns true within seconds (pub/sub is fast, not instant)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


def fresh_window(url: str) -> None:
    """Wait out the end of an hour window so a test's burst fits in one."""
    left = int(call("GET", f"{url}/docs").headers["ratelimit"].rsplit("t=", 1)[1])
    if left < 20:
        time.sleep(left + 1)


def new_user(url: str) -> dict:
    """A fresh account's /login data (each test spends its own quota)."""
    name = f"rep{uuid.uuid4().hex[:8]}"
    body = {"username": name, "password": "pass-word-1"}
    call("POST", f"{url}/register", json=body)
    response = call("POST", f"{url}/login", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json()["data"]) | {"username": name}


def test_counters_are_shared_between_replicas(replicas: tuple[str, str]) -> None:
    a, b = replicas
    fresh_window(a)
    token = new_user(a)["access_token"]
    codes = [call("GET", f"{url}/me", token).status_code for url in (a, b) * 3]
    assert codes == [200] * 6
    assert call("GET", f"{a}/me", token).status_code == 429
    assert call("GET", f"{b}/me", token).status_code == 429


def test_login_attempts_are_counted_across_replicas(replicas: tuple[str, str]) -> None:
    a, b = replicas
    user = new_user(a)
    attacker = {"X-Forwarded-For": "198.51.100.66"}

    def attempt(url: str, password: str) -> int:
        body = {"username": user["username"], "password": password}
        return call("POST", f"{url}/login", json=body, headers=attacker).status_code

    assert [attempt(url, "wrong-password") for url in (a, b, a, b)] == [401] * 4
    assert attempt(b, "pass-word-1") == 429
    assert attempt(a, "pass-word-1") == 429


def test_forwarded_for_from_an_untrusted_peer_buys_no_quota(replicas: tuple[str, str]) -> None:
    a, _ = replicas
    # From 127.0.0.1, which is not a trusted proxy, every request is the same client.
    codes = [httpx.get(f"{a}/docs", headers=anywhere()).status_code for _ in range(7)]
    assert codes == [200] * 6 + [429]


def test_a_logout_on_one_replica_is_honoured_by_the_other(replicas: tuple[str, str]) -> None:
    a, b = replicas
    data = new_user(a)
    token = data["access_token"]
    assert call("GET", f"{b}/me", token).status_code == 200
    assert call("POST", f"{a}/logout", token).status_code == 200
    assert eventually(lambda: call("GET", f"{b}/me", token).status_code == 401)
    refresh = call("POST", f"{b}/refresh", json={"refresh_token": data["refresh_token"]})
    assert refresh.status_code == 401


def test_a_refresh_token_replayed_on_another_replica_ends_the_session(
    replicas: tuple[str, str],
) -> None:
    a, b = replicas
    first = new_user(a)
    second = call("POST", f"{a}/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    replay = call("POST", f"{b}/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401
    token = second.json()["data"]["access_token"]
    assert eventually(lambda: call("GET", f"{a}/me", token).status_code == 401)


def test_a_dead_redis_means_in_process_limits_not_errors(
    replicas: tuple[str, str], private_redis: PrivateRedis
) -> None:
    a, b = replicas
    token = new_user(a)["access_token"]
    private_redis.stop()
    try:
        codes = [call("GET", f"{a}/me", token).status_code for _ in range(8)]
        # Counting goes on in process: still limited, never a 500.
        assert set(codes) <= {200, 429}
        assert 429 in codes
        health = httpx.get(f"{a}/saude").json()["data"]
        assert health["status"] == "degraded"
        assert health["checks"]["database"]["status"] == "up"
        # Logins and logouts work; the logout holds on this replica at least.
        other = new_user(b)["access_token"]
        assert call("POST", f"{b}/logout", other).status_code == 200
        assert call("GET", f"{b}/me", other).status_code == 401
    finally:
        private_redis.start()
    # Back on Redis: the logout made while it was down reaches the other replica too.
    assert eventually(lambda: call("GET", f"{a}/me", other).status_code == 401, seconds=15)
    assert eventually(lambda: httpx.get(f"{a}/saude").json()["data"]["status"] == "ok", 10)
    fresh = new_user(a)["access_token"]
    assert call("GET", f"{b}/me", fresh).status_code == 200
    keys = redis.Redis.from_url(private_redis.url).keys("ratelimit:*")
    assert keys, "counters are in Redis again"


def test_an_unreachable_balancer_is_a_503_with_retry_after(replicas: tuple[str, str]) -> None:
    a, _ = replicas
    response = call("GET", f"{a}/itens", new_user(a)["access_token"])
    assert response.status_code == 503
    assert response.json() == {
        "status": "error",
        "data": None,
        "message": "Load balancer unreachable",
    }
    assert response.headers["retry-after"] == "1"
