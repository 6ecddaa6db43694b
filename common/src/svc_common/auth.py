"""Verifying the gateway's JWTs, so every service can check callers itself."""

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from svc_common.revocation import RevocationList

INVALID_TOKEN = "Invalid or expired token"
NOT_AUTHENTICATED = "Not authenticated"
ROLES = frozenset({"admin", "user"})
ALLOWED_ALGORITHMS = ("HS256",)
_REQUIRED_CLAIMS = ["sub", "role", "iat", "exp", "jti"]
# Our tokens are ~300 bytes; anything far bigger is refused before any parsing.
MAX_TOKEN_BYTES = 4096


class TokenError(Exception):
    """Any reason a token is refused; callers answer 401 with one generic message."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as the token says."""

    username: str
    role: str
    jti: str
    expires_at: int
    issued_at: float = 0.0
    session_id: str | None = None
    token_type: str = "access"

    @property
    def is_admin(self) -> bool:
        """Admins may change anything."""
        return self.role == "admin"


class TokenRevoked(TokenError):
    """A genuine token that was revoked (logout, or a refresh token already used)."""

    def __init__(self, principal: Principal) -> None:
        super().__init__("revoked")
        self.principal = principal


class TokenVerifier:
    """Checks signature, algorithm, expiry, claims and revocation of the gateway's tokens.

    A token that verified once is remembered until it expires, so a client sending the same
    token again costs a dictionary lookup, not another HMAC and JSON parse; expiry and
    revocation are still checked on every call.
    """

    def __init__(
        self,
        key: str,
        *,
        algorithms: tuple[str, ...] = ALLOWED_ALGORITHMS,
        revocations: RevocationList | None = None,
        cache_size: int = 10_000,
    ) -> None:
        unknown = set(algorithms) - set(ALLOWED_ALGORITHMS)
        if unknown:
            raise ValueError(f"algorithms outside the allow-list: {sorted(unknown)}")
        self._key = key
        self._algorithms = list(algorithms)
        self.revocations = revocations or RevocationList()
        self._cache: OrderedDict[str, Principal] = OrderedDict()
        self._cache_size = cache_size

    def verify(self, token: str, *, token_type: str = "access") -> Principal:
        """The caller behind a token; TokenError when it must not be trusted."""
        principal = self._cache.get(token)
        if principal is None:
            principal = self._decode(token)
            if len(self._cache) >= self._cache_size:
                self._cache.popitem(last=False)
            self._cache[token] = principal
        if principal.token_type != token_type:
            raise TokenError("wrong token type")
        if principal.expires_at <= time.time():
            self._cache.pop(token, None)
            raise TokenError("expired")
        revocations = self.revocations
        if revocations.is_revoked(principal.jti, principal.session_id) or (
            revocations.cutoffs
            and revocations.cut_off_before(principal.username, principal.issued_at)
        ):
            raise TokenRevoked(principal)
        return principal

    def _decode(self, token: str) -> Principal:
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenError("token too long")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                options={"require": _REQUIRED_CLAIMS},
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise TokenError(str(exc)) from exc
        sub, role, jti, sid = claims["sub"], claims["role"], claims["jti"], claims.get("sid")
        kind = claims.get("type", "access")
        if not isinstance(sub, str) or not sub or role not in ROLES or not isinstance(jti, str):
            raise TokenError("malformed claims")
        if kind not in ("access", "refresh") or not (sid is None or isinstance(sid, str)):
            raise TokenError("malformed claims")
        return Principal(
            username=sub,
            role=role,
            jti=jti,
            expires_at=int(claims["exp"]),
            issued_at=float(claims["iat"]),
            session_id=sid,
            token_type=kind,
        )


def bearer_token(authorization: str | bytes | None) -> str | None:
    """The token of an `Authorization: Bearer ...` header value: the one parser of the lane
    and the ASGI path of every service."""
    if not authorization:
        return None
    if isinstance(authorization, bytes):
        authorization = authorization.decode("latin-1")
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def admit(verifier: "TokenVerifier", authorization: str | bytes | None) -> Principal:
    """The caller behind an Authorization header; TokenError (message: NOT_AUTHENTICATED or
    INVALID_TOKEN, as the 401 says it) when there is none to trust."""
    token = bearer_token(authorization)
    if token is None:
        raise TokenError(NOT_AUTHENTICATED)
    try:
        return verifier.verify(token)
    except TokenError:
        raise TokenError(INVALID_TOKEN) from None


def unauthorized(message: str = INVALID_TOKEN) -> HTTPException:
    """A 401 that tells the client to use a bearer token."""
    return HTTPException(status_code=401, detail=message, headers={"WWW-Authenticate": "Bearer"})


_bearer = HTTPBearer(auto_error=False, description="Access token from the gateway's /login")


def principal_from(request: Request) -> Principal:
    """The verified caller of a request, by admit() as the lane does; 401 otherwise."""
    try:
        return admit(request.app.state.token_verifier, request.headers.get("authorization"))
    except TokenError as exc:
        raise unauthorized(str(exc)) from None


async def current_user(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The verified caller of a service that is not the gateway (HTTPBearer only declares the
    scheme in the OpenAPI document)."""
    return principal_from(request)


CurrentUser = Annotated[Principal, Depends(current_user)]
