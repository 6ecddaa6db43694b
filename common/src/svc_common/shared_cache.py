"""The Redis layout the cache service and the servers' item cache share, defined once.

A key's namespace is the part before its first colon (`produto:42` is in `produto`); keys
without one are in `default`. Values live under `cache:data:<key>`. Hits and misses of every
client are counted in one hash, `cache:stats`, with the fields `<namespace>:hits` and
`<namespace>:misses`, so /cache/stats sees the servers' lookups as well as its own.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DATA_PREFIX = "cache:data:"
STATS_KEY = "cache:stats"
DEFAULT_NAMESPACE = "default"
# The item servers' read-through cache; only they write it (the cache API may read and clear it).
ITEM_NAMESPACE = "itens"
# Their pages of GET /itens, under a generation every item write moves on.
PAGE_NAMESPACE = "itens-pages"
RESERVED_NAMESPACES = frozenset({ITEM_NAMESPACE, PAGE_NAMESPACE})


def namespace_of(key: str) -> str:
    """The namespace a key belongs to."""
    namespace, colon, _ = key.partition(":")
    return namespace if colon and namespace else DEFAULT_NAMESPACE


def data_key(key: str) -> str:
    """Where a key's value is stored in Redis."""
    return DATA_PREFIX + key


def hits_field(namespace: str) -> str:
    """The stats hash field counting a namespace's hits."""
    return f"{namespace}:hits"


def misses_field(namespace: str) -> str:
    """The stats hash field counting a namespace's misses."""
    return f"{namespace}:misses"


@dataclass(frozen=True)
class Counts:
    """Lookups of one namespace."""

    hits: int = 0
    misses: int = 0

    @property
    def hit_ratio(self) -> float:
        """Hits over lookups, 0 before the first lookup."""
        lookups = self.hits + self.misses
        return round(self.hits / lookups, 4) if lookups else 0.0


def parse_stats(raw: Mapping[Any, Any]) -> dict[str, Counts]:
    """Per-namespace counts from HGETALL of STATS_KEY."""
    hits: dict[str, int] = {}
    misses: dict[str, int] = {}
    for field, value in raw.items():
        name = field.decode() if isinstance(field, bytes) else field
        namespace, _, kind = name.rpartition(":")
        if kind == "hits":
            hits[namespace] = int(value)
        elif kind == "misses":
            misses[namespace] = int(value)
    return {
        namespace: Counts(hits=hits.get(namespace, 0), misses=misses.get(namespace, 0))
        for namespace in sorted(hits.keys() | misses.keys())
    }
