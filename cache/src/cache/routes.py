"""The seed's cache API: GET/DELETE /cache/{key}, POST /cache, GET /cache/stats."""

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from pydantic import BaseModel, Field
from svc_common.auth import CurrentUser
from svc_common.envelope import ERROR_RESPONSES, Envelope

from cache.config import CacheSettings
from cache.store import Store

router = APIRouter(prefix="/cache", tags=["cache"], responses=ERROR_RESPONSES)

KEY_PATTERN = r"^[A-Za-z0-9_.:@-]{1,200}$"
CacheKey = Annotated[str, Path(pattern=KEY_PATTERN, description="Letters, digits and _.:@-")]


def get_store(request: Request) -> Store:
    """The store opened in the lifespan."""
    store: Store = request.app.state.store
    return store


StoreDep = Annotated[Store, Depends(get_store)]


class CacheWrite(BaseModel):
    """POST /cache body; ttl defaults to DEFAULT_TTL seconds."""

    key: str = Field(pattern=KEY_PATTERN, examples=["produto:42"])
    value: Any = Field(examples=[{"nome": "Item Teste", "preco": 99.99}])
    ttl: int | None = Field(default=None, ge=1, examples=[300])


class CacheEntry(BaseModel):
    """A cached value with its remaining time to live in seconds."""

    key: str
    value: Any
    ttl: int


class CacheStats(BaseModel):
    """Lookups counted across every client of the store."""

    backend: str
    hits: int
    misses: int
    hit_ratio: float
    keys: int


@router.get("/stats", summary="Hit and miss statistics")
async def stats(store: StoreDep, _: CurrentUser) -> Envelope[CacheStats]:
    """Hits, misses, hit ratio and live keys."""
    s = await store.stats()
    return Envelope(
        data=CacheStats(
            backend=store.backend, hits=s.hits, misses=s.misses, hit_ratio=s.hit_ratio, keys=s.keys
        )
    )


@router.get("/{key}", summary="Read a key")
async def read(key: CacheKey, store: StoreDep, _: CurrentUser) -> Envelope[CacheEntry]:
    """The value and its remaining TTL; 404 on a miss."""
    entry = await store.get(key)
    if entry is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Key {key!r} not found")
    return Envelope(data=CacheEntry(key=key, value=orjson.loads(entry.value), ttl=entry.ttl))


@router.post("", status_code=status.HTTP_201_CREATED, summary="Store a key")
async def write(
    body: CacheWrite, request: Request, store: StoreDep, _: CurrentUser
) -> Envelope[CacheEntry]:
    """Store any JSON value under a key for `ttl` seconds."""
    settings: CacheSettings = request.app.state.settings
    ttl = body.ttl or settings.default_ttl
    if ttl > settings.max_ttl:
        raise HTTPException(422, f"ttl may be at most {settings.max_ttl} seconds")
    encoded = orjson.dumps(body.value)
    if len(encoded) > settings.max_value_bytes:
        raise HTTPException(413, f"Value over {settings.max_value_bytes} bytes")
    await store.set(body.key, encoded, ttl)
    return Envelope(data=CacheEntry(key=body.key, value=body.value, ttl=ttl), message="Stored")


@router.delete("/{key}", summary="Remove a key")
async def remove(key: CacheKey, store: StoreDep, _: CurrentUser) -> Envelope[None]:
    """Delete a key; 404 when it was not there."""
    if not await store.delete(key):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Key {key!r} not found")
    return Envelope(message=f"Key {key!r} removed")
