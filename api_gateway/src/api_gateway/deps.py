"""Request dependencies of the gateway's own routes."""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from svc_common.auth import Principal, TokenVerifier, principal_from

from api_gateway.config import GatewaySettings
from api_gateway.ratelimit import RateLimiter

# Declared for Swagger: its Authorize button logs in through POST /token.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="token", auto_error=False)


async def get_current_user(
    request: Request, _: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal:
    """The verified caller; 401 otherwise (the scheme declared for Swagger's Authorize)."""
    return principal_from(request)


async def get_settings(request: Request) -> GatewaySettings:
    """The settings the app was built with."""
    settings: GatewaySettings = request.app.state.settings
    return settings


async def get_limiter(request: Request) -> RateLimiter:
    """The rate limiter (opened in the lifespan)."""
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter


async def get_verifier(request: Request) -> TokenVerifier:
    """The token verifier and its revocation list."""
    verifier: TokenVerifier = request.app.state.token_verifier
    return verifier


CurrentUser = Annotated[Principal, Depends(get_current_user)]
SettingsDep = Annotated[GatewaySettings, Depends(get_settings)]
LimiterDep = Annotated[RateLimiter, Depends(get_limiter)]
VerifierDep = Annotated[TokenVerifier, Depends(get_verifier)]
