"""Request dependencies of the gateway's own routes."""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from svc_common.auth import Principal, principal_from

# Declared for Swagger: its Authorize button logs in through POST /token.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="token", auto_error=False)


def get_current_user(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal:
    """The verified caller; 401 otherwise."""
    return principal_from(request, token)


CurrentUser = Annotated[Principal, Depends(get_current_user)]
