"""Bodies of the gateway's own endpoints."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Credentials(BaseModel):
    """What /login takes (seed shape)."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64, examples=["admin"])
    password: str = Field(min_length=1, max_length=128, examples=["admin123"])


class Registration(BaseModel):
    """What /register takes; there is deliberately no role field."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(
        min_length=3, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$", examples=["maria"]
    )
    password: str = Field(min_length=8, max_length=128, examples=["uma-senha-longa"])


class UserOut(BaseModel):
    """A user as others may see them."""

    model_config = ConfigDict(from_attributes=True)

    username: str
    role: Literal["admin", "user"]


class TokenData(BaseModel):
    """The `data` of a successful /login."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    user: UserOut


class OAuth2Token(BaseModel):
    """RFC 6749 token response of /token, the shape Swagger's Authorize button reads."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
