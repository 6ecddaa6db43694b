"""Password hashing (Argon2id) and access-token issuing."""

import time
import uuid

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
    """Constant-work check; a missing user still costs one verification."""

    def check() -> bool:
        try:
            return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    return await anyio.to_thread.run_sync(check)


def issue_access_token(*, username: str, role: str, settings: GatewaySettings) -> tuple[str, int]:
    """A signed HS256 access token and its lifetime in seconds."""
    now = int(time.time())
    lifetime = settings.access_token_minutes * 60
    claims = {
        "sub": username,
        "role": role,
        "iat": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
        "type": "access",
    }
    return jwt.encode(claims, settings.jwt_key, algorithm=settings.jwt_algorithm), lifetime
