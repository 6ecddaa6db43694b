"""Password hashing (Argon2id) and issuing access and refresh tokens."""

import time
import uuid
from dataclasses import dataclass

import anyio
import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from api_gateway.config import GatewaySettings

# OWASP's Argon2id floor (19 MiB, t=2, p=1): strong, and keeps a burst of logins inside the
# memory budget of the service.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Verified when the user does not exist, so both cases take the same time.
_DUMMY_HASH = _hasher.hash("timing-equaliser")


async def hash_password(password: str) -> str:
    """Argon2id hash, computed off the event loop."""
    return await anyio.to_thread.run_sync(_hasher.hash, password)


async def verify_password(password: str, stored_hash: str | None) -> bool:
    """Constant-work check; a missing or locked user still costs one verification."""
    usable = stored_hash if stored_hash and stored_hash.startswith("$argon2") else None

    def check() -> bool:
        try:
            return _hasher.verify(usable or _DUMMY_HASH, password) and usable is not None
        except (VerificationError, InvalidHashError):
            return False

    return await anyio.to_thread.run_sync(check)


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What a login or a refresh hands out."""

    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int


def _sign(claims: dict[str, object], settings: GatewaySettings) -> str:
    return jwt.encode(claims, settings.jwt_key, algorithm=settings.jwt_algorithm)


def issue_tokens(
    *, username: str, role: str, settings: GatewaySettings, session_id: str | None = None
) -> TokenPair:
    """A signed access token and a refresh token of one login session (`sid`).

    Refreshing keeps the session id, so revoking it ends every token the login led to.
    """
    issued_at = time.time()
    now = int(issued_at)
    sid = session_id or uuid.uuid4().hex
    lifetime = settings.access_token_minutes * 60
    refresh_lifetime = settings.refresh_token_days * 24 * 3600
    # iat keeps its fraction (RFC 7519 allows it): a password change voids the tokens issued
    # before it to the microsecond, and a login a moment after it stays valid.
    common = {"sub": username, "role": role, "iat": issued_at, "sid": sid}
    access = common | {"exp": now + lifetime, "jti": uuid.uuid4().hex, "type": "access"}
    refresh = common | {"exp": now + refresh_lifetime, "jti": uuid.uuid4().hex, "type": "refresh"}
    return TokenPair(
        access_token=_sign(access, settings),
        refresh_token=_sign(refresh, settings),
        expires_in=lifetime,
        refresh_expires_in=refresh_lifetime,
    )
