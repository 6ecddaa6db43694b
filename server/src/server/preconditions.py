"""ETags of items and the conditional headers built on them (RFC 9110, section 13)."""

import re

from fastapi import HTTPException, status

_ENTITY_TAG = re.compile(r'(W/)?"([^"]*)"')


def etag(item_id: int, version: int) -> str:
    """A strong ETag: the same id and version always mean the same representation."""
    return f'"{item_id}.{version}"'


def _tags(header: str) -> list[tuple[bool, str]]:
    return [(bool(weak), opaque) for weak, opaque in _ENTITY_TAG.findall(header)]


def not_modified(header: str | None, current: str) -> bool:
    """True when If-None-Match names the current tag (weak comparison): answer 304."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    (_, tag), *_ = _tags(current)
    return any(opaque == tag for _, opaque in _tags(header))


def precondition_failed(item_id: int, *, current: str | None = None) -> HTTPException:
    """412: the client's copy is out of date; it carries the current ETag when known."""
    return HTTPException(
        status.HTTP_412_PRECONDITION_FAILED,
        f"Item {item_id} has changed since it was read (If-Match); read it again",
        headers={"ETag": current} if current else None,
    )


def versions_named(if_match: str | None, *, item_id: int) -> frozenset[int] | None:
    """The versions of this item If-Match names (strong tags only); None when any will do
    (no If-Match, or `*`: the item must only exist)."""
    if if_match is None or if_match.strip() == "*":
        return None
    prefix = f"{item_id}."
    tags = _tags(if_match)
    named = (tag[len(prefix) :] for weak, tag in tags if not weak and tag.startswith(prefix))
    # A version the column cannot hold can only fail to match: left out, not sent to SQL.
    return frozenset(int(v) for v in named if v.isascii() and v.isdigit() and len(v) <= 9)
