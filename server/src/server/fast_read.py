"""GET /itens/{id} as plain ASGI: the hot read skips routing, dependencies and pydantic.

Only the plain case is answered here: a GET with a well-formed id and a bearer token that
verifies. Anything else (no or bad token, an id FastAPI would refuse, another method) goes
on to the FastAPI route, which answers it exactly as before. A cache hit opens no database
session; a miss opens one for the load only.
"""

import logging

import orjson
from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from svc_common.auth import TokenError, TokenVerifier
from svc_common.database import is_unavailable
from svc_common.envelope import EnvelopeResponse, error_response

from server import crud
from server.cache import ItemCache
from server.preconditions import etag, not_modified
from server.schemas import ItemOut

log = logging.getLogger(__name__)

PREFIX = "/itens/"
ROUTE = "/itens/{item_id}"
MAX_ID = 2**31 - 1
# The errors install_database_error_handler turns into a 503 on the FastAPI routes (any other
# driver error too, when is_unavailable says so; the rest are 500s, as there).
DATABASE_ERRORS = (exc.OperationalError, exc.InterfaceError, exc.TimeoutError, OSError)


async def load_item(
    sessions: async_sessionmaker[AsyncSession], item_id: int
) -> tuple[int, bytes] | None:
    """(version, JSON) of an item from the database, in a session of its own; None if absent."""
    async with sessions() as session:
        item = await crud.get_item(session, item_id=item_id)
        if item is None:
            return None
        return item.version, ItemOut.model_validate(item).model_dump_json().encode()


def item_response(item_id: int, cached: bytes | None, if_none_match: str | None) -> Response:
    """200 with the envelope and ETag, 304 when If-None-Match still holds, or 404."""
    if cached is None:
        return error_response(404, f"Item {item_id} not found")
    item = orjson.loads(cached)
    tag = etag(item_id, item["version"])
    if not_modified(if_none_match, tag):
        return Response(status_code=304, headers={"ETag": tag})
    body = {"status": "success", "data": item, "message": None}
    return EnvelopeResponse(body, headers={"ETag": tag})


def _item_id(path: str) -> int | None:
    tail = path[len(PREFIX) :]
    if not (tail.isascii() and tail.isdigit()) or len(tail) > 10:
        return None
    item_id = int(tail)
    return item_id if 1 <= item_id <= MAX_ID else None


class FastItemRead:
    """Answers the plain GET /itens/{id}; passes everything else to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not scope["path"].startswith(PREFIX)
            or (item_id := _item_id(scope["path"])) is None
        ):
            await self.app(scope, receive, send)
            return
        authorization = if_none_match = None
        for name, value in scope["headers"]:
            if name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"if-none-match" and if_none_match is None:
                if_none_match = value.decode("latin-1")
        state = scope["app"].state
        verifier: TokenVerifier = state.token_verifier
        scheme, _, token = (authorization or "").partition(" ")
        try:
            # Only the plain form; FastAPI's HTTPBearer judges anything unusual on the route.
            if scheme.lower() != "bearer" or not token or token != token.strip():
                raise TokenError("no plain bearer token")
            verifier.verify(token)
        except TokenError:
            await self.app(scope, receive, send)  # the route answers the 401 as always
            return
        scope["route_template"] = ROUTE
        cache: ItemCache = state.item_cache
        sessions = state.sessions
        try:
            cached = await cache.read(item_id, lambda: load_item(sessions, item_id))
        except (*DATABASE_ERRORS, exc.DBAPIError) as error:
            if not isinstance(error, DATABASE_ERRORS) and not is_unavailable(error):
                raise  # ServerErrorMiddleware answers the 500 in the envelope
            log.warning("database unavailable on GET %s: %s", scope["path"], error)
            response: Response = error_response(
                503, "Database unavailable, try again shortly", headers={"Retry-After": "1"}
            )
        else:
            response = item_response(item_id, cached, if_none_match)
        await response(scope, receive, send)
