"""The probe's other kinds, against the running system: role escalation, ownership, hostile
input, and the gateway's docs and health."""

import uuid

import httpx
import pytest

from tests.integration.conftest import login
from tests.integration.stack import Stack

ITEM = {"nome": "Caneta", "descricao": "azul", "preco": 2.5}


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
