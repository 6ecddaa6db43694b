"""Verifying the gateway's JWTs, so every service can check callers itself."""

from dataclasses import dataclass
from typing import Annotated, Any

import jwt
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

INVALID_TOKEN = "Invalid or expired token"
NOT_AUTHENTICATED = "Not authenticated"
ROLES = frozenset({"admin", "user"})
_REQUIRED_CLAIMS = ["sub", "role", "iat", "exp", "jti"]


class TokenError(Exception):
    """Any reason a token is refused; callers answer 401 with one generic message."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as the token says."""

    username: str
    role: str
    jti: str
    expires_at: int

    @property
    def is_admin(self) -> bool:
        """Admins may change anything."""
        return self.role == "admin"


class TokenVerifier:
    """Checks signature, algorithm, expiry and required claims of access tokens."""

    def __init__(self, key: str, *, algorithms: tuple[str, ...] = ("HS256",), leeway: int = 0):
        self._key = key
        self._algorithms = list(algorithms)
        self._leeway = leeway

    def verify(self, token: str, *, token_type: str = "access") -> Principal:
        """The caller behind a token; TokenError when it must not be trusted."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                leeway=self._leeway,
                options={"require": _REQUIRED_CLAIMS},
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise TokenError(str(exc)) from exc
        sub, role, jti = claims["sub"], claims["role"], claims["jti"]
        if claims.get("type", "access") != token_type:
            raise TokenError("wrong token type")
        if not isinstance(sub, str) or not sub or role not in ROLES or not isinstance(jti, str):
            raise TokenError("malformed claims")
        return Principal(username=sub, role=role, jti=jti, expires_at=int(claims["exp"]))


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer ...` header value."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def unauthorized(message: str = INVALID_TOKEN) -> HTTPException:
    """A 401 that tells the client to use a bearer token."""
    return HTTPException(status_code=401, detail=message, headers={"WWW-Authenticate": "Bearer"})


_bearer = HTTPBearer(auto_error=False, description="Access token from the gateway's /login")


def principal_from(request: Request, token: str | None) -> Principal:
    """The verified caller behind a bearer token; 401 otherwise."""
    if not token:
        raise unauthorized(NOT_AUTHENTICATED)
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        return verifier.verify(token)
    except TokenError:
        raise unauthorized() from None


def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The verified caller of a service that is not the gateway."""
    return principal_from(request, credentials.credentials if credentials else None)


CurrentUser = Annotated[Principal, Depends(current_user)]
