"""Bodies of the gateway's own endpoints."""

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

# Lower-case ASCII only: no two accounts can look alike ("Admin" vs "admin", homoglyphs).
USERNAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{2,31}$"
MIN_PASSWORD, MAX_PASSWORD = 8, 128


def _normalise(value: str) -> str:
    return value.strip().lower()


# Lower-cased before the pattern runs, so `Admin` logs in as `admin`.
Username = Annotated[
    str,
    Field(min_length=1, max_length=64, examples=["admin"]),
    AfterValidator(_normalise),
]


def check_password(username: str, password: str) -> None:
    """ValueError when a new password breaks the rules a length cannot say."""
    if not password.strip():
        raise ValueError("password must not be blank")
    if password.strip().lower() == username:
        raise ValueError("password must differ from the username")


NewPassword = Annotated[
    str,
    Field(
        min_length=MIN_PASSWORD,
        max_length=MAX_PASSWORD,
        description="8-128 characters, not blank, not the username",
        examples=["uma-senha-longa"],
    ),
]


class Credentials(BaseModel):
    """What /login takes (seed shape)."""

    model_config = ConfigDict(extra="forbid")

    username: Username
    password: str = Field(min_length=1, max_length=MAX_PASSWORD, examples=["admin123"])


class Registration(BaseModel):
    """What /register takes; there is deliberately no role field."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(
        pattern=USERNAME_PATTERN,
        description="3-32 characters: lower-case letters, digits, `_`, `.`, `-`",
        examples=["maria"],
    )
    password: NewPassword

    @model_validator(mode="before")
    @classmethod
    def _lower_username(cls, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("username"), str):
            return data | {"username": _normalise(data["username"])}
        return data

    @model_validator(mode="after")
    def _password_rules(self) -> "Registration":
        check_password(self.username, self.password)
        return self


class PasswordChange(BaseModel):
    """What POST /me/password takes."""

    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=MAX_PASSWORD)
    new_password: NewPassword

    @model_validator(mode="after")
    def _differs(self) -> "PasswordChange":
        if self.new_password == self.current_password:
            raise ValueError("new_password must differ from current_password")
        return self


class PasswordGrant(BaseModel):
    """The OAuth2 password grant form of /token (RFC 6749 section 4.3)."""

    # Swagger's Authorize also sends scope, client_id and client_secret: accepted, unused.
    model_config = ConfigDict(extra="ignore")

    grant_type: Literal["password"] | None = None
    username: Username
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)


class RefreshRequest(BaseModel):
    """What /refresh takes."""

    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=4096)


class UserOut(BaseModel):
    """A user as others may see them."""

    model_config = ConfigDict(from_attributes=True)

    username: str
    role: Literal["admin", "user"]


class TokenData(BaseModel):
    """The `data` of a successful /login or /refresh."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds the access token is valid")
    refresh_token: str = Field(description="Single use: POST it to /refresh for new tokens")
    refresh_expires_in: int
    user: UserOut


class OAuth2Token(BaseModel):
    """RFC 6749 token response of /token, the shape Swagger's Authorize button reads."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    refresh_token: str
