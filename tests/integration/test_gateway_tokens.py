"""Tokens against the running system: forged, expired, alg=none, malformed and tampered ones
everywhere, calls that skip the gateway, logout, refresh rotation and weak keys."""

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
import pytest

from conftest import mint_token
from tests.integration.stack import Stack, start_refused

ITEM = {"nome": "Caneta", "descricao": "azul", "preco": 2.5}

GENERIC_401 = {"status": "error", "data": None, "message": "Invalid or expired token"}
# Everything that checks tokens: the door, the balancer in front of the servers, and behind it.
GUARDED = {
    "api_gateway": "/itens",
    "load_balancer": "/itens",
    "server": "/itens",
    "server2": "/itens",
    "cache": "/cache/stats",
}


def _b64(part: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


def _unsigned(alg: str) -> Callable[[Stack], str]:
    def make(_: Stack) -> str:
        claims = {"sub": "admin", "role": "admin", "iat": 1, "exp": 9_999_999_999, "jti": "x"}
        return f"{_b64({'alg': alg, 'typ': 'JWT'})}.{_b64(claims)}."

    return make


BAD_TOKENS: dict[str, Callable[[Stack], str]] = {
    "forged": lambda s: mint_token("attacker-key-that-is-long-enough-0123456789"),
    "expired": lambda s: mint_token(s.secret_key, lifetime=-5),
    "alg-none": _unsigned("none"),
    "alg-None": _unsigned("None"),
    "hs384": lambda s: mint_token(s.secret_key, algorithm="HS384"),
    "no-jti": lambda s: mint_token(s.secret_key, jti=None),
    "no-exp": lambda s: jwt.encode(
        {"sub": "admin", "role": "admin", "iat": 1, "jti": "j"}, s.secret_key
    ),
    "role-root": lambda s: mint_token(s.secret_key, role="root"),
    "refresh-as-access": lambda s: mint_token(s.secret_key, type="refresh"),
    "from-the-future": lambda s: mint_token(s.secret_key, iat=int(time.time()) + 3600),
    "truncated": lambda s: mint_token(s.secret_key)[:-5],
    "garbage": lambda s: "not.a.jwt",
    "empty-parts": lambda s: "..",
    "latin1": lambda s: "ÿÿÿ.ÿÿÿ.ÿÿÿ",
    "huge": lambda s: "A" * 20_000,
}


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
def test_bad_tokens_get_one_generic_401_everywhere(stack: Stack, kind: str) -> None:
    # Raw bytes: some of these are not even ASCII.
    header = f"Bearer {BAD_TOKENS[kind](stack)}".encode("latin-1")
    for service, path in GUARDED.items():
        response = httpx.get(f"{stack.url(service)}{path}", headers={"Authorization": header})
        assert response.status_code == 401, (service, response.text)
        assert response.json() == GENERIC_401, service
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "header", ["", "Bearer", "Basic YWRtaW46YWRtaW4xMjM=", "Token abc", "bearer"]
)
def test_missing_or_foreign_auth_schemes_are_401(stack: Stack, header: str) -> None:
    for service, path in GUARDED.items():
        response = httpx.get(f"{stack.url(service)}{path}", headers={"Authorization": header})
        assert response.status_code == 401, service
        assert response.json()["status"] == "error"


def test_skipping_the_gateway_still_needs_a_token_health_and_docs_stay_open_metrics_need_theirs(
    stack: Stack, admin_token: str
) -> None:
    for service in ("load_balancer", "server", "server2"):
        base = stack.url(service)
        assert httpx.get(f"{base}/itens").status_code == 401
        assert httpx.post(f"{base}/itens", json=ITEM).status_code == 401
        assert httpx.delete(f"{base}/itens/1").status_code == 401
        ok = httpx.get(f"{base}/itens", headers={"Authorization": f"Bearer {admin_token}"})
        assert ok.status_code == 200
        for open_path in ("/saude", "/docs", "/openapi.json"):
            assert httpx.get(f"{base}{open_path}").status_code == 200, (service, open_path)
        assert httpx.get(f"{base}/metrics").status_code == 401
        assert stack.scrape(service).status_code == 200


def test_a_user_token_forged_into_admin_is_refused(stack: Stack, user_token: str) -> None:
    claims = jwt.decode(user_token, options={"verify_signature": False})
    header, _, signature = user_token.split(".")
    tampered = f"{header}.{_b64(claims | {'role': 'admin'})}.{signature}"
    for service, path in GUARDED.items():
        response = httpx.get(
            f"{stack.url(service)}{path}", headers={"Authorization": f"Bearer {tampered}"}
        )
        assert response.status_code == 401, service


def test_logout_revokes_the_token_at_the_gateway(stack: Stack) -> None:
    gw = stack.url("api_gateway")
    data = httpx.post(f"{gw}/login", json={"username": "user", "password": "user123"}).json()[
        "data"
    ]
    auth = {"Authorization": f"Bearer {data['access_token']}"}
    assert httpx.get(f"{gw}/itens", headers=auth).status_code == 200
    assert httpx.post(f"{gw}/logout", headers=auth).status_code == 200
    assert httpx.get(f"{gw}/itens", headers=auth).json() == GENERIC_401
    assert (
        httpx.post(f"{gw}/refresh", json={"refresh_token": data["refresh_token"]}).status_code
        == 401
    )


@pytest.mark.parametrize("stack", ["postgres-redis"], indirect=True)
def test_with_redis_the_servers_and_cache_honour_a_logout_too(stack: Stack) -> None:
    gw = stack.url("api_gateway")
    data = httpx.post(f"{gw}/login", json={"username": "user", "password": "user123"}).json()[
        "data"
    ]
    auth = {"Authorization": f"Bearer {data['access_token']}"}
    for service, path in GUARDED.items():
        assert httpx.get(f"{stack.url(service)}{path}", headers=auth).status_code == 200, service
    assert httpx.post(f"{gw}/logout", headers=auth).status_code == 200
    deadline = time.monotonic() + 5
    pending = dict(GUARDED)
    while pending and time.monotonic() < deadline:
        for service, path in list(pending.items()):
            if httpx.get(f"{stack.url(service)}{path}", headers=auth).status_code == 401:
                del pending[service]
        time.sleep(0.05)
    assert not pending, f"still accepted a revoked token: {sorted(pending)}"


def test_refresh_rotation_end_to_end(stack: Stack) -> None:
    gw = stack.url("api_gateway")
    first = httpx.post(f"{gw}/login", json={"username": "user", "password": "user123"}).json()[
        "data"
    ]
    rotated = httpx.post(f"{gw}/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200
    second = rotated.json()["data"]
    auth = {"Authorization": f"Bearer {second['access_token']}"}
    assert httpx.get(f"{gw}/itens", headers=auth).status_code == 200
    replay = httpx.post(f"{gw}/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.json() == GENERIC_401
    assert httpx.get(f"{gw}/itens", headers=auth).status_code == 401


@pytest.mark.parametrize(
    ("module", "key"), [("api_gateway", ""), ("api_gateway", "changeme"), ("server", "short-key")]
)
def test_outside_dev_mode_a_weak_secret_key_stops_the_service(
    module: str, key: str, tmp_path: Path
) -> None:
    # The gateway's demo users on: the key is the one thing wrong.
    env = {"DEMO_USERS": "true"} | ({"SECRET_KEY": key} if key else {})
    result = start_refused(module, env, tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("cannot start: SECRET_KEY"), result.stderr
