"""Passwords and tokens issued by the gateway."""

import pytest
from api_gateway.auth import hash_password, issue_access_token, verify_password
from api_gateway.config import GatewaySettings
from api_gateway.schemas import Registration
from pydantic import ValidationError
from svc_common.auth import TokenVerifier

from conftest import TEST_KEY


async def test_passwords_are_argon2id_and_verify() -> None:
    stored = await hash_password("correct horse")
    assert stored.startswith("$argon2id$")
    assert await verify_password("correct horse", stored)
    assert not await verify_password("wrong", stored)


async def test_an_unknown_user_still_costs_a_verification_and_fails() -> None:
    assert not await verify_password("anything", None)


def test_issued_tokens_verify_with_all_claims() -> None:
    settings = GatewaySettings(secret_key=TEST_KEY, access_token_minutes=5, _env_file=None)  # type: ignore[call-arg]
    token, lifetime = issue_access_token(username="ana", role="user", settings=settings)
    assert lifetime == 300
    principal = TokenVerifier(TEST_KEY).verify(token)
    assert (principal.username, principal.role) == ("ana", "user")


def test_registration_has_no_role_field() -> None:
    with pytest.raises(ValidationError):
        Registration.model_validate({"username": "eve", "password": "long-enough", "role": "admin"})


@pytest.mark.parametrize(
    "payload",
    [
        {"username": "ab", "password": "long-enough"},
        {"username": "a b c", "password": "long-enough"},
        {"username": "valid", "password": "short"},
        {"username": "x" * 33, "password": "long-enough"},
    ],
)
def test_registration_rules(payload: dict) -> None:
    with pytest.raises(ValidationError):
        Registration.model_validate(payload)
