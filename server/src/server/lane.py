"""GET /itens/{id} and GET /itens on the lane: the hot reads skip ASGI, routing and FastAPI's
parameter handling.

Only the plain case is answered here: a well-formed id, or a query string ListQuery accepts,
and a caller admit() lets in, as the route's CurrentUser would. Anything else (no or bad token,
an id or a query FastAPI would refuse, another method) goes on to the FastAPI route. Both
answer with server.reads, and a database error with the answer the route's error handler
gives.
"""

from urllib.parse import parse_qsl

from pydantic import ValidationError
from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from svc_common.auth import TokenError, TokenVerifier, admit
from svc_common.database import UNAVAILABLE_ERRORS, database_error_answer
from svc_common.middleware import served_by_headers
from svc_common.serving.lane import Answer, LaneHandler, LaneRequest

from server.cache import ItemCache
from server.pages import MAX_ID, ListQuery
from server.reads import read_item, read_page

PREFIX = "/itens/"
ROUTE = "/itens/{item_id}"
LIST = "/itens"


def _list_query(query: bytes) -> ListQuery | None:
    # As Starlette reads a query string: latin-1, blanks kept, the last of a repeated name.
    params = dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True))
    try:
        return ListQuery.model_validate(params)
    except ValidationError:
        return None  # the route answers the 422 as always


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
        """A well-formed id or listing query, and an admitted caller."""
        if request.path == LIST:
            note: int | ListQuery | None = _list_query(request.query)
            route = LIST
        elif request.path.startswith(PREFIX):
            note, route = _item_id(request.path), ROUTE
        else:
            return False
        if note is None:
            return False
        try:
            admit(self.verifier, request.header(b"authorization"))
        except TokenError:
            return False  # the route answers the 401 as always
        request.note = note
        request.route = route
        return True

    async def respond(self, request: LaneRequest) -> Answer:
        """read_item() or read_page(), or the database error's answer."""
        header = request.header(b"if-none-match")
        if_none_match = header.decode("latin-1") if header else None
        cache, sessions, note = self.cache, self.sessions, request.note
        try:
            if isinstance(note, ListQuery):
                return await read_page(
                    cache=cache, sessions=sessions, query=note, if_none_match=if_none_match
                )
            assert isinstance(note, int)
            return await read_item(
                cache=cache, sessions=sessions, item_id=note, if_none_match=if_none_match
            )
        except (*UNAVAILABLE_ERRORS, exc.DBAPIError) as error:
            return database_error_answer(error, method="GET", path=request.path)
