"""User records: lookup, registration, login, password changes and the start-up accounts."""

import logging
import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api_gateway.auth import hash_password, verify_password
from api_gateway.config import DEMO_USERS, GatewaySettings
from api_gateway.models import User
from api_gateway.schemas import USERNAME_PATTERN

log = logging.getLogger(__name__)

_USERNAME = re.compile(USERNAME_PATTERN)
# Stored instead of a hash: no password verifies against it (argon2 rejects it as a hash).
LOCKED = "!locked"


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


async def set_password(session: AsyncSession, *, user: User, password: str) -> None:
    """Store a new password hash for this user."""
    user.password_hash = await hash_password(password)
    await session.commit()


async def ensure_accounts(
    sessions: async_sessionmaker[AsyncSession], settings: GatewaySettings
) -> None:
    """The accounts a start needs: the demo users when enabled, else none with a published
    password; then the first admin when it does not exist (safe when replicas race)."""
    if settings.demo_accounts:
        if not settings.dev_mode:
            log.warning(
                "DEMO_USERS=true: admin/admin123 and user/user123 can log in; "
                "never enable it on a reachable deployment"
            )
        for username, password, role in DEMO_USERS:
            await _create_missing(sessions, username=username, password=password, role=role)
    else:
        await _retire_demo_passwords(sessions, settings)
    if settings.first_admin_password is not None:
        password = settings.first_admin_password.get_secret_value()
        username = settings.first_admin_username
        await _create_missing(sessions, username=username, password=password, role="admin")


async def _create_missing(
    sessions: async_sessionmaker[AsyncSession], *, username: str, password: str, role: str
) -> None:
    async with sessions() as session:
        if await get_user(session, username=username) is not None:
            return
        try:
            await create_user(session, username=username, password=password, role=role)
            log.info("created user %s (%s)", username, role)
        except UsernameTaken:
            pass  # another replica created it first


async def _retire_demo_passwords(
    sessions: async_sessionmaker[AsyncSession], settings: GatewaySettings
) -> None:
    """A database first started in dev mode (or by an older release) may still hold the
    published passwords: the first admin's name takes FIRST_ADMIN_PASSWORD, others are locked."""
    for username, password, _ in DEMO_USERS:
        async with sessions() as session:
            user = await get_user(session, username=username)
            if user is None or not await verify_password(password, user.password_hash):
                continue
            if username == settings.first_admin_username and settings.first_admin_password:
                new_password = settings.first_admin_password.get_secret_value()
                await set_password(session, user=user, password=new_password)
                log.warning("%s had the demo password; now it has FIRST_ADMIN_PASSWORD", username)
            else:
                user.password_hash = LOCKED
                await session.commit()
                log.warning("%s had the demo password; the account is locked", username)
