"""The probe's kinds of attack, against the running system: tokens, skipping the gateway,
role escalation, ownership, hostile input and revocation."""

import base64
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
import pytest

from conftest import mint_token
from tests.integration.conftest import login
from tests.integration.stack import Stack, free_port

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


def test_skipping_the_gateway_still_needs_a_valid_token_but_health_and_docs_stay_open(
    stack: Stack, admin_token: str
) -> None:
    for service in ("load_balancer", "server", "server2"):
        base = stack.url(service)
        assert httpx.get(f"{base}/itens").status_code == 401
        assert httpx.post(f"{base}/itens", json=ITEM).status_code == 401
        assert httpx.delete(f"{base}/itens/1").status_code == 401
        ok = httpx.get(f"{base}/itens", headers={"Authorization": f"Bearer {admin_token}"})
        assert ok.status_code == 200
        for open_path in ("/saude", "/metrics", "/docs", "/openapi.json"):
            assert httpx.get(f"{base}{open_path}").status_code == 200, (service, open_path)


@pytest.mark.parametrize(
    "extra",
    [{"role": "admin"}, {"role": "user"}, {"is_admin": True}, {"roles": ["admin"]}, {"sub": "x"}],
)
def test_registration_takes_no_role_or_any_other_field(stack: Stack, extra: dict) -> None:
    name = f"esc{uuid.uuid4().hex[:8]}"
    response = httpx.post(
        f"{stack.url('api_gateway')}/register",
        json={"username": name, "password": "long-enough-pass"} | extra,
    )
    assert response.status_code == 422
    assert response.json()["status"] == "error"
    refused = httpx.post(
        f"{stack.url('api_gateway')}/login", json={"username": name, "password": "long-enough-pass"}
    )
    assert refused.status_code == 401


def _new_user(stack: Stack) -> tuple[str, str]:
    name = f"own{uuid.uuid4().hex[:8]}"
    created = httpx.post(
        f"{stack.url('api_gateway')}/register", json={"username": name, "password": "pass-word-1"}
    )
    assert created.json()["data"]["role"] == "user"
    return name, login(stack, name, "pass-word-1")


def test_users_change_only_their_own_items_and_admins_any(stack: Stack, admin_token: str) -> None:
    alice, alice_token = _new_user(stack)
    _, bob_token = _new_user(stack)
    gw = stack.url("api_gateway")

    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    item = httpx.post(f"{gw}/itens", headers=auth(alice_token), json=ITEM).json()["data"]
    assert item["owner"] == alice
    url = f"/itens/{item['id']}"
    # Bob is refused through the gateway and when he goes straight to either server.
    for base in (gw, stack.url("server"), stack.url("server2"), stack.url("load_balancer")):
        assert httpx.put(f"{base}{url}", headers=auth(bob_token), json=ITEM).status_code == 403
        assert httpx.delete(f"{base}{url}", headers=auth(bob_token)).status_code == 403
    # A body claiming another owner changes nothing: the owner comes from the token.
    hijack = httpx.put(f"{gw}{url}", headers=auth(bob_token), json=ITEM | {"owner": "bob"})
    assert hijack.status_code in {403, 422}
    mine = httpx.put(f"{gw}{url}", headers=auth(alice_token), json=ITEM | {"nome": "Minha"})
    assert mine.status_code == 200
    assert mine.json()["data"]["owner"] == alice
    by_admin = httpx.put(f"{gw}{url}", headers=auth(admin_token), json=ITEM | {"nome": "Admin"})
    assert by_admin.status_code == 200
    assert by_admin.json()["data"]["owner"] == alice
    assert httpx.delete(f"{gw}{url}", headers=auth(admin_token)).status_code == 200


def test_a_user_token_forged_into_admin_is_refused(stack: Stack, user_token: str) -> None:
    claims = jwt.decode(user_token, options={"verify_signature": False})
    header, _, signature = user_token.split(".")
    tampered = f"{header}.{_b64(claims | {'role': 'admin'})}.{signature}"
    for service, path in GUARDED.items():
        response = httpx.get(
            f"{stack.url(service)}{path}", headers={"Authorization": f"Bearer {tampered}"}
        )
        assert response.status_code == 401, service


HOSTILE_LOGINS = [
    {"username": "admin' OR '1'='1", "password": "x' OR '1'='1"},
    {"username": "admin\x00", "password": "admin123"},
    {"username": 'admin"; DROP TABLE users; --', "password": "x"},
    {"username": "%00", "password": "%00"},
    {"username": "ａｄｍｉｎ", "password": "admin123"},
]


@pytest.mark.parametrize("body", HOSTILE_LOGINS)
def test_hostile_logins_are_plain_401s(stack: Stack, body: dict) -> None:
    response = httpx.post(f"{stack.url('api_gateway')}/login", json=body)
    assert response.status_code == 401, response.text
    assert response.json()["message"] == "Invalid username or password"


