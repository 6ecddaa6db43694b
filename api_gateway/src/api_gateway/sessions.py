"""Login sessions: refresh-token rotation with reuse detection, and logout.

State lives in the revocation list (Redis when REDIS_URL is set, in process otherwise), never
in SQL: a used refresh token's id is revoked until it expires, and a logout or a replayed
refresh token revokes the whole session (`sid`), access tokens included.
"""

import logging
import time

from sqlalchemy.ext.asyncio import AsyncSession
from svc_common.auth import Principal, TokenError, TokenRevoked, TokenVerifier

from api_gateway import users
from api_gateway.auth import TokenPair, issue_tokens
from api_gateway.config import GatewaySettings
from api_gateway.models import User

log = logging.getLogger(__name__)


async def _end_session(verifier: TokenVerifier, principal: Principal, lifetime: int) -> None:
    if principal.session_id is not None:
        # Long enough to outlive the newest refresh token the session can have.
        await verifier.revocations.revoke(principal.session_id, until=time.time() + lifetime)


async def rotate(
    refresh_token: str,
    *,
    verifier: TokenVerifier,
    session: AsyncSession,
    settings: GatewaySettings,
) -> tuple[User, TokenPair]:
    """New tokens for a refresh token, which is spent; TokenError if it must be refused."""
    lifetime = settings.refresh_token_days * 24 * 3600
    try:
        principal = verifier.verify(refresh_token, token_type="refresh")
    except TokenRevoked as exc:
        spent = exc.principal
        revocations = verifier.revocations
        if not revocations.is_revoked(spent.session_id) and not revocations.cut_off_before(
            spent.username, spent.issued_at
        ):
            # A spent refresh token came back: someone holds a copy, so the session ends.
            log.warning("refresh token reused; session of %s revoked", exc.principal.username)
            await _end_session(verifier, exc.principal, lifetime)
        raise
    if principal.session_id is None:
        raise TokenError("refresh token without a session")
    if not await verifier.revocations.revoke(principal.jti, until=principal.expires_at):
        # Another request (maybe on another replica) spent it first.
        log.warning("refresh token raced; session of %s revoked", principal.username)
        await _end_session(verifier, principal, lifetime)
        raise TokenError("refresh token already used")
    user = await users.get_user(session, username=principal.username)
    if user is None:
        raise TokenError("user no longer exists")
    # The role is read again: a changed role takes effect at the next refresh.
    pair = issue_tokens(
        username=user.username, role=user.role, settings=settings, session_id=principal.session_id
    )
    return user, pair


async def end_all_sessions(
    username: str, *, verifier: TokenVerifier, settings: GatewaySettings
) -> None:
    """Void every token of this user issued until now, on every replica and service."""
    now = time.time()
    await verifier.revocations.cut_off(
        username, at=now, until=now + settings.refresh_token_days * 24 * 3600
    )


async def logout(
    principal: Principal, *, verifier: TokenVerifier, settings: GatewaySettings
) -> None:
    """Revoke this access token and the session it belongs to."""
    await verifier.revocations.revoke(principal.jti, until=principal.expires_at)
    await _end_session(verifier, principal, settings.refresh_token_days * 24 * 3600)
