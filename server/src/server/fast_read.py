"""GET /itens/{id} on the fast lane: the hot read skips ASGI, routing and pydantic.

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
from svc_common.auth import TokenError, TokenVerifier
from svc_common.database import is_unavailable
from svc_common.envelope import EnvelopeResponse, error_response
from svc_common.fastlane import Answer, FastLaneHandler, FastRequest

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


class ItemReadLane(FastLaneHandler):
    """Answers the plain GET /itens/{id} below ASGI; everything else takes the FastAPI route."""

    def __init__(
        self,
        *,
        verifier: TokenVerifier,
        cache: ItemCache,
        sessions: async_sessionmaker[AsyncSession],
        served_by: str,
        access_log: bool,
    ) -> None:
        self.verifier = verifier
        self.cache = cache
        self.sessions = sessions
        self.extra_headers = ((b"x-served-by", served_by.encode()),)
        self.access_log = access_log

    def accepts(self, request: FastRequest) -> bool:
        """A well-formed id and a plain bearer token that verifies."""
        if not request.path.startswith(PREFIX) or (item_id := _item_id(request.path)) is None:
            return False
        authorization = request.header(b"authorization")
        scheme, _, token = (authorization or b"").decode("latin-1").partition(" ")
        # Only the plain form; FastAPI's HTTPBearer judges anything unusual on the route.
        if scheme.lower() != "bearer" or not token or token != token.strip():
            return False
        try:
            self.verifier.verify(token)
        except TokenError:
            return False  # the route answers the 401 as always
        request.note = item_id
        request.route = ROUTE
        return True

    async def respond(self, request: FastRequest) -> Answer:
        """The item from the cache (or the database), 304, 404, or 503 without a database."""
        item_id = request.note
        assert isinstance(item_id, int)
        sessions = self.sessions
        try:
            cached = await self.cache.read(item_id, lambda: load_item(sessions, item_id))
        except (*DATABASE_ERRORS, exc.DBAPIError) as error:
            if not isinstance(error, DATABASE_ERRORS) and not is_unavailable(error):
                raise  # the lane answers the 500 in the envelope
            log.warning("database unavailable on GET %s: %s", request.path, error)
            return error_response(
                503, "Database unavailable, try again shortly", headers={"Retry-After": "1"}
            )
        if_none_match = request.header(b"if-none-match")
        return item_response(
            item_id, cached, if_none_match.decode("latin-1") if if_none_match else None
        )
