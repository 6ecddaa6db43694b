"""GET /itens/{id} on the lane: the hot read skips ASGI, routing and pydantic.

Only the plain case is answered here: a well-formed id and a caller admit() lets in, as the
route's CurrentUser would. Anything else (no or bad token, an id FastAPI would refuse, another
method) goes on to the FastAPI route. Both answer with server.reads.read_item, and a database
error with the answer the route's error handler gives.
"""

from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from svc_common.auth import TokenError, TokenVerifier, admit
from svc_common.database import UNAVAILABLE_ERRORS, database_error_answer
from svc_common.middleware import served_by_headers
from svc_common.serving.lane import Answer, LaneHandler, LaneRequest

from server.cache import ItemCache
from server.reads import MAX_ID, read_item

PREFIX = "/itens/"
ROUTE = "/itens/{item_id}"


def _item_id(path: str) -> int | None:
    tail = path[len(PREFIX) :]
    if not (tail.isascii() and tail.isdigit()) or len(tail) > 10:
        return None
    item_id = int(tail)
    return item_id if 1 <= item_id <= MAX_ID else None


class ItemReadLane(LaneHandler):
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
        self.extra_headers = served_by_headers(served_by)
        self.access_log = access_log

    def accepts(self, request: LaneRequest) -> bool:
        """A well-formed id and an admitted caller."""
        if not request.path.startswith(PREFIX) or (item_id := _item_id(request.path)) is None:
            return False
        try:
            admit(self.verifier, request.header(b"authorization"))
        except TokenError:
            return False  # the route answers the 401 as always
        request.note = item_id
        request.route = ROUTE
        return True

    async def respond(self, request: LaneRequest) -> Answer:
        """read_item(), or the database error's answer."""
        item_id = request.note
        assert isinstance(item_id, int)
        if_none_match = request.header(b"if-none-match")
        try:
            return await read_item(
                cache=self.cache,
                sessions=self.sessions,
                item_id=item_id,
                if_none_match=if_none_match.decode("latin-1") if if_none_match else None,
            )
        except (*UNAVAILABLE_ERRORS, exc.DBAPIError) as error:
            return database_error_answer(error, method="GET", path=request.path)