@pytest.mark.parametrize(
    ("path", "content", "content_type"),
    [
        ("/login", b'{"username": ', "application/json"),
        ("/login", b"[" * 5000 + b"]" * 5000, "application/json"),
        ("/login", b"\xff\xfe\x00garbage", "application/json"),
        ("/register", b"username=a&password=b", "application/x-www-form-urlencoded"),
        ("/token", b"username=admin", "application/x-www-form-urlencoded"),
        ("/refresh", b"null", "application/json"),
        ("/login", b'{"username": {"$ne": null}, "password": {"$ne": null}}', "application/json"),
    ],
)
def test_malformed_bodies_are_4xx_in_the_envelope(
    stack: Stack, path: str, content: bytes, content_type: str
) -> None:
    response = httpx.post(
        f"{stack.url('api_gateway')}{path}", content=content, headers={"Content-Type": content_type}
    )
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["status"] == "error"


@pytest.mark.parametrize(
    "body",
    [
        b'{"nome": "a\\u0000b", "preco": 1}',
        b'{"nome": "x", "preco": 1e400}',
        b'{"nome": "x", "preco": "NaN"}',
        b'{"nome": "x", "preco": 99999999999999999999}',
        b'{"nome": "\\ud800", "preco": 1}',
        b'{"nome": {"$gt": ""}, "preco": 1}',
        b'{"nome": "x", "preco": 1, "id": 1, "owner": "admin"}',
        b'{"nome": "' + b"x" * 100_000 + b'", "preco": 1}',
        b"[]",
        b"",
    ],
)
def test_hostile_item_bodies_are_refused_without_a_500(gateway: httpx.Client, body: bytes) -> None:
    before = gateway.get("/itens").json()["meta"]["total"]
    response = gateway.post("/itens", content=body, headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["status"] == "error"
    assert gateway.get("/itens").json()["meta"]["total"] == before


def test_hostile_headers_never_cause_a_500(stack: Stack, admin_token: str) -> None:
    gw = stack.url("api_gateway")
    injected = httpx.get(f"{gw}/saude", headers={"X-Request-ID": "abc\tdef<script>"})
    assert injected.headers["x-request-id"] != "abc\tdef<script>"
    long_id = httpx.get(f"{gw}/saude", headers={"X-Request-ID": "a" * 5000})
    assert len(long_id.headers["x-request-id"]) <= 128
    spoofed = httpx.get(
        f"{gw}/itens",
        headers={
            "Authorization": f"Bearer {admin_token}",
            "X-Forwarded-For": "1.2.3.4, <script>",
            "X-Forwarded-Host": "evil.example",
            "Content-Length": "0",
        },
    )
    assert spoofed.status_code == 200
    big = httpx.get(f"{gw}/itens", headers={"Authorization": "Bearer " + "x" * 60_000})
    assert big.status_code in {400, 401, 431}


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


def test_gateway_docs_show_the_servers_item_schemas(stack: Stack) -> None:
    ours = httpx.get(f"{stack.url('api_gateway')}/openapi.json").json()
    theirs = httpx.get(f"{stack.url('server')}/openapi.json").json()
    for path in ("/itens", "/itens/{item_id}"):
        assert path in ours["paths"], path
        for method, operation in theirs["paths"][path].items():
            mine = ours["paths"][path][method]
            assert mine.get("parameters") == operation.get("parameters"), (path, method)
            assert mine.get("requestBody") == operation.get("requestBody"), (path, method)
            assert mine["security"] == [{"OAuth2PasswordBearer": []}]
            assert (
                mine["responses"]["200" if method != "post" else "201"]
                == operation["responses"]["200" if method != "post" else "201"]
            )
    item_in = ours["components"]["schemas"]["ItemIn"]
    assert {"nome", "descricao", "preco"} <= set(item_in["properties"])
    assert "/{path}" not in "".join(ours["paths"])


def test_gateway_health_names_where_rate_limits_are_counted(stack: Stack) -> None:
    checks = httpx.get(f"{stack.url('api_gateway')}/saude").json()["data"]["checks"]
    assert checks["rate_limits"]["backend"] == ("redis" if stack.redis_url else "memory")


@pytest.mark.parametrize(
    ("module", "key"), [("api_gateway", ""), ("api_gateway", "changeme"), ("server", "short-key")]
)
def test_outside_dev_mode_a_weak_secret_key_stops_the_service(
    module: str, key: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEV_MODE"}}
    env |= {"DEV_MODE": "false", "PORTA": str(free_port()), "DATABASE_URL": "sqlite:///:memory:"}
    if key:
        env["SECRET_KEY"] = key
    result = subprocess.run(
        [sys.executable, "-m", module],
        env=env,
        cwd=tmp_path,  # no stray .env file
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
