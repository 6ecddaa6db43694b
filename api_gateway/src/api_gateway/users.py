"""User records: lookup, registration, login and the default accounts."""

import logging
import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api_gateway.auth import hash_password, verify_password
from api_gateway.models import User
from api_gateway.schemas import USERNAME_PATTERN

log = logging.getLogger(__name__)

_USERNAME = re.compile(USERNAME_PATTERN)
# The seed's accounts, created on first start.
DEFAULT_USERS = (("admin", "admin123", "admin"), ("user", "user123", "user"))


class UsernameTaken(Exception):
    """Registration of a name that already exists."""


async def get_user(session: AsyncSession, *, username: str) -> User | None:
    """The user with this name, if any."""
    return await session.scalar(select(User).where(User.username == username))


async def create_user(
    session: AsyncSession, *, username: str, password: str, role: str = "user"
) -> User:
    """Store a user with a hashed password; UsernameTaken if the name exists."""
    user = User(username=username, password_hash=await hash_password(password), role=role)
    session.add(user)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise UsernameTaken(username) from None
    return user


async def authenticate(session: AsyncSession, *, username: str, password: str) -> User | None:
    """The user if the password matches; an unknown name costs the same as a wrong password."""
    # A name no account can have is never looked up (the database may refuse its bytes).
    user = await get_user(session, username=username) if _USERNAME.fullmatch(username) else None
    ok = await verify_password(password, user.password_hash if user else None)
    return user if ok else None


async def ensure_default_users(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Create admin/admin123 and user/user123 unless they exist (safe when replicas race)."""
    for username, password, role in DEFAULT_USERS:
        async with sessions() as session:
            if await get_user(session, username=username) is not None:
                continue
            try:
                await create_user(session, username=username, password=password, role=role)
                log.info("created default user %s (%s)", username, role)
            except UsernameTaken:
                pass
