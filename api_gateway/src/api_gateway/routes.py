"""The gateway's own endpoints: /login, /token, /register, /me."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm
from svc_common.auth import unauthorized
from svc_common.database import SessionDep
from svc_common.envelope import ERROR_RESPONSES, Envelope

from api_gateway import users
from api_gateway.auth import issue_access_token
from api_gateway.config import GatewaySettings
from api_gateway.deps import CurrentUser
from api_gateway.models import User
from api_gateway.schemas import Credentials, OAuth2Token, Registration, TokenData, UserOut

router = APIRouter(tags=["auth"], responses=ERROR_RESPONSES)

BAD_CREDENTIALS = "Invalid username or password"


def _settings(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.app.state.settings
    return settings


SettingsDep = Annotated[GatewaySettings, Depends(_settings)]


async def _login(
    session: SessionDep, settings: GatewaySettings, username: str, password: str
) -> tuple[User, str, int]:
    user = await users.authenticate(session, username=username, password=password)
    if user is None:
        raise unauthorized(BAD_CREDENTIALS)
    token, lifetime = issue_access_token(username=user.username, role=user.role, settings=settings)
    return user, token, lifetime


@router.post("/login", summary="Log in (JSON)")
async def login(
    credentials: Credentials, session: SessionDep, settings: SettingsDep
) -> Envelope[TokenData]:
    """Exchange username and password for a bearer token at `data.access_token`."""
    user, token, lifetime = await _login(
        session, settings, credentials.username, credentials.password
    )
    return Envelope(
        data=TokenData(access_token=token, expires_in=lifetime, user=UserOut.model_validate(user)),
        message="Login successful",
    )


@router.post("/token", summary="Log in (OAuth2 password form, for Swagger's Authorize)")
async def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    settings: SettingsDep,
) -> OAuth2Token:
    """The OAuth2 password flow; RFC 6749 puts the token at the top level, not in the envelope."""
    _, access_token, lifetime = await _login(session, settings, form.username, form.password)
    return OAuth2Token(access_token=access_token, expires_in=lifetime)


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    summary="Create an account",
    responses={409: ERROR_RESPONSES[401] | {"description": "Username taken"}},
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
