"""Accounts outside dev mode: no published password, a first admin, password changes."""

import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import OUTPUT
from tests.integration.gateways import bearer, gateways, token_for
from tests.integration.stack import Stack, start_refused

FIRST_ADMIN = secrets.token_urlsafe(18)


@pytest.fixture(scope="module")
def deployed() -> Iterator[Stack]:
    """A gateway as a deployment runs it: DEV_MODE=false, no demo users, a first admin."""
    with gateways(
        OUTPUT / "gateway-accounts",
        DEMO_USERS="false",
        FIRST_ADMIN_USERNAME="root",
        FIRST_ADMIN_PASSWORD=FIRST_ADMIN,
    ) as (gateway,):
        yield gateway


def test_outside_dev_mode_the_published_passwords_fail_and_the_first_admin_logs_in(
    deployed: Stack,
) -> None:
    url = deployed.url("api_gateway")
    for username, password in (("admin", "admin123"), ("user", "user123")):
        refused = httpx.post(f"{url}/login", json={"username": username, "password": password})
        assert refused.status_code == 401
        assert refused.json()["status"] == "error"
    me = httpx.get(f"{url}/me", headers=bearer(token_for(deployed, "root", FIRST_ADMIN)))
    assert me.json()["data"] == {"username": "root", "role": "admin"}


@pytest.mark.parametrize("password", [None, "admin123", "short-pw", "password1234"])
def test_a_gateway_without_a_strong_first_admin_password_refuses_to_start_with_one_line(
    password: str | None, tmp_path: Path
) -> None:
    env = {"SECRET_KEY": secrets.token_hex(32)}
    if password is not None:
        env["FIRST_ADMIN_PASSWORD"] = password
    result = start_refused("api_gateway", env, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("cannot start: FIRST_ADMIN_PASSWORD")


def test_a_password_change_voids_the_old_password_and_every_earlier_token(stack: Stack) -> None:
    gw = stack.url("api_gateway")
    name, old, new = f"pw{uuid.uuid4().hex[:8]}", "first-pass-word", "second-pass-word"
    assert httpx.post(f"{gw}/register", json={"username": name, "password": old}).is_success
    here, elsewhere = token_for(stack, name, old), token_for(stack, name, old)
    server = f"{stack.url('server')}/itens"
    assert httpx.get(server, headers=bearer(elsewhere)).status_code == 200
    changed = httpx.post(
        f"{gw}/me/password",
        json={"current_password": old, "new_password": new},
        headers=bearer(here),
    )
    assert changed.status_code == 200, changed.text
    for token in (here, elsewhere):
        assert httpx.get(f"{gw}/itens", headers=bearer(token)).status_code == 401
    if stack.redis_url:
        # Shared through Redis: the servers refuse it too, not only the gateway.
        assert httpx.get(server, headers=bearer(elsewhere)).status_code == 401
    fresh = changed.json()["data"]["access_token"]
    assert httpx.get(f"{gw}/itens", headers=bearer(fresh)).status_code == 200
    refused = httpx.post(f"{gw}/login", json={"username": name, "password": old})
    assert refused.status_code == 401
    assert token_for(stack, name, new)
