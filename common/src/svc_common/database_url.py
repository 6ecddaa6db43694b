"""DATABASE_URL as users get it, made to work with the async drivers.

The seed's URLs name no driver (postgresql://, sqlite:///); managed PostgreSQL providers add
libpq's SSL parameters (?sslmode=require&sslrootcert=...), which asyncpg does not take as
keywords; PgBouncer in transaction mode needs the prepared-statement caches off. The URL keeps
what the user wrote; translate_for_asyncpg, listening on each engine's connects, hands
asyncpg what it understands.
"""

import functools
import ssl
from typing import Any
from uuid import uuid4

from sqlalchemy import event
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

_ASYNC_DRIVERS = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
}
_SSL_MODES = frozenset({"disable", "allow", "prefer", "require", "verify-ca", "verify-full"})


def async_url(raw: str, *, statement_cache_size: int | None = None) -> URL:
    """The URL with an async driver; statement_cache_size (PostgreSQL) set for both caches,
    SQLAlchemy's and asyncpg's (0 behind a transaction-pooling PgBouncer)."""
    url = make_url(raw)
    if url.drivername in _ASYNC_DRIVERS:
        url = url.set(drivername=_ASYNC_DRIVERS[url.drivername])
    elif url.get_backend_name() == "postgresql" and url.get_driver_name() != "asyncpg":
        url = url.set(drivername="postgresql+asyncpg")
    if statement_cache_size is not None and url.get_backend_name() == "postgresql":
        size = str(statement_cache_size)
        url = url.update_query_dict(
            {"prepared_statement_cache_size": size, "statement_cache_size": size}
        )
    return url


@functools.lru_cache(maxsize=16)
def ssl_for(
    mode: str, *, rootcert: str | None = None, cert: str | None = None, key: str | None = None
) -> bool | str | ssl.SSLContext:
    """asyncpg's `ssl` argument for libpq's sslmode (and certificate files); built once per
    set of arguments, not at every connect (reading certificate files blocks the loop)."""
    if mode not in _SSL_MODES:
        raise ValueError(f"DATABASE_URL: sslmode={mode!r} is not one of {sorted(_SSL_MODES)}")
    if mode == "disable":
        return False
    if mode in {"allow", "prefer", "require"} and rootcert is None and cert is None:
        return mode  # asyncpg takes these as libpq does
    context = ssl.create_default_context(cafile=rootcert)
    if cert is not None:
        context.load_cert_chain(cert, key)
    if mode != "verify-full":
        context.check_hostname = False  # verify-ca: the chain, not the name (as libpq)
    if mode in {"allow", "prefer", "require"} and rootcert is None:
        context.verify_mode = ssl.CERT_NONE  # a client certificate, no server check
    return context


def translate_for_asyncpg(
    dialect: Dialect, conn_rec: Any, cargs: list[Any], cparams: dict[str, Any]
) -> None:
    """SQLAlchemy's do_connect event: libpq's words in the URL, turned into asyncpg's."""
    mode = cparams.pop("sslmode", None)
    files = {name: cparams.pop(f"ssl{name}", None) for name in ("rootcert", "cert", "key")}
    if mode is not None or any(files.values()):
        cparams["ssl"] = ssl_for(mode or "prefer", **files)
    if "statement_cache_size" in cparams:
        cparams["statement_cache_size"] = int(cparams["statement_cache_size"])
        if cparams["statement_cache_size"] == 0:
            # PgBouncer hands a transaction's statements to other server connections: names
            # must never repeat (SQLAlchemy's documented setting for it).
            cparams["prepared_statement_name_func"] = lambda: f"__asyncpg_{uuid4()}__"


def translating(engine: AsyncEngine) -> AsyncEngine:
    """The engine, with libpq's URL parameters translated at every connect (PostgreSQL)."""
    if engine.dialect.name == "postgresql":
        event.listen(engine.sync_engine, "do_connect", translate_for_asyncpg)
    return engine
