"""Reads: one item and a listing, each from the cache with the database behind it, with
ETag and 304, on both paths.

The FastAPI routes and the lane (server.lane) answer GET /itens/{id} with read_item() and
GET /itens with read_page().
"""

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.responses import Response
from svc_common.envelope import EnvelopeResponse, error_response

from server import crud
from server.cache import ItemCache
from server.pages import ListQuery, Page, item_json
from server.preconditions import etag, not_modified


async def load_item(
    sessions: async_sessionmaker[AsyncSession], item_id: int
) -> tuple[int, bytes] | None:
    """(version, JSON) of an item from the database, in a session of its own; None if absent."""
    async with sessions() as session:
        await crud.autocommit(session)
        item = await crud.get_item(session, item_id=item_id)
        if item is None:
            return None
        return item.version, item_json(item)


def item_response(item_id: int, cached: bytes | None, if_none_match: str | None) -> Response:
    """200 with the envelope and ETag, 304 when If-None-Match still holds, or 404."""
    if cached is None:
        return error_response(404, f"Item {item_id} not found")
    item = orjson.loads(cached)
    tag = etag(item_id, item["version"])
    held = not_modified(if_none_match, tag)
    if held is not None:
        return Response(status_code=304, headers={"ETag": held})
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


async def load_page(
    sessions: async_sessionmaker[AsyncSession], query: ListQuery, total: int | None
) -> tuple[bytes, int]:
    """A listing from the database, encoded as the page cache stores it, and its total."""
    async with sessions() as session:
        await crud.autocommit(session)
        rows, total = await crud.list_items(session, query=query, total=total)
    return Page.of(list(rows), total=total, query=query).encode(), total


async def read_page(
    *,
    cache: ItemCache,
    sessions: async_sessionmaker[AsyncSession],
    query: ListQuery,
    if_none_match: str | None,
) -> Response:
    """The page from the cache (a miss loads it from the database), or 304."""
    stored = await cache.read_page(
        query.key(), query.filter_key(), lambda total: load_page(sessions, query, total)
    )
    page = Page.decode(stored)
    held = not_modified(if_none_match, page.etag)
    if held is not None:
        return Response(status_code=304, headers={"ETag": held})
    return Response(page.body, media_type="application/json", headers=page.headers())
