"""Reading one item: the cache, the database behind it, the ETag and 304, on both paths.

The FastAPI route and the lane (server.lane) answer GET /itens/{id} with read_item().
"""

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.responses import Response
from svc_common.envelope import EnvelopeResponse, error_response

from server import crud
from server.cache import ItemCache
from server.preconditions import etag, not_modified
from server.schemas import ItemOut

MAX_ID = 2**31 - 1


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


async def read_item(
    *,
    cache: ItemCache,
    sessions: async_sessionmaker[AsyncSession],
    item_id: int,
    if_none_match: str | None,
) -> Response:
    """The item from the cache (a miss loads it from the database), 304 or 404."""
    cached = await cache.read(item_id, lambda: load_item(sessions, item_id))
    return item_response(item_id, cached, if_none_match)
