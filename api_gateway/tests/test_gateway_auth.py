"""Passwords, the tokens the gateway issues, and the account rules."""

import jwt
import pytest
from api_gateway.auth import hash_password, issue_tokens, verify_password
from api_gateway.config import GatewaySettings
from api_gateway.schemas import Credentials, PasswordGrant, Registration
from pydantic import ValidationError
from svc_common.auth import TokenError, TokenVerifier

from conftest import TEST_KEY

SETTINGS = GatewaySettings(
    secret_key=TEST_KEY, access_token_minutes=5, demo_users=True, _env_file=None
)  # type: ignore[call-arg]


async def test_passwords_are_argon2id_and_verify() -> None:
    stored = await hash_password("correct horse")
    assert stored.startswith("$argon2id$")
    assert await verify_password("correct horse", stored)
    assert not await verify_password("wrong", stored)


async def test_an_unknown_user_still_costs_a_verification_and_fails() -> None:
    assert not await verify_password("anything", None)


async def test_a_locked_account_verifies_no_password() -> None:
    assert not await verify_password("admin123", "!locked")


def test_access_tokens_carry_sub_role_iat_exp_jti_and_a_session() -> None:
    pair = issue_tokens(username="ana", role="user", settings=SETTINGS)
    assert pair.expires_in == 300
    claims = jwt.decode(pair.access_token, TEST_KEY, algorithms=["HS256"])
    assert {"sub", "role", "iat", "exp", "jti", "sid"} <= set(claims)
    assert claims["exp"] - int(claims["iat"]) == 300
    assert jwt.get_unverified_header(pair.access_token)["alg"] == "HS256"
    principal = TokenVerifier(TEST_KEY).verify(pair.access_token)
    assert (principal.username, principal.role) == ("ana", "user")


def test_refresh_and_access_tokens_are_not_interchangeable() -> None:
    pair = issue_tokens(username="ana", role="user", settings=SETTINGS)
    verifier = TokenVerifier(TEST_KEY)
    with pytest.raises(TokenError):
        verifier.verify(pair.refresh_token)
    with pytest.raises(TokenError):
        verifier.verify(pair.access_token, token_type="refresh")
    refresh = verifier.verify(pair.refresh_token, token_type="refresh")
    assert refresh.session_id == verifier.verify(pair.access_token).session_id
    assert pair.refresh_expires_in == 7 * 24 * 3600


def test_refreshing_keeps_the_session_and_changes_every_token_id() -> None:
    first = issue_tokens(username="ana", role="user", settings=SETTINGS)
    sid = TokenVerifier(TEST_KEY).verify(first.access_token).session_id
    second = issue_tokens(username="ana", role="user", settings=SETTINGS, session_id=sid)
    a, b = (jwt.decode(p.access_token, TEST_KEY, algorithms=["HS256"]) for p in (first, second))
    assert a["sid"] == b["sid"]
    assert a["jti"] != b["jti"]


@pytest.mark.parametrize("role", ["admin", "user", None, ""])
def test_registration_refuses_any_role_field(role: str | None) -> None:
    with pytest.raises(ValidationError):
        Registration.model_validate({"username": "eve", "password": "long-enough", "role": role})


@pytest.mark.parametrize(
    "payload",
    [
        {"username": "ab", "password": "long-enough"},
        {"username": "a b c", "password": "long-enough"},
        {"username": "valid", "password": "short"},
        {"username": "x" * 33, "password": "long-enough"},
        {"username": "_lead", "password": "long-enough"},
        {"username": "ma\u0441ia", "password": "long-enough"},  # Cyrillic "с"
        {"username": "mar\nia", "password": "long-enough"},
        {"username": "maria", "password": " " * 12},
        {"username": "maria", "password": "MARIA"},
        {"username": "mariana12", "password": "Mariana12"},
        {"username": "valid", "password": "x" * 129},
        {"username": "valid"},
        {"username": None, "password": "long-enough"},
    ],
)
def test_registration_rules(payload: dict) -> None:
    with pytest.raises(ValidationError):
        Registration.model_validate(payload)


def test_usernames_are_case_insensitive_so_nobody_can_register_a_lookalike() -> None:
    assert Registration(username="Maria", password="long-enough").username == "maria"
    assert Credentials(username=" ADMIN ", password="x").username == "admin"
    assert PasswordGrant(username="Admin", password="x").username == "admin"


def test_the_password_grant_takes_only_the_password_grant_type() -> None:
    PasswordGrant.model_validate({"username": "a", "password": "b", "grant_type": "password"})
    with pytest.raises(ValidationError):
        PasswordGrant.model_validate({"username": "a", "password": "b", "grant_type": "implicit"})
