"""The seed's cache API (GET/DELETE /cache/{key}, POST /cache, GET /cache/stats) and namespaces.

A key's namespace is the part before its first colon (`produto:42` is in `produto`).
"""

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from pydantic import BaseModel, Field
from svc_common.auth import CurrentUser
from svc_common.envelope import ERROR_RESPONSES, Envelope, ErrorEnvelope
from svc_common.shared_cache import RESERVED_NAMESPACES, Counts, namespace_of

from cache.config import CacheSettings
from cache.store import Store

router = APIRouter(prefix="/cache", tags=["cache"], responses=ERROR_RESPONSES)

KEY_PATTERN = r"^[A-Za-z0-9_.:@-]{1,200}$"
NAMESPACE_PATTERN = r"^[A-Za-z0-9_.@-]{1,100}$"
CacheKey = Annotated[str, Path(pattern=KEY_PATTERN, description="Letters, digits and _.:@-")]
Namespace = Annotated[str, Path(pattern=NAMESPACE_PATTERN, description="Letters, digits, _.@-")]
_FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorEnvelope, "description": "Forbidden"}
}
_TOO_LARGE: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorEnvelope, "description": "Value over MAX_VALUE_BYTES once encoded"}
}


async def get_store(request: Request) -> Store:
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


class NamespaceStats(BaseModel):
    """Lookups of one namespace, by every client, and its live keys."""

    hits: int
    misses: int
    hit_ratio: float
    keys: int


class CacheStats(NamespaceStats):
    """All namespaces together, then each one (the item servers' cache is `itens`)."""

    backend: str
    namespaces: dict[str, NamespaceStats]


class Cleared(BaseModel):
    """What clearing a namespace removed."""

    namespace: str
    removed: int


def _stats_of(counts: Counts, keys: int) -> NamespaceStats:
    return NamespaceStats(
        hits=counts.hits, misses=counts.misses, hit_ratio=counts.hit_ratio, keys=keys
    )


@router.get("/stats", summary="Hit and miss statistics")
async def stats(store: StoreDep, _: CurrentUser) -> Envelope[CacheStats]:
    """Hits, misses, hit ratio and live keys, in total and per namespace."""
    s = await store.stats()
    total = s.total
    namespaces = {
        ns: _stats_of(s.counts.get(ns, Counts()), s.keys.get(ns, 0)) for ns in s.namespaces
    }
    return Envelope(
        data=CacheStats(
            backend=store.backend,
            hits=total.hits,
            misses=total.misses,
            hit_ratio=total.hit_ratio,
            keys=sum(s.keys.values()),
            namespaces=namespaces,
        )
    )


@router.delete(
    "/namespaces/{namespace}", summary="Clear a namespace (admin only)", responses=_FORBIDDEN
)
async def clear(namespace: Namespace, store: StoreDep, user: CurrentUser) -> Envelope[Cleared]:
    """Remove every key of a namespace; its hit and miss counters are kept."""
    if not user.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Only an admin may clear a namespace")
    removed = await store.clear(namespace)
    return Envelope(
        data=Cleared(namespace=namespace, removed=removed),
        message=f"{removed} key(s) removed from {namespace!r}",
    )


@router.get("/{key}", summary="Read a key")
async def read(key: CacheKey, store: StoreDep, _: CurrentUser) -> Envelope[CacheEntry]:
    """The value and its remaining TTL; 404 on a miss."""
    entry = await store.get(key)
    if entry is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Key {key!r} not found")
    return Envelope(data=CacheEntry(key=key, value=orjson.loads(entry.value), ttl=entry.ttl))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Store a key",
    responses=_FORBIDDEN | _TOO_LARGE,
)
async def write(
    body: CacheWrite, request: Request, store: StoreDep, _: CurrentUser
) -> Envelope[CacheEntry]:
    """Store any JSON value under a key for `ttl` seconds."""
    namespace = namespace_of(body.key)
    if namespace in RESERVED_NAMESPACES:
        # The item servers trust what is stored there; a client must not plant items.
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"Namespace {namespace!r} is written by the servers only"
        )
    settings: CacheSettings = request.app.state.settings
    ttl = body.ttl or settings.default_ttl
    if ttl > settings.max_ttl:
        raise HTTPException(422, f"ttl may be at most {settings.max_ttl} seconds")
    try:
        encoded = orjson.dumps(body.value)
    except orjson.JSONEncodeError:
        # orjson stops at 64-bit integers (most JSON readers lose precision well before).
        raise HTTPException(422, "value holds an integer beyond the 64-bit range") from None
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
