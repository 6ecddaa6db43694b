"""Token verification refuses everything it should, with one error type."""

import base64
import json
import time

import pytest
from svc_common.auth import TokenError, TokenRevoked, TokenVerifier, bearer_token

from conftest import TEST_KEY, TokenFactory

verifier = TokenVerifier(TEST_KEY)


def test_a_valid_token_gives_the_principal(make_token: TokenFactory) -> None:
    principal = verifier.verify(make_token(sub="maria", role="user"))
    assert (principal.username, principal.role, principal.is_admin) == ("maria", "user", False)


def test_an_expired_token_is_refused(make_token: TokenFactory) -> None:
    with pytest.raises(TokenError):
        verifier.verify(make_token(lifetime=-1))


def test_a_token_signed_with_another_key_is_refused(make_token: TokenFactory) -> None:
    with pytest.raises(TokenError):
        verifier.verify(make_token("another-key-that-is-long-enough-0123456789"))


def _b64(part: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


def test_alg_none_is_refused() -> None:
    token = (
        _b64({"alg": "none", "typ": "JWT"})
        + "."
        + _b64({"sub": "admin", "role": "admin", "iat": 1, "exp": 9999999999, "jti": "x"})
        + "."
    )
    with pytest.raises(TokenError):
        verifier.verify(token)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "ÿÿÿ.ÿÿÿ.ÿÿÿ", "x" * 5000])
def test_malformed_tokens_raise_token_error_only(token: str) -> None:
    with pytest.raises(TokenError):
        verifier.verify(token)


@pytest.mark.parametrize(
    "claims", [{"role": "root"}, {"jti": None}, {"sub": ""}, {"type": "refresh"}, {"sub": 5}]
)
def test_tokens_with_bad_claims_are_refused(make_token: TokenFactory, claims: dict) -> None:
    with pytest.raises(TokenError):
        verifier.verify(make_token(**claims))


def test_bearer_header_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None


def test_the_allow_list_admits_only_hs256() -> None:
    with pytest.raises(ValueError, match="allow-list"):
        TokenVerifier(TEST_KEY, algorithms=("HS256", "none"))


@pytest.mark.parametrize("algorithm", ["HS384"])
def test_tokens_signed_with_another_hmac_algorithm_are_refused(
    make_token: TokenFactory, algorithm: str
) -> None:
    with pytest.raises(TokenError):
        verifier.verify(make_token(algorithm=algorithm))


def test_a_token_issued_in_the_future_is_refused(make_token: TokenFactory) -> None:
    with pytest.raises(TokenError):
        verifier.verify(make_token(iat=int(time.time()) + 3600))


def test_a_remembered_token_is_still_refused_once_it_expires(make_token: TokenFactory) -> None:
    fresh = TokenVerifier(TEST_KEY)
    token = make_token(lifetime=1)
    fresh.verify(token)
    time.sleep(1.1)
    with pytest.raises(TokenError):
        fresh.verify(token)


async def test_a_remembered_token_is_refused_once_revoked(make_token: TokenFactory) -> None:
    fresh = TokenVerifier(TEST_KEY)
    token = make_token(sid="session-1")
    principal = fresh.verify(token)
    await fresh.revocations.revoke("session-1", until=time.time() + 60)
    with pytest.raises(TokenRevoked) as refused:
        fresh.verify(token)
    assert refused.value.principal == principal


def test_the_cache_is_bounded(make_token: TokenFactory) -> None:
    small = TokenVerifier(TEST_KEY, cache_size=2)
    tokens = [make_token(sub=f"u{i}") for i in range(3)]
    for token in tokens:
        small.verify(token)
    assert [small.verify(t).username for t in tokens] == ["u0", "u1", "u2"]
