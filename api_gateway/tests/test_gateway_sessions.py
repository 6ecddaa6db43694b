"""Login, refresh-token rotation, logout and brute-force limits, in-process."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from gateway_apps import login, running_gateway

from conftest import TokenFactory


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[TestClient]:
    with running_gateway(tmp_path, login_rate_limit="3/hour") as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_login_hands_out_an_access_and_a_refresh_token(gateway: TestClient) -> None:
    data = login(gateway)
    assert data["token_type"] == "bearer"
    assert data["user"] == {"username": "admin", "role": "admin"}
    assert gateway.get("/me", headers=bearer(data["access_token"])).status_code == 200
    # A refresh token is not an access token.
    assert gateway.get("/me", headers=bearer(data["refresh_token"])).status_code == 401


def test_refresh_rotates_and_the_old_refresh_token_is_spent(gateway: TestClient) -> None:
    first = login(gateway)
    rotated = gateway.post("/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200
    second = rotated.json()["data"]
    assert second["refresh_token"] != first["refresh_token"]
    assert gateway.get("/me", headers=bearer(second["access_token"])).status_code == 200
    again = gateway.post("/refresh", json={"refresh_token": first["refresh_token"]})
    assert again.status_code == 401


def test_reusing_a_spent_refresh_token_ends_the_whole_session(gateway: TestClient) -> None:
    first = login(gateway)
    second = gateway.post("/refresh", json={"refresh_token": first["refresh_token"]}).json()["data"]
    assert (
        gateway.post("/refresh", json={"refresh_token": first["refresh_token"]}).status_code == 401
    )
    # The thief's replay also kills what the legitimate client got from the rotation.
    assert gateway.get("/me", headers=bearer(second["access_token"])).status_code == 401
    assert (
        gateway.post("/refresh", json={"refresh_token": second["refresh_token"]}).status_code == 401
    )
    # Other sessions of the same user are untouched.
    assert gateway.get("/me", headers=bearer(login(gateway)["access_token"])).status_code == 200


def test_logout_revokes_the_token_and_its_refresh_token(gateway: TestClient) -> None:
    data = login(gateway)
    other = login(gateway)
    out = gateway.post("/logout", headers=bearer(data["access_token"]))
    assert out.status_code == 200
    assert out.json()["message"] == "Logged out"
    me = gateway.get("/me", headers=bearer(data["access_token"]))
    assert me.status_code == 401
    assert me.json() == {"status": "error", "data": None, "message": "Invalid or expired token"}
    assert (
        gateway.post("/refresh", json={"refresh_token": data["refresh_token"]}).status_code == 401
    )
    assert gateway.post("/logout", headers=bearer(data["access_token"])).status_code == 401
    assert gateway.get("/me", headers=bearer(other["access_token"])).status_code == 200


def test_a_revoked_token_is_refused_on_forwarded_routes_too(gateway: TestClient) -> None:
    data = login(gateway)
    gateway.post("/logout", headers=bearer(data["access_token"]))
    assert gateway.get("/itens", headers=bearer(data["access_token"])).status_code == 401


@pytest.mark.parametrize(
    "token",
    ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.", "é" * 300],
)
def test_refresh_with_a_bad_token_is_a_generic_401(gateway: TestClient, token: str) -> None:
    response = gateway.post("/refresh", json={"refresh_token": token})
    assert response.status_code == 401
    assert response.json() == {
        "status": "error",
        "data": None,
        "message": "Invalid or expired token",
    }


def test_a_forged_refresh_token_is_refused(gateway: TestClient, make_token: TokenFactory) -> None:
    forged = make_token("another-key-that-is-long-enough-0123456789", type="refresh", sid="s")
    assert gateway.post("/refresh", json={"refresh_token": forged}).status_code == 401


def test_login_brute_force_is_stopped_per_ip_and_username(gateway: TestClient) -> None:
    wrong = {"username": "admin", "password": "guess"}
    codes = [gateway.post("/login", json=wrong).status_code for _ in range(3)]
    assert codes == [401, 401, 401]
    blocked = gateway.post("/login", json={"username": "admin", "password": "admin123"})
    assert blocked.status_code == 429
    assert blocked.json()["status"] == "error"
    assert int(blocked.headers["retry-after"]) >= 1
    assert blocked.headers["ratelimit-policy"].startswith('"login";q=3;w=3600')
    assert '"login";r=0' in blocked.headers["ratelimit"]
    assert blocked.headers["x-ratelimit-remaining"] == "0"
    # The OAuth2 form and other spellings of the name share the same counter.
    form = gateway.post("/token", data={"username": "ADMIN", "password": "admin123"})
    assert form.status_code == 429
    # Another account from the same address is not locked out.
    assert (
        gateway.post("/login", json={"username": "user", "password": "user123"}).status_code == 200
    )


def test_login_guesses_from_one_ipv6_64_share_one_counter(tmp_path: Path) -> None:
    with running_gateway(tmp_path, login_rate_limit="3/hour", trusted_proxies="127.0.0.1") as gw:
        wrong = {"username": "admin", "password": "guess"}
        for n in range(1, 4):
            sent_from = {"X-Forwarded-For": f"2001:db8:5:5::{n}"}
            assert gw.post("/login", json=wrong, headers=sent_from).status_code == 401
        sent_from = {"X-Forwarded-For": "2001:db8:5:5:abcd::9"}
        assert gw.post("/login", json=wrong, headers=sent_from).status_code == 429
        elsewhere = {"X-Forwarded-For": "2001:db8:5:6::1"}
        assert gw.post("/login", json=wrong, headers=elsewhere).status_code == 401


def test_a_successful_login_clears_earlier_failures(gateway: TestClient) -> None:
    for _ in range(2):
        gateway.post("/login", json={"username": "user", "password": "nope"})
    login(gateway, "user", "user123")
    codes = [
        gateway.post("/login", json={"username": "user", "password": "nope"}).status_code
        for _ in range(3)
    ]
    assert codes == [401, 401, 401]


def test_wrong_password_and_unknown_user_look_the_same(gateway: TestClient) -> None:
    wrong = gateway.post("/login", json={"username": "admin", "password": "nope"})
    unknown = gateway.post("/login", json={"username": "nobody", "password": "nope"})
    impossible = gateway.post("/login", json={"username": "no\x00body", "password": "nope"})
    assert wrong.status_code == unknown.status_code == impossible.status_code == 401
    assert wrong.json() == unknown.json() == impossible.json()


def test_register_never_grants_a_role_and_refuses_duplicates(gateway: TestClient) -> None:
    escalate = {"username": "mallory", "password": "long-enough", "role": "admin"}
    assert gateway.post("/register", json=escalate).status_code == 422
    created = gateway.post("/register", json={"username": "Mallory", "password": "long-enough"})
    assert created.status_code == 201
    assert created.json()["data"] == {"username": "mallory", "role": "user"}
    again = gateway.post("/register", json={"username": "MALLORY", "password": "other-pass"})
    assert again.status_code == 409
    assert again.json()["status"] == "error"
    assert login(gateway, "mallory", "long-enough")["user"]["role"] == "user"
