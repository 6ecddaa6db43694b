"""The gateway's own endpoints: /login, /token, /refresh, /logout, /register and /me."""

from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request, status
from svc_common.auth import TokenError, unauthorized
from svc_common.database import SessionDep
from svc_common.envelope import ERROR_RESPONSES, Envelope, ErrorEnvelope

from api_gateway import sessions, users
from api_gateway.auth import TokenPair, issue_tokens
from api_gateway.deps import CurrentUser, LimiterDep, SettingsDep, VerifierDep
from api_gateway.forwarded import client_ip, limited_address
from api_gateway.models import User
from api_gateway.ratelimit import RateLimiter
from api_gateway.schemas import (
    Credentials,
    OAuth2Token,
    PasswordChange,
    PasswordGrant,
    RefreshRequest,
    Registration,
    TokenData,
    UserOut,
    check_password,
)

# The edge middleware answers these on every route of the gateway before the route runs.
_EDGE: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorEnvelope, "description": "Request body over MAX_BODY_BYTES"},
    429: {"model": ErrorEnvelope, "description": "Rate limit exceeded (see Retry-After)"},
}
router = APIRouter(tags=["auth"], responses=ERROR_RESPONSES | _EDGE)

BAD_CREDENTIALS = "Invalid username or password"
_TOO_MANY: dict[int | str, dict[str, Any]] = {
    429: {"model": ErrorEnvelope, "description": "Too many attempts (see Retry-After)"}
}


async def _attempt(limiter: RateLimiter, key: str) -> None:
    """Count a password check under LOGIN_RATE_LIMIT; 429 once the key is over it."""
    decision = await limiter.hit("login", key)
    if not decision.allowed:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"Too many attempts; try again in {decision.reset_after} s",
            headers=decision.headers(),
        )


async def _login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    limiter: LimiterDep,
    credentials: Credentials | PasswordGrant,
) -> tuple[User, TokenPair]:
    """Check a password under LOGIN_RATE_LIMIT (per client address, an IPv6 one by its /64, and
    username)."""
    client = limited_address(client_ip(request.scope, settings.proxy_networks))
    key = f"{client}|{credentials.username}"
    await _attempt(limiter, key)
    user = await users.authenticate(
        session, username=credentials.username, password=credentials.password
    )
    if user is None:
        raise unauthorized(BAD_CREDENTIALS)
    # Only failures accumulate: a user who gets in starts again from zero.
    await limiter.reset("login", key)
    return user, issue_tokens(username=user.username, role=user.role, settings=settings)


def _token_data(user: User, pair: TokenPair) -> TokenData:
    return TokenData(
        access_token=pair.access_token,
        expires_in=pair.expires_in,
        refresh_token=pair.refresh_token,
        refresh_expires_in=pair.refresh_expires_in,
        user=UserOut.model_validate(user),
    )


@router.post("/login", summary="Log in (JSON)", responses=_TOO_MANY)
async def login(
    credentials: Credentials,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    limiter: LimiterDep,
) -> Envelope[TokenData]:
    """Exchange username and password for a bearer token at `data.access_token`."""
    user, pair = await _login(request, session, settings, limiter, credentials)
    return Envelope(data=_token_data(user, pair), message="Login successful")


@router.post(
    "/token", summary="Log in (OAuth2 password form, for Swagger's Authorize)", responses=_TOO_MANY
)
async def token(
    form: Annotated[PasswordGrant, Form()],
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    limiter: LimiterDep,
) -> OAuth2Token:
    """The OAuth2 password flow; RFC 6749 puts the token at the top level, not in the envelope."""
    _, pair = await _login(request, session, settings, limiter, form)
    return OAuth2Token(
        access_token=pair.access_token, expires_in=pair.expires_in, refresh_token=pair.refresh_token
    )


@router.post("/refresh", summary="Exchange a refresh token for new tokens")
async def refresh(
    body: RefreshRequest, session: SessionDep, settings: SettingsDep, verifier: VerifierDep
) -> Envelope[TokenData]:
    """Rotate: the refresh token is spent and a new pair issued. Presenting a spent refresh
    token again ends its whole session."""
    try:
        user, pair = await sessions.rotate(
            body.refresh_token, verifier=verifier, session=session, settings=settings
        )
    except TokenError:
        raise unauthorized() from None
    return Envelope(data=_token_data(user, pair), message="Tokens refreshed")


@router.post("/logout", summary="Revoke this token and its session")
async def logout(user: CurrentUser, settings: SettingsDep, verifier: VerifierDep) -> Envelope[None]:
    """The access token and every token of its login session stop working at once."""
    await sessions.logout(user, verifier=verifier, settings=settings)
    return Envelope(message="Logged out")


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    summary="Create an account",
    responses={409: {"model": ErrorEnvelope, "description": "Username taken"}},
)
async def register(registration: Registration, session: SessionDep) -> Envelope[UserOut]:
    """Create a user with role `user`; nobody can choose their own role."""
    try:
        user = await users.create_user(
            session, username=registration.username, password=registration.password
        )
    except users.UsernameTaken:
        raise HTTPException(status.HTTP_409_CONFLICT, "Username already taken") from None
    return Envelope(data=UserOut.model_validate(user), message="User created")


@router.get("/me", summary="Who am I")
async def me(user: CurrentUser) -> Envelope[UserOut]:
    """The caller, as their token says."""
    return Envelope(data=UserOut(username=user.username, role=user.role))


@router.post(
    "/me/password",
    summary="Change my password",
    responses=_TOO_MANY | {400: {"model": ErrorEnvelope, "description": "Wrong current password"}},
)
async def change_password(
    *,
    body: PasswordChange,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    limiter: LimiterDep,
    verifier: VerifierDep,
) -> Envelope[TokenData]:
    """Needs the current password. Every token of the account issued before, this one's
    included, stops working on every service; the answer carries the tokens of a new session."""
    try:
        check_password(user.username, body.new_password)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    # Per account: a stolen access token must not become a way to guess the password.
    key = f"password-change|{user.username}"
    await _attempt(limiter, key)
    account = await users.authenticate(
        session, username=user.username, password=body.current_password
    )
    if account is None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "Current password is incorrect")
    await limiter.reset("login", key)
    await users.set_password(session, user=account, password=body.new_password)
    await sessions.end_all_sessions(account.username, verifier=verifier, settings=settings)
    pair = issue_tokens(username=account.username, role=account.role, settings=settings)
    data = _token_data(account, pair)
    return Envelope(data=data, message="Password changed; other sessions ended")
