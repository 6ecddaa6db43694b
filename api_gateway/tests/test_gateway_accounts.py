"""Start-up accounts (demo users, the first admin) and password changes, in-process."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_gateway.config import GatewaySettings
from fastapi.testclient import TestClient
from gateway_apps import login, running_gateway
from pydantic import ValidationError

from conftest import TEST_KEY

FIRST_ADMIN = "Xq7-first-admin-pw"


def settings(**values: Any) -> GatewaySettings:
    return GatewaySettings(secret_key=TEST_KEY, _env_file=None, **values)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_outside_dev_mode_a_first_admin_password_is_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FIRST_ADMIN_PASSWORD", raising=False)
    with pytest.raises(ValidationError, match="FIRST_ADMIN_PASSWORD is required"):
        settings(dev_mode=False)


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short-pw", "at least 12"),
        ("admin123", "at least 12"),
        ("password1234", "well-known"),
        ("ADMINADMIN123", "well-known"),
    ],
)
def test_a_short_or_well_known_first_admin_password_is_refused(password: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        settings(first_admin_password=password)


def test_dev_mode_and_demo_users_need_no_first_admin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FIRST_ADMIN_PASSWORD", raising=False)
    assert settings(dev_mode=True).demo_accounts
    assert settings(demo_users=True).demo_accounts
    assert not settings(first_admin_password=FIRST_ADMIN).demo_accounts


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[TestClient]:
    """A gateway as deployed: no demo users, a first admin named `root`."""
    overrides = {
        "demo_users": False,
        "first_admin_username": "root",
        "first_admin_password": FIRST_ADMIN,
        "login_rate_limit": "3/hour",
    }
    with running_gateway(tmp_path, **overrides) as client:
        yield client


def test_without_demo_users_only_the_first_admin_exists(deployed: TestClient) -> None:
    for username, password in (("admin", "admin123"), ("user", "user123")):
        refused = deployed.post("/login", json={"username": username, "password": password})
        assert refused.status_code == 401
    assert login(deployed, "root", FIRST_ADMIN)["user"] == {"username": "root", "role": "admin"}


def test_a_database_left_with_demo_passwords_gets_them_retired(tmp_path: Path) -> None:
    with running_gateway(tmp_path) as demo:
        login(demo, "admin", "admin123")
    with running_gateway(tmp_path, demo_users=False, first_admin_password=FIRST_ADMIN) as client:
        assert login(client, "admin", FIRST_ADMIN)["user"]["role"] == "admin"
        for username, password in (("admin", "admin123"), ("user", "user123")):
            refused = client.post("/login", json={"username": username, "password": password})
            assert refused.status_code == 401


def change(client: TestClient, token: str, current: str, new: str) -> Any:
    body = {"current_password": current, "new_password": new}
    return client.post("/me/password", json=body, headers=bearer(token))


def test_changing_the_password_ends_every_earlier_session(deployed: TestClient) -> None:
    this, other = login(deployed, "root", FIRST_ADMIN), login(deployed, "root", FIRST_ADMIN)
    changed = change(deployed, this["access_token"], FIRST_ADMIN, "a-new-long-password")
    assert changed.status_code == 200, changed.text
    for token in (this["access_token"], other["access_token"]):
        assert deployed.get("/me", headers=bearer(token)).status_code == 401
    spent = deployed.post("/refresh", json={"refresh_token": other["refresh_token"]})
    assert spent.status_code == 401
    # The answer carries a new session, and new logins take the new password only.
    fresh = changed.json()["data"]
    assert deployed.get("/me", headers=bearer(fresh["access_token"])).status_code == 200
    old = deployed.post("/login", json={"username": "root", "password": FIRST_ADMIN})
    assert old.status_code == 401
    assert login(deployed, "root", "a-new-long-password")["user"]["username"] == "root"


@pytest.mark.parametrize(
    ("current", "new", "status"),
    [
        ("wrong-password", "a-new-long-password", 400),
        (FIRST_ADMIN, "short", 422),
        (FIRST_ADMIN, "ROOT    ", 422),  # long enough, but the username
        (FIRST_ADMIN, " " * 12, 422),
        (FIRST_ADMIN, FIRST_ADMIN, 422),
        (FIRST_ADMIN, "x" * 129, 422),
    ],
)
def test_a_refused_change_keeps_the_password(
    deployed: TestClient, current: str, new: str, status: int
) -> None:
    token = login(deployed, "root", FIRST_ADMIN)["access_token"]
    answer = change(deployed, token, current, new)
    assert answer.status_code == status
    assert answer.json()["status"] == "error"
    assert deployed.get("/me", headers=bearer(token)).status_code == 200
    assert login(deployed, "root", FIRST_ADMIN)


def test_guessing_the_current_password_is_rate_limited(deployed: TestClient) -> None:
    token = login(deployed, "root", FIRST_ADMIN)["access_token"]
    answers = [change(deployed, token, f"guess-{i}", "a-new-long-password") for i in range(4)]
    assert [a.status_code for a in answers] == [400, 400, 400, 429]
    assert "Retry-After" in answers[-1].headers


def test_a_change_needs_a_token(deployed: TestClient) -> None:
    body = {"current_password": FIRST_ADMIN, "new_password": "a-new-long-password"}
    assert deployed.post("/me/password", json=body).status_code == 401
